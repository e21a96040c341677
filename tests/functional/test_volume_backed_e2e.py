"""Volume-backed servers end to end: Cinder on a real Ceph, Glance, libvirt.

The tiny guest boots from a Cinder volume (created from a Glance image) with
a blank data volume attached and writes the same tick to both. createImage
must record a Cinder snapshot of each volume in a zero-byte active image;
booting from that image must give back exactly what the snapshots hold,
which is read independently with ``rbd export``.

As a cloud runs it: each class acts as the member user of a Keystone
project of its own (the tests assert on a whole project's volumes,
snapshots and quotas), Cinder is the Keystone-mode cinder-api of the
catalog, and quotas are changed by the stack's admin.
"""

import concurrent.futures
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import uuid

import libvirt
import libvirt_qemu

from nova_snapshot.volume import cinder
from tests.functional import e2e_base

BDM_KEYS = {'guest_format', 'boot_index', 'delete_on_termination', 'no_device',
            'snapshot_id', 'volume_type', 'device_name', 'disk_bus',
            'image_id', 'source_type', 'tag', 'device_type', 'volume_id',
            'destination_type', 'volume_size'}


class VolumeBackedTestBase(e2e_base.EndToEndTestCase):

    guest_agent = True
    keystone_own_project = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if cls.keystone:
            conf = e2e_base.keystone_user_conf(cls.stack)
        else:
            conf = e2e_base._glance_conf(cls.stack['GLANCE_URL'])
            conf.set_override('api_endpoint', cls.stack['CINDER_URL'],
                              group='cinder')
            conf.set_override('auth_mode', 'noauth', group='cinder')
        cls.volume_api = cinder.CinderAPI(conf)
        cls.ceph_conf = cls.stack['CEPH_CONF']
        cls.pool = cls.stack.get('RBD_POOL', 'volumes')
        props = {'os_command_line': e2e_base.GUEST_COMMAND_LINE}
        if cls.guest_agent:
            props['hw_qemu_guest_agent'] = 'yes'
        cls.vol_image = cls._upload_root_image(props)

    @classmethod
    def release_project(cls):
        """What the tests left in the class's project goes first."""
        try:
            cls.image_api.delete(cls.ctx, cls.vol_image['id'])
        except Exception:
            pass
        client = cls.volume_api._client(cls.ctx)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                left = client.volume_snapshots.list()
                left += client.volumes.list()
            except Exception:
                break
            if not left:
                break
            for item in left:
                if item.status in ('available', 'error'):
                    try:
                        item.delete()
                    except Exception:
                        pass    # a snapshot with clones: next round
            time.sleep(1)
        super().release_project()

    @classmethod
    def _upload_root_image(cls, props):
        image = cls.image_api.create(cls.ctx, dict(
            name='e2e-ext4-%s' % uuid.uuid4().hex[:6], disk_format='qcow2',
            container_format='bare', visibility='private',
            kernel_id=cls.base_image['kernel_id'],
            ramdisk_id=cls.base_image['ramdisk_id'], **props))
        path = os.path.join(cls.guest_dir, 'disk-ext4.qcow2')
        with open(path, 'rb') as data:
            cls.image_api.upload(cls.ctx, image['id'], data,
                                 size=os.path.getsize(path))
        return cls.image_api.get(cls.ctx, image['id'])

    # -- helpers ---------------------------------------------------------
    def assert_thawed(self, server_id):
        status = libvirt_qemu.qemuAgentCommand(
            self.domain(server_id), '{"execute": "guest-fsfreeze-status"}',
            10, 0)
        self.assertEqual('thawed', json.loads(status)['return'])

    def boot_from_volume(self, name='bfv', image_id=None, with_data=True):
        bdms = [{'source_type': 'image', 'destination_type': 'volume',
                 'uuid': image_id or self.vol_image['id'], 'boot_index': 0,
                 'volume_size': 1, 'delete_on_termination': True}]
        if with_data:
            bdms.append({'source_type': 'blank', 'destination_type': 'volume',
                         'volume_size': 1, 'boot_index': -1,
                         'delete_on_termination': True})
        return self._boot_with(name, '', bdms)

    def _boot_with(self, name, image_ref, bdms):
        resp = self.client.request('POST', '/servers', json={'server': {
            'name': name, 'imageRef': image_ref, 'flavorRef': '2',
            'networks': 'none', 'block_device_mapping_v2': bdms}})
        self.assertEqual(202, resp.status_code, resp.text)
        server_id = resp.json()['server']['id']
        self.addCleanup(self._delete_server, server_id)
        self.client.wait_for_server(server_id, timeout=180)
        self.wait_for_console(server_id, r'nova-snapshot-guest: tick \d+')
        return self.client.get_server(server_id)

    def rbd_tick(self, volume_id, snapshot_id=None):
        """The tick in sector 1 of a volume (or of one of its snapshots)."""
        name = '%s/volume-%s' % (self.pool, volume_id)
        if snapshot_id:
            name += '@snapshot-%s' % snapshot_id
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, 'export.raw')
            subprocess.run(['rbd', '--conf', self.ceph_conf, 'export', name,
                            out, '--no-progress'], check=True,
                           capture_output=True)
            with open(out, 'rb') as data:
                head = data.read(4096)
            fsck = subprocess.run(['e2fsck', '-fn', out],
                                  capture_output=True, text=True)
        return e2e_base.read_tick(head), fsck

    def attached_volumes(self, server_id):
        resp = self.client.request(
            'GET', '/servers/%s/os-volume_attachments' % server_id)
        self.assertEqual(200, resp.status_code, resp.text)
        return {a['device']: a['volumeId']
                for a in resp.json()['volumeAttachments']}

    def snapshot_image(self, server_id, name='bfv-snap'):
        image_id = self.client.create_image(server_id, name)
        self.addCleanup(self._delete_image, image_id)
        image = self.image_api.get(self.ctx, image_id)
        mapping = json.loads(image['block_device_mapping'])
        for bdm in mapping:
            self.addCleanup(self._delete_snapshot, bdm['snapshot_id'])
        return image, mapping

    def _delete_snapshot(self, snapshot_id):
        try:
            self.volume_api.delete_snapshot(self.ctx, snapshot_id)
        except Exception:
            pass

    def project_snapshots(self):
        client = self.volume_api._client(self.ctx)
        return [s for s in client.volume_snapshots.list()
                if s.status != 'deleting']


class VolumeBackedSnapshotTest(VolumeBackedTestBase):
    """With a guest agent: the cut is quiesced."""

    def test_snapshot_and_restore_two_volumes(self):
        server = self.boot_from_volume('bfv-source')
        self.assertEqual('', server['image'])
        volumes = self.attached_volumes(server['id'])
        self.assertEqual({'/dev/vda', '/dev/vdb'}, set(volumes))
        self.wait_for_agent(server['id'])

        image, mapping = self.snapshot_image(server['id'])
        # Nova's contract: a zero-byte image, active when the call returns
        self.assertEqual('active', image['status'])
        self.assertEqual(0, image['size'])
        self.assertEqual('True', image['bdm_v2'])
        self.assertEqual('/dev/vda', image['root_device_name'])
        self.assertEqual('quiesced', image['nova_snapshot_consistency'])
        self.assertLess(int(image['nova_snapshot_freeze_ms']), 10000)
        self.assertEqual(2, len(mapping))
        for bdm in mapping:
            self.assertEqual(BDM_KEYS, set(bdm))
            self.assertEqual('snapshot', bdm['source_type'])
            self.assertEqual('volume', bdm['destination_type'])
            self.assertIsNone(bdm['volume_id'])
            self.assertIsNone(bdm['image_id'])
        by_device = {bdm['device_name']: bdm for bdm in mapping}
        self.assertEqual(0, by_device['/dev/vda']['boot_index'])
        self.assertEqual(1, by_device['/dev/vda']['volume_size'])

        # The server is untouched and the guest thawed and still counting.
        server = self.client.get_server(server['id'])
        self.assertEqual('ACTIVE', server['status'])
        self.assertIsNone(server['OS-EXT-STS:task_state'])
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING,
                         self.domain(server['id']).state()[0])
        self.assert_thawed(server['id'])

        # What each snapshot holds, read straight from Ceph.
        expected = {}
        for device, bdm in by_device.items():
            snap = self.volume_api.wait_for_snapshot(
                self.ctx, bdm['snapshot_id'], timeout=60)
            self.assertEqual(volumes[device], snap['volume_id'])
            tick, fsck = self.rbd_tick(snap['volume_id'], bdm['snapshot_id'])
            self.assertIsNotNone(tick, device)
            expected[device] = tick
            if device == '/dev/vda':
                # quiesced: the root filesystem is clean as captured
                self.assertEqual(0, fsck.returncode, fsck.stdout + fsck.stderr)
        # frozen guests write no tick anywhere: both disks agree
        self.assertEqual(expected['/dev/vda'], expected['/dev/vdb'])

        restored = self._boot_with('bfv-restored', image['id'], [])
        console = self.client.console(restored['id'])
        self.assertRegex(console, r'nova-snapshot-guest: last tick %d\r?\n'
                         % expected['/dev/vda'])
        self.assertRegex(console, r'nova-snapshot-guest: last tick vdb %d\r?\n'
                         % expected['/dev/vdb'])
        self.assertIn('mounted /dev/vda on /mnt', console)
        restored_volumes = self.attached_volumes(restored['id'])
        self.assertEqual(set(volumes), set(restored_volumes))
        self.assertFalse(set(volumes.values()) & set(restored_volumes.values()))

    def test_snapshot_error_leaves_nothing(self):
        server = self.boot_from_volume('bfv-error')
        volumes = self.attached_volumes(server['id'])
        before = {s.id for s in self.project_snapshots()}
        # RBD refuses any further snapshot of the data volume (one snapshot
        # of our own and a limit of one): Cinder's snapshot of it goes to
        # error while the root's succeeds.
        name = '%s/volume-%s' % (self.pool, volumes['/dev/vdb'])

        def rbd(*args):
            subprocess.run(['rbd', '--conf', self.ceph_conf] + list(args),
                           check=True, capture_output=True)
        rbd('snap', 'create', name + '@blocker')
        rbd('snap', 'limit', 'set', '--limit', '1', name)
        try:
            resp = self.client.action(
                server['id'], {'createImage': {'name': 'doomed'}})
        finally:
            rbd('snap', 'limit', 'clear', name)
            rbd('snap', 'rm', name + '@blocker')
        self.assertGreaterEqual(resp.status_code, 400, resp.text)
        self.assertNotIn('Traceback', resp.text)
        deadline = time.monotonic() + 60
        while {s.id for s in self.project_snapshots()} - before:
            self.assertLess(time.monotonic(), deadline,
                            'snapshots were left behind')
            time.sleep(0.5)
        self.assertEqual([], self.image_api.list(self.ctx, name='doomed'))
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING,
                         self.domain(server['id']).state()[0])
        self.assert_thawed(server['id'])
        self.assert_still_ticking(server['id'])


class VolumeBackedNoAgentTest(VolumeBackedTestBase):
    """No guest agent: the vCPUs are paused for the cut instead."""

    guest_agent = False

    def test_paused_cut_is_consistent_across_volumes(self):
        server = self.boot_from_volume('bfv-noagent')
        volumes = self.attached_volumes(server['id'])
        image, mapping = self.snapshot_image(server['id'])
        self.assertEqual('paused', image['nova_snapshot_consistency'])
        ticks = {}
        for bdm in mapping:
            self.volume_api.wait_for_snapshot(self.ctx, bdm['snapshot_id'],
                                              timeout=60)
            ticks[bdm['device_name']], _ = self.rbd_tick(
                volumes[bdm['device_name']], bdm['snapshot_id'])
        # The guest writes tick N to vda, then to vdb. A cut at one instant
        # finds vdb at N or N-1 when vda holds N; a cut taken at two moments
        # finds anything else (vdb ahead, or vda more than one ahead).
        self.assertIn(ticks['/dev/vda'] - ticks['/dev/vdb'], (0, 1), ticks)
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING,
                         self.domain(server['id']).state()[0])

    def test_quota_is_checked_before_anything_is_frozen(self):
        server = self.boot_from_volume('bfv-quota')
        admin = self.volume_api._client(self.admin_ctx)
        admin.quotas.update(self.project, snapshots=1)
        self.addCleanup(admin.quotas.update, self.project, snapshots=-1)
        resp = self.client.action(server['id'],
                                  {'createImage': {'name': 'over'}})
        self.assertEqual(403, resp.status_code, resp.text)
        self.assertIn('forbidden', resp.json())
        self.assertEqual([], self.project_snapshots())


class GuestAgentFailureTest(VolumeBackedTestBase):
    """The agent stops answering; the compute service dies mid-freeze."""

    def stop_agent(self, server_id):
        # The agent runs the command that stops it: after this it never
        # answers again, as a hung agent would.
        self.wait_for_agent(server_id)
        command = {'execute': 'guest-exec', 'arguments': {
            'path': '/bin/busybox',
            'arg': ['sh', '-c', 'kill -STOP $(cat /run/qemu-ga.pid)']}}
        libvirt_qemu.qemuAgentCommand(self.domain(server_id),
                                      json.dumps(command), 10, 0)
        time.sleep(1)

    def test_unanswering_agent_without_requirement_pauses_instead(self):
        server = self.boot_from_volume('agent-hung', with_data=False)
        self.stop_agent(server['id'])
        started = time.monotonic()
        image, mapping = self.snapshot_image(server['id'], 'agent-hung')
        self.assertLess(time.monotonic() - started, 60)
        self.assertIn(image['nova_snapshot_consistency'],
                      ('paused', 'crash-consistent'))
        self.assertEqual(1, len(mapping))
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING,
                         self.domain(server['id']).state()[0])

    def test_unanswering_agent_with_requirement_is_refused(self):
        required = self._upload_root_image({
            'os_command_line': e2e_base.GUEST_COMMAND_LINE,
            'hw_qemu_guest_agent': 'yes',
            'os_require_quiesce': 'yes'})
        self.addCleanup(self._delete_image, required['id'])
        server = self.boot_from_volume('agent-required', image_id=required['id'],
                                       with_data=False)
        self.stop_agent(server['id'])
        before = {s.id for s in self.project_snapshots()}
        resp = self.client.action(server['id'],
                                  {'createImage': {'name': 'must-quiesce'}})
        self.assertEqual(409, resp.status_code, resp.text)
        self.assertIn('conflictingRequest', resp.json())
        self.assertEqual(before, {s.id for s in self.project_snapshots()})
        self.assertEqual([], self.image_api.list(self.ctx, name='must-quiesce'))
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING,
                         self.domain(server['id']).state()[0])

    def _ensure_compute(self, host):
        # Whatever failed above, the next test needs the service back.
        if 'compute-%s' % host not in self.deployment.processes:
            self.deployment.start_compute(host)
            self.deployment.wait_for_compute(host)

    def test_guest_thawed_when_compute_dies_while_frozen(self):
        server = self.boot_from_volume('frozen-kill', with_data=False)
        self.wait_for_agent(server['id'])
        # Hold the Cinder snapshot in "creating" (cinder-volume stopped), so
        # the guest stays frozen until we kill the compute service.
        with open(os.path.join(self.stack['STACK_DIR'], 'pids',
                               'cinder-volume.pid')) as pid_file:
            cinder_volume = int(pid_file.read().split()[0])
        host = self.hosts[0]
        domain = self.domain(server['id'])

        def freeze_status():
            return json.loads(libvirt_qemu.qemuAgentCommand(
                domain, '{"execute": "guest-fsfreeze-status"}', 10, 0))['return']

        os.kill(cinder_volume, signal.SIGSTOP)
        try:
            pool = concurrent.futures.ThreadPoolExecutor(1)
            pending = pool.submit(self.client.action, server['id'],
                                  {'createImage': {'name': 'killed'}})
            deadline = time.monotonic() + 30
            while freeze_status() != 'frozen':
                self.assertLess(time.monotonic(), deadline, 'never frozen')
                time.sleep(0.05)
            self.deployment.stop_compute(host, sig=signal.SIGKILL)
            killed_at = time.monotonic()
            self.addCleanup(self._ensure_compute, host)
        finally:
            os.kill(cinder_volume, signal.SIGCONT)
        while freeze_status() != 'thawed':
            # the watchdog thaws at the deadline (10 s) after the freeze
            self.assertLess(time.monotonic() - killed_at, 15,
                            'guest still frozen after the deadline')
            time.sleep(0.1)
        # The API notices the dead service (no RPC heartbeat) and answers
        # 503 serviceUnavailable instead of waiting for the call's full
        # timeout.
        answer = pending.result(timeout=90)
        self.assertEqual(503, answer.status_code)
        self.assertIn('serviceUnavailable', answer.json())
        pool.shutdown()
        self.deployment.start_compute(host)
        self.deployment.wait_for_compute(host)
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, domain.state()[0])
        self.assert_still_ticking(server['id'])
        # Cinder has the snapshot the dead service asked for and no image
        # records it: the restarted service deletes it and closes the
        # action as failed.
        deadline = time.monotonic() + 120
        while self.project_snapshots():
            self.assertLess(time.monotonic(), deadline,
                            'leftover snapshots never deleted: %s'
                            % self.project_snapshots())
            time.sleep(1)
        self.assertEqual([], self.image_api.list(self.ctx, name='killed'))
        actions = self.client.request(
            'GET', '/servers/%s/os-instance-actions' % server['id']).json()
        create = [a for a in actions['instanceActions']
                  if a['action'] == 'createImage']
        self.assertEqual('Error', create[0]['message'])


class VolumeAttachmentsApiTest(VolumeBackedTestBase):
    """os-volume_attachments and a server booted from an existing volume,
    through the API, against the real Cinder, Ceph and libvirt."""

    guest_agent = False

    def new_volume(self, size=1, **kwargs):
        volume = self.volume_api.create(
            self.ctx, size, 'e2e-%s' % uuid.uuid4().hex[:8], **kwargs)
        self.addCleanup(self._delete_volume, volume['id'])
        return self.volume_api.wait_for_volume(self.ctx, volume['id'], 300)

    def _delete_volume(self, volume_id):
        try:
            self.volume_api.wait_for_volume(
                self.ctx, volume_id, 120, statuses=('available', 'error'))
            self.volume_api.delete(self.ctx, volume_id)
        except Exception:
            pass

    def wait_volume_status(self, volume_id, status, timeout=120):
        return self.volume_api.wait_for_volume(self.ctx, volume_id, timeout,
                                               statuses=(status,))

    def domain_disks(self, server_id):
        xml = self.domain(server_id).XMLDesc(0)
        return re.findall(r"<target dev='(vd[a-z])'", xml)

    def test_attach_write_and_detach_a_volume(self):
        # Volume first: cleanups run last-in first-out, so the server goes
        # (detaching it) before the volume is deleted.
        volume = self.new_volume()
        server = self.boot('attach-target')
        path = '/servers/%s/os-volume_attachments' % server['id']
        resp = self.client.request('POST', path, json={
            'volumeAttachment': {'volumeId': volume['id']}})
        self.assertEqual(200, resp.status_code, resp.text)
        attachment = resp.json()['volumeAttachment']
        self.assertEqual(volume['id'], attachment['volumeId'])
        self.assertEqual('/dev/vdb', attachment['device'])

        in_use = self.wait_volume_status(volume['id'], 'in-use')
        self.assertEqual([server['id']], [
            a['server_id'] for a in in_use['attachments']])
        self.assertEqual({'/dev/vdb': volume['id']},
                         self.attached_volumes(server['id']))
        self.assertEqual(['vda', 'vdb'], self.domain_disks(server['id']))
        # The guest writes its tick to vdb as soon as it appears: the write
        # reaches the RBD image behind the Cinder volume.
        deadline = time.monotonic() + 60
        while self.rbd_tick(volume['id'])[0] is None:
            self.assertLess(time.monotonic(), deadline,
                            'the guest never wrote to the attached volume')
            time.sleep(1)

        resp = self.client.request('DELETE', '%s/%s' % (path, volume['id']))
        self.assertEqual(202, resp.status_code, resp.text)
        available = self.wait_volume_status(volume['id'], 'available')
        self.assertEqual([], available['attachments'])
        self.assertEqual({}, self.attached_volumes(server['id']))
        self.assertEqual(['vda'], self.domain_disks(server['id']))
        self.assert_still_ticking(server['id'])

    def test_boot_from_an_existing_volume_keeps_it(self):
        volume = self.new_volume(image_id=self.vol_image['id'])
        server = self._boot_with('from-volume', '', [{
            'source_type': 'volume', 'destination_type': 'volume',
            'uuid': volume['id'], 'boot_index': 0,
            'delete_on_termination': False}])
        self.assertEqual({'/dev/vda': volume['id']},
                         self.attached_volumes(server['id']))
        self.wait_volume_status(volume['id'], 'in-use')
        self.client.delete_server(server['id'])
        self.client.wait_for_server_gone(server['id'], timeout=120)
        # delete_on_termination false: the volume outlives the server, with
        # what the guest wrote on it.
        self.wait_volume_status(volume['id'], 'available')
        tick, _fsck = self.rbd_tick(volume['id'])
        self.assertIsNotNone(tick)

    def test_build_failure_cleans_up_by_delete_on_termination(self):
        # The user's own volume, then a quota that leaves room for one more:
        # of the two volumes the build asks Cinder for, one is refused.
        existing = self.new_volume()
        client = self.volume_api._client(self.ctx)
        admin = self.volume_api._client(self.admin_ctx)
        admin.quotas.update(self.project, volumes=2)
        self.addCleanup(admin.quotas.update, self.project, volumes=-1)
        resp = self.client.request('POST', '/servers', json={'server': {
            'name': 'over-quota', 'imageRef': '', 'flavorRef': '2',
            'networks': 'none', 'block_device_mapping_v2': [
                {'source_type': 'image', 'destination_type': 'volume',
                 'uuid': self.vol_image['id'], 'boot_index': 0,
                 'volume_size': 1, 'delete_on_termination': True},
                {'source_type': 'volume', 'destination_type': 'volume',
                 'uuid': existing['id'], 'boot_index': -1,
                 'delete_on_termination': True},
                {'source_type': 'blank', 'destination_type': 'volume',
                 'volume_size': 1, 'boot_index': -1,
                 'delete_on_termination': True}]}})
        self.assertEqual(202, resp.status_code, resp.text)
        server_id = resp.json()['server']['id']
        self.addCleanup(self._delete_server, server_id)
        server = self.client.wait_for_server(server_id, status='ERROR',
                                             timeout=180)
        # Cinder's refusal reaches the user as the fault: quota, 403.
        self.assertEqual(403, server['fault']['code'], server['fault'])
        self.assertIn('quota', server['fault']['message'].lower())
        # What the build made is gone; the volume the user brought stays
        # (its delete_on_termination only counts once it is attached to a
        # server that was built), with no attachment left.
        deadline = time.monotonic() + 120
        while True:
            volumes = {v.id: v for v in client.volumes.list()
                       if v.status != 'deleting'}
            if set(volumes) == {existing['id']}:
                break
            self.assertLess(time.monotonic(), deadline,
                            'volumes left: %s' % {
                                v.id: v.status for v in volumes.values()})
            time.sleep(1)
        kept = self.volume_api.get(self.ctx, existing['id'])
        self.assertEqual('available', kept['status'])
        self.assertEqual([], kept['attachments'])
        self.assertNotIn('instance-%s' % server_id,
                         [d.name() for d in self.libvirt.listAllDomains()])
