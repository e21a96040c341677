"""LibvirtDriver with Ceph RBD volumes, the guest agent and the watchdog.

Needs libvirtd, the tiny guest (``tools/guest/build.sh``) and a Ceph
cluster: ``CEPH_CONF`` from the environment or ``.stack/env``, with an RBD
pool ``CEPH_POOL`` (default ``volumes``). Fails, never skips, when one is
missing. Volumes are RBD images this test makes (``ns-virt-test-*``) with
the connection_info Cinder's RBD driver would hand out for them.
"""

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest
import uuid

import libvirt
import libvirt_qemu

from nova_snapshot.compute import power_state
from nova_snapshot import exception
from nova_snapshot.virt.libvirt import quiesce as vquiesce
from tests.functional.fixtures import guest
from tests.functional.fixtures import stack

from tests.functional import test_libvirt_driver as base

LAST_TICK_VDB = re.compile(r'nova-snapshot-guest: last tick vdb (\d+|none)')
MOUNTED_VDB = re.compile(r'nova-snapshot-guest: mounted /dev/vdb on /vdb')
TICK_RE = re.compile(rb'tick (\d+)\n')

FREEZER = '''
import sys, time
from nova_snapshot import conf
from nova_snapshot.virt.libvirt import driver
c = conf.new_conf([])
c.set_override('instances_path', sys.argv[1])
c.set_override('connection_uri', sys.argv[2], group='libvirt')
d = driver.LibvirtDriver(c, None)
d.quiesce(None, {'uuid': sys.argv[3]}, float(sys.argv[4]))
print('frozen', flush=True)
time.sleep(600)
'''


def _mon_v1(ceph_conf):
    """(host, port) of the v1 monitor address, as Cinder reports it."""
    with open(ceph_conf) as f:
        text = f.read()
    match = re.search(r'v1:([0-9.]+):(\d+)', text)
    if match:
        return match.group(1), match.group(2)
    match = re.search(r'mon_host\s*=\s*([0-9.]+)(?::(\d+))?', text)
    if not match:
        raise AssertionError('no mon_host in %s' % ceph_conf)
    return match.group(1), match.group(2) or '6789'


class LibvirtVolumesTest(base.LibvirtDriverTest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        env = stack.read_stack_env()
        cls.ceph_conf = os.environ.get('CEPH_CONF') or env.get('CEPH_CONF')
        if not cls.ceph_conf or not os.path.exists(cls.ceph_conf):
            raise AssertionError('no Ceph: set CEPH_CONF or start the stack '
                                 '(tools/stack/start.sh)')
        cls.pool = os.environ.get('CEPH_POOL') or env.get(
            'CEPH_POOL', 'volumes')
        cls.mon = _mon_v1(cls.ceph_conf)
        # cephx, as Cinder hands it out: its user and the libvirt secret
        # start.sh defined with that user's key.
        cls.ceph_user = env.get('CEPH_USER', 'cinder')
        cls.secret_uuid = env.get('CEPH_SECRET_UUID')
        if not cls.secret_uuid:
            raise AssertionError('no CEPH_SECRET_UUID in .stack/env; run '
                                 'tools/stack/start.sh')
        # Fails when the cluster or the pool is not there.
        cls.rbd(['ls', cls.pool])

    def setUp(self):
        # Registered first, so it runs last: after the guests are gone
        # (an image a QEMU still has open cannot be removed).
        self.rbd_images = []
        self.addCleanup(self._remove_images)
        super().setUp()

    def _remove_images(self):
        for name in self.rbd_images:
            self.rbd(['rm', '--no-progress', '%s/%s' % (self.pool, name)])

    # Not run here: the image-backed tests of the base class.
    test_spawn_power_cycle_keeps_the_disk = None
    test_pause_suspend_and_destroy = None
    test_guest_agent_freezes_the_ext4_disk = None
    test_repair_after_crash_resumes_a_guest_paused_by_a_snapshot = None
    test_snapshot_delegates_and_uploads_a_disk_with_one_tick = None
    test_failed_spawn_leaves_nothing = None

    # -- RBD helpers ---------------------------------------------------------

    @classmethod
    def rbd(cls, argv):
        env = dict(os.environ, CEPH_CONF=cls.ceph_conf)
        result = subprocess.run(['rbd'] + argv, env=env,
                                capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise AssertionError('rbd %s: %s' % (' '.join(argv),
                                                 result.stderr))
        return result.stdout

    def rbd_uri(self, name):
        return 'rbd:%s/%s:conf=%s' % (self.pool, name, self.ceph_conf)

    def make_volume(self, source=None, size_mb=64):
        """An RBD image (from a qcow2 file, or blank); its connection_info."""
        name = 'ns-virt-test-%s' % uuid.uuid4().hex[:12]
        if source:
            subprocess.run(['qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw',
                            source, self.rbd_uri(name)], check=True)
        else:
            self.rbd(['create', '--size', str(size_mb), '%s/%s' % (
                self.pool, name)])
        self.rbd_images.append(name)
        volume_id = str(uuid.uuid4())
        return name, {
            'driver_volume_type': 'rbd',
            'data': {'name': '%s/%s' % (self.pool, name),
                     'hosts': [self.mon[0]], 'ports': [self.mon[1]],
                     'auth_enabled': True, 'auth_username': self.ceph_user,
                     'secret_type': 'ceph',
                     'secret_uuid': self.secret_uuid,
                     'cluster_name': 'ceph', 'discard': True,
                     'access_mode': 'rw', 'volume_id': volume_id},
            'serial': volume_id,
        }

    def rbd_tick(self, name):
        """The tick in sector 1 of an RBD image (None when blank)."""
        out = os.path.join(self.tmp, 'sector-%s' % uuid.uuid4().hex)
        subprocess.run(['qemu-img', 'dd', '-f', 'raw', '-O', 'raw', 'bs=512',
                        'count=2', 'if=%s' % self.rbd_uri(name),
                        'of=%s' % out], check=True, capture_output=True)
        with open(out, 'rb') as f:
            f.seek(base.SECTOR)
            match = TICK_RE.match(f.read(base.SECTOR))
        os.unlink(out)
        return int(match.group(1)) if match else None

    def wait_rbd_tick_above(self, name, value, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            tick = self.rbd_tick(name)
            if tick is not None and (value is None or tick > value):
                return tick
            if time.monotonic() > deadline:
                self.fail('%s: tick did not pass %s (%s)' % (
                    name, value, tick))
            time.sleep(0.2)

    # -- guests ----------------------------------------------------------------

    def boot_from_volume(self, root_ci, data_ci=None, agent=False):
        instance = self.make_instance()
        instance['image_ref'] = ''
        instance['system_metadata'] = {
            'image_kernel_id': 'kernel-image',
            'image_ramdisk_id': 'ramdisk-image',
        }
        if agent:
            instance['system_metadata']['image_hw_qemu_guest_agent'] = 'yes'
        bdms = [{'connection_info': root_ci, 'mount_device': 'vda',
                 'boot_index': 0, 'disk_bus': 'virtio',
                 'volume_id': root_ci['data']['volume_id']}]
        if data_ci:
            bdms.append({'connection_info': data_ci,
                         'mount_device': '/dev/vdb', 'boot_index': None,
                         'disk_bus': None,
                         'volume_id': data_ci['data']['volume_id']})
        started = time.monotonic()
        state = self.driver.spawn(None, instance, {}, block_device_info={
            'root_device_name': '/dev/vda', 'block_device_mapping': bdms})
        spawned = time.monotonic()
        self.assertEqual(power_state.RUNNING, state)
        self.wait_console(instance, base.TICK)
        print('boot from RBD: spawn() %.2f s, to first tick %.2f s' % (
            spawned - started, time.monotonic() - spawned))
        return instance

    def wait_agent(self, instance):
        self.wait_console(instance, base.AGENT_UP)
        dom = self.domain(instance)
        guest.wait_for_guest_agent(dom)
        return dom

    def fsfreeze_status(self, dom):
        reply = libvirt_qemu.qemuAgentCommand(
            dom, '{"execute":"guest-fsfreeze-status"}', 10, 0)
        return json.loads(reply)['return']

    def inst_dir(self, instance):
        return os.path.join(self.conf.instances_path, instance['uuid'])

    # -- tests -----------------------------------------------------------------

    def test_boot_from_rbd_root_with_a_data_volume(self):
        root, root_ci = self.make_volume(
            os.path.join(self.guest_dir, 'disk.qcow2'))
        data, data_ci = self.make_volume()
        instance = self.boot_from_volume(root_ci, data_ci)
        self.assertEqual(['none'], self.wait_console(instance,
                                                     base.LAST_TICK))
        self.assertEqual(['none'], self.wait_console(instance,
                                                     LAST_TICK_VDB))
        # No local root disk: nothing but the kernel files was fetched.
        self.assertFalse(os.path.exists(self.disk_path(instance)))
        xml = self.domain(instance).XMLDesc(0)
        self.assertEqual(2, xml.count("protocol='rbd'") +
                         xml.count('protocol="rbd"'))
        self.assertIn(root_ci['data']['volume_id'], xml)
        self.assertIn(data_ci['data']['volume_id'], xml)

        # The guest writes to both volumes.
        first_root = self.wait_rbd_tick_above(root, None)
        first_data = self.wait_rbd_tick_above(data, None)
        self.wait_rbd_tick_above(root, first_root)
        self.wait_rbd_tick_above(data, first_data)

        # destroy keeps the volumes' data; a new guest continues from it.
        self.driver.power_off(instance)
        on_root = self.rbd_tick(root)
        on_data = self.rbd_tick(data)
        self.driver.destroy(None, instance)
        self.assertEqual(on_root, self.rbd_tick(root))
        self.assertEqual(on_data, self.rbd_tick(data))
        again = self.boot_from_volume(root_ci, data_ci)
        self.assertEqual([str(on_root)], self.wait_console(again,
                                                           base.LAST_TICK))
        self.assertEqual([str(on_data)], self.wait_console(again,
                                                           LAST_TICK_VDB))

    def ceph_key(self):
        result = subprocess.run(
            ['ceph', '-c', self.ceph_conf, 'auth', 'get-key',
             'client.%s' % self.ceph_user],
            capture_output=True, text=True, timeout=60, check=True)
        return result.stdout.strip()

    def own_secret(self, connection_info, key):
        """The connection info names a secret this host does not have yet
        and carries the key itself."""
        secret_uuid = str(uuid.uuid4())
        connection_info['data'].update(secret_uuid=secret_uuid, secret=key)
        self.addCleanup(self._undefine_secret, secret_uuid)
        return secret_uuid

    def libvirt_conn(self):
        conn = libvirt.open(self.uri)
        self.addCleanup(conn.close)
        return conn

    def _undefine_secret(self, secret_uuid):
        try:
            self.libvirt_conn().secretLookupByUUIDString(secret_uuid).undefine()
        except libvirt.libvirtError:
            pass

    def test_cephx_key_in_the_connection_info_defines_the_secret(self):
        root, root_ci = self.make_volume(
            os.path.join(self.guest_dir, 'disk.qcow2'))
        secret_uuid = self.own_secret(root_ci, self.ceph_key())
        instance = self.boot_from_volume(root_ci)
        xml = self.domain(instance).XMLDesc(0)
        self.assertIn("<auth username='%s'>" % self.ceph_user, xml)
        self.assertIn(secret_uuid, xml)
        secret = self.libvirt_conn().secretLookupByUUIDString(secret_uuid)
        self.assertEqual(libvirt.VIR_SECRET_USAGE_TYPE_CEPH,
                         secret.usageType())
        self.wait_rbd_tick_above(root, None)

    def test_wrong_cephx_key_is_refused_by_ceph(self):
        # The cluster enforces cephx: the same disk with a key that is
        # not client.cinder's does not open.
        _root, root_ci = self.make_volume(
            os.path.join(self.guest_dir, 'disk.qcow2'))
        wrong = base64.b64encode(os.urandom(16)).decode()
        self.own_secret(root_ci, wrong)
        instance = self.make_instance()
        instance['image_ref'] = ''
        instance['system_metadata'] = {'image_kernel_id': 'kernel-image',
                                       'image_ramdisk_id': 'ramdisk-image'}
        started = time.monotonic()
        # Any of ours (QEMU's refusal comes back as HypervisorError).
        self.assertRaises(exception.NovaSnapshotException,
                          self.driver.spawn, None, instance, {},
                          block_device_info={
                              'root_device_name': '/dev/vda',
                              'block_device_mapping': [{
                                  'connection_info': root_ci,
                                  'mount_device': 'vda', 'boot_index': 0,
                                  'disk_bus': 'virtio',
                                  'volume_id': root_ci['data']['volume_id']}]})
        print('refused after %.1f s' % (time.monotonic() - started))
        self.assertNotIn(instance['uuid'], self.driver.list_instance_uuids())

    def test_attach_and_detach_a_volume_live(self):
        root, root_ci = self.make_volume(
            os.path.join(self.guest_dir, 'disk.qcow2'))
        data, data_ci = self.make_volume()
        instance = self.boot_from_volume(root_ci)
        dom = self.domain(instance)

        bad = dict(data_ci, driver_volume_type='iscsi')
        self.assertRaises(exception.VolumeDriverNotFound,
                          self.driver.attach_volume, None, bad, instance,
                          '/dev/vdb')
        self.assertRaises(exception.InvalidDevicePath,
                          self.driver.attach_volume, None, data_ci, instance,
                          '/dev/vda')

        started = time.monotonic()
        self.driver.attach_volume(None, data_ci, instance, '/dev/vdb')
        print('attach_volume (live): %.3f s' % (time.monotonic() - started))
        self.assertIn(data, dom.XMLDesc(0))
        self.assertIn(data, dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        # The guest sees the new disk and starts writing ticks to it.
        tick = self.wait_rbd_tick_above(data, None)
        self.wait_rbd_tick_above(data, tick)

        started = time.monotonic()
        self.driver.detach_volume(None, data_ci, instance, '/dev/vdb')
        print('detach_volume (live): %.3f s' % (time.monotonic() - started))
        self.assertNotIn(data, dom.XMLDesc(0))
        self.assertNotIn(data, dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        stopped = self.rbd_tick(data)
        time.sleep(1)
        self.assertEqual(stopped, self.rbd_tick(data))
        self.wait_rbd_tick_above(root, self.rbd_tick(root))
        # Idempotent.
        self.driver.detach_volume(None, data_ci, instance, '/dev/vdb')

    def test_quiesce_freezes_both_ext4_volumes_and_stops_the_ticks(self):
        ext4 = os.path.join(self.guest_dir, 'disk-ext4.qcow2')
        root, root_ci = self.make_volume(ext4)
        data, data_ci = self.make_volume(ext4)
        instance = self.boot_from_volume(root_ci, data_ci, agent=True)
        self.wait_console(instance, base.MOUNTED)
        self.wait_console(instance, MOUNTED_VDB)
        dom = self.wait_agent(instance)
        self.wait_rbd_tick_above(data, None)

        started = time.monotonic()
        facts = self.driver.quiesce(None, instance, 30)
        frozen_at = time.monotonic()
        self.assertEqual(2, facts['frozen_filesystems'])
        self.assertEqual('frozen', self.fsfreeze_status(dom))
        token = vquiesce.read_token(vquiesce.token_path(
            self.inst_dir(instance), vquiesce.FREEZE))
        self.assertIsNotNone(token)
        # Frozen: the tick loop blocks on its file write, so both raw
        # sectors hold the same tick and stay there.
        time.sleep(0.3)
        root_tick, data_tick = self.rbd_tick(root), self.rbd_tick(data)
        self.assertEqual(root_tick, data_tick)
        time.sleep(0.7)
        self.assertEqual(root_tick, self.rbd_tick(root))
        self.assertEqual(data_tick, self.rbd_tick(data))

        thaw_started = time.monotonic()
        self.driver.unquiesce(None, instance)
        thawed_at = time.monotonic()
        print('quiesce %.3f s, unquiesce %.3f s (2 filesystems on RBD)' % (
            frozen_at - started, thawed_at - thaw_started))
        self.assertEqual('thawed', self.fsfreeze_status(dom))
        self.assertFalse(vquiesce.is_armed(self.inst_dir(instance),
                                           vquiesce.FREEZE))
        self.wait_rbd_tick_above(root, root_tick)
        self.wait_rbd_tick_above(data, data_tick)
        # The watchdog stood down and exited.
        self._wait_gone(token['pid'], 5)
        self.driver.unquiesce(None, instance)

    def _wait_gone(self, pid, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            # A zombie child of this process counts as gone.
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            except ChildProcessError:
                pass
            if time.monotonic() > deadline:
                self.fail('process %d is still there' % pid)
            time.sleep(0.05)

    def test_watchdog_thaws_after_the_freezer_is_killed(self):
        ext4 = os.path.join(self.guest_dir, 'disk-ext4.qcow2')
        root, root_ci = self.make_volume(ext4)
        instance = self.boot_from_volume(root_ci, agent=True)
        self.wait_console(instance, base.MOUNTED)
        dom = self.wait_agent(instance)

        deadline = 4.0
        helper = subprocess.Popen(
            [sys.executable, '-c', FREEZER, self.conf.instances_path,
             self.uri, instance['uuid'], str(deadline)],
            stdout=subprocess.PIPE, text=True, cwd=stack.REPO_ROOT)
        self.addCleanup(helper.wait)
        self.assertEqual('frozen', helper.stdout.readline().strip())
        frozen_at = time.monotonic()
        helper.send_signal(signal.SIGKILL)
        helper.stdout.close()
        self.assertEqual('frozen', self.fsfreeze_status(dom))
        while self.fsfreeze_status(dom) == 'frozen':
            if time.monotonic() - frozen_at > deadline + 5:
                self.fail('still frozen %.1f s after the freeze' % (
                    time.monotonic() - frozen_at))
            time.sleep(0.1)
        thawed_after = time.monotonic() - frozen_at
        print('watchdog thawed %.2f s after the freeze (deadline %.1f s)' % (
            thawed_after, deadline))
        self.assertGreater(thawed_after, deadline - 1.0)
        self.assertFalse(vquiesce.is_armed(self.inst_dir(instance),
                                           vquiesce.FREEZE))

        # thaw_if_frozen (service start) does it too, with no watchdog.
        helper = subprocess.Popen(
            [sys.executable, '-c', FREEZER, self.conf.instances_path,
             self.uri, instance['uuid'], '120'],
            stdout=subprocess.PIPE, text=True, cwd=stack.REPO_ROOT)
        self.addCleanup(helper.wait)
        self.assertEqual('frozen', helper.stdout.readline().strip())
        helper.send_signal(signal.SIGKILL)
        helper.stdout.close()
        token = vquiesce.read_token(vquiesce.token_path(
            self.inst_dir(instance), vquiesce.FREEZE))
        os.kill(token['pid'], signal.SIGKILL)   # the watchdog it started
        self.assertEqual('frozen', self.fsfreeze_status(dom))
        self.assertEqual(['thawed filesystems'],
                         self.driver.repair_after_crash(instance)[-1:])
        self.assertEqual('thawed', self.fsfreeze_status(dom))
        self.assertEqual([], self.driver.thaw_if_frozen(instance))

    def test_agent_not_answering_fails_and_the_watchdog_stays(self):
        ext4 = os.path.join(self.guest_dir, 'disk-ext4.qcow2')
        root, root_ci = self.make_volume(ext4)
        instance = self.boot_from_volume(root_ci, agent=True)
        dom = self.wait_agent(instance)
        # Stop qemu-ga inside the guest: the channel stays open, nobody
        # answers (what a hung agent looks like to libvirt).
        libvirt_qemu.qemuAgentCommand(dom, json.dumps({
            'execute': 'guest-exec', 'arguments': {
                'path': '/bin/sh', 'arg': [
                    '-c', 'sleep 0.2; kill -STOP $(cat /run/qemu-ga.pid)']}}),
            10, 0)
        time.sleep(1)
        started = time.monotonic()
        self.assertRaises(exception.InstanceQuiesceFailed,
                          self.driver.quiesce, None, instance, 30)
        print('quiesce with a hung agent failed after %.2f s' % (
            time.monotonic() - started))
        self.assertTrue(vquiesce.is_armed(self.inst_dir(instance),
                                          vquiesce.FREEZE))
        self.assertRaises(exception.InstanceQuiesceFailed,
                          self.driver.unquiesce, None, instance)
        self.assertTrue(vquiesce.is_armed(self.inst_dir(instance),
                                          vquiesce.FREEZE))

    def test_pause_vcpus_and_no_agent(self):
        root, root_ci = self.make_volume(
            os.path.join(self.guest_dir, 'disk.qcow2'))
        instance = self.boot_from_volume(root_ci)
        # No agent channel in this guest.
        self.assertRaises(exception.InstanceQuiesceNotSupported,
                          self.driver.quiesce, None, instance, 5)
        self.assertFalse(vquiesce.is_armed(self.inst_dir(instance),
                                           vquiesce.FREEZE))
        self.driver.unquiesce(None, instance)

        started = time.monotonic()
        self.assertTrue(self.driver.pause_vcpus(instance, deadline=30))
        paused = time.monotonic()
        self.assertEqual(power_state.PAUSED,
                         self.driver.get_power_state(instance))
        self.assertTrue(self.driver.resume_vcpus(instance))
        print('pause_vcpus %.3f s, resume_vcpus %.3f s' % (
            paused - started, time.monotonic() - paused))
        self.assertEqual(power_state.RUNNING,
                         self.driver.get_power_state(instance))
        self.assertFalse(self.driver.resume_vcpus(instance))

        # Not resumed by the service: the watchdog does it at the deadline.
        self.assertTrue(self.driver.pause_vcpus(instance, deadline=2))
        paused = time.monotonic()
        while (self.driver.get_power_state(instance) ==
               power_state.PAUSED):
            if time.monotonic() - paused > 8:
                self.fail('the watchdog did not resume the guest')
            time.sleep(0.1)
        print('watchdog resumed the vCPUs after %.2f s (deadline 2 s)' % (
            time.monotonic() - paused))
        self.assertFalse(vquiesce.is_armed(self.inst_dir(instance),
                                           vquiesce.PAUSE))

        # A guest its user paused stays paused.
        self.driver.pause(instance)
        self.assertFalse(self.driver.pause_vcpus(instance, deadline=2))
        self.assertFalse(self.driver.resume_vcpus(instance))
        self.assertEqual(power_state.PAUSED,
                         self.driver.get_power_state(instance))


if __name__ == '__main__':
    unittest.main()
