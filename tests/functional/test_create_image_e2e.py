"""createImage end to end: API → RabbitMQ → compute → libvirt/QEMU → Glance.

A guest that keeps writing ``tick N`` to its disk is snapshotted while it
runs; a server booted from the snapshot must find exactly the tick that the
snapshot captured and count on from there.
"""

import concurrent.futures
import subprocess

import time

import libvirt

from nova_snapshot import exception
from tests.functional import e2e_base
from tests.functional.fixtures import watchers


def _captured_tick(test, image_id):
    data = test.download_raw(image_id)
    tick = e2e_base.read_tick(data)
    test.assertIsNotNone(tick, 'the snapshot holds no tick in sector 1')
    return tick, data


class _RestoreChecks:
    """Checks shared by the live and the suspend path."""

    def assert_restores(self, image, tick):
        restored = self.boot('restored', image_id=image['id'],
                             wait_for_ticks=False)
        match, _ = self.wait_for_console(
            restored['id'], r'nova-snapshot-guest: last tick (\d+|none)')
        self.assertEqual(str(tick), match.group(1),
                         'the restored guest did not find the captured tick')
        # and it counts on from there
        match, _ = self.wait_for_console(
            restored['id'], r'nova-snapshot-guest: tick (\d+)')
        self.assertGreater(int(match.group(1)), tick)

    def assert_snapshot_of_running_guest(self):
        server = self.boot('source')
        before, _ = self.wait_for_console(server['id'],
                                          r'nova-snapshot-guest: tick (\d+)')
        tick_before = int(before.group(1))
        with watchers.DomainStateWatcher(self.domain(server['id'])) as watch:
            image = self.snapshot_and_wait(server['id'], 'running-snap',
                                           metadata={'image_type': 'test'})
        tick, _ = _captured_tick(self, image['id'])
        self.assertGreaterEqual(tick, tick_before)
        self.assertEqual('ACTIVE', self.client.get_server(server['id'])['status'])
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING,
                         self.domain(server['id']).state()[0])
        # Nova's properties (tempest overrides image_type through metadata)
        self.assertEqual('test', image['image_type'])
        self.assertEqual(server['id'], image['instance_uuid'])
        self.assertEqual(self.base_image['id'], image['base_image_ref'])
        self.assertEqual(self.base_image['kernel_id'], image['kernel_id'])
        self.assertEqual(self.base_image['ramdisk_id'], image['ramdisk_id'])
        self.assertEqual('qcow2', image['disk_format'])
        self.assertEqual('bare', image['container_format'])
        self.assertEqual('private', image['visibility'])
        self.assert_restores(image, tick)
        return watch


class LiveSnapshotTest(e2e_base.EndToEndTestCase, _RestoreChecks):
    """The default path: the guest's vCPUs never stop."""

    def test_running_guest_is_never_paused_and_restores(self):
        watch = self.assert_snapshot_of_running_guest()
        self.assertEqual({libvirt.VIR_DOMAIN_RUNNING}, watch.states_seen,
                         'the live path paused or stopped the guest')

    def test_capture_equals_reference_read_at_the_same_point(self):
        # Pausing the guest through the API fixes the disk content, so a
        # reference read and the live capture must agree byte for byte.
        server = self.boot('paused-source')
        resp = self.client.action(server['id'], {'pause': None})
        self.assertEqual(202, resp.status_code, resp.text)
        self.client.wait_for_server(server['id'], status='PAUSED')
        reference = self.deployment.state_dir + '/reference.raw'
        e2e_base.qcow2_to_raw(self.instance_disk(server['id']), reference)
        with open(reference, 'rb') as handle:
            expected = handle.read()
        image = self.snapshot_and_wait(server['id'], 'paused-snap')
        captured = self.download_raw(image['id'])
        self.assertEqual(len(expected), len(captured))
        self.assertTrue(expected == captured,
                        'captured image differs from the reference read')
        self.assertEqual('PAUSED', self.client.get_server(server['id'])['status'])
        self.assertEqual(libvirt.VIR_DOMAIN_PAUSED,
                         self.domain(server['id']).state()[0])

    def test_stopped_and_suspended_servers_end_as_they_started(self):
        server = self.boot('states')
        for action, status in (('suspend', 'SUSPENDED'), ('os-stop', 'SHUTOFF')):
            if action == 'os-stop':
                self.client.action(server['id'], {'resume': None})
                self.client.wait_for_server(server['id'])
            resp = self.client.action(server['id'], {action: None})
            self.assertEqual(202, resp.status_code, resp.text)
            self.client.wait_for_server(server['id'], status=status)
            image = self.snapshot_and_wait(server['id'], 'snap-' + status)
            self.assertEqual('active', image['status'])
            self.assertIsNotNone(e2e_base.read_tick(
                self.download_raw(image['id'])))
            self.assertEqual(status, self.client.get_server(server['id'])['status'])

    def test_second_concurrent_create_image_is_409(self):
        server = self.boot('race')
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            responses = list(pool.map(
                lambda n: self.client.action(
                    server['id'], {'createImage': {'name': 'race-%d' % n}}),
                range(2)))
        codes = sorted(r.status_code for r in responses)
        self.assertEqual([202, 409], codes, [r.text for r in responses])
        loser = next(r for r in responses if r.status_code == 409)
        self.assertIn('conflictingRequest', loser.json())
        winner = next(r for r in responses if r.status_code == 202)
        image_id = winner.json()['image_id']
        self.addCleanup(self._delete_image, image_id)
        self.wait_for_image(image_id)
        self.client.wait_for_server(server['id'], task_state=None)

    def test_actions_and_notifications_are_recorded(self):
        server = self.boot('actions')
        received = self.listen_for_notifications()
        image = self.snapshot_and_wait(server['id'], 'action-snap')
        # Only this server's events: the topic's queue may also hold
        # what earlier tests of this class sent.
        received_here = []
        deadline = time.monotonic() + 30
        while not any(n[2] == 'instance.snapshot.end' for n in received_here):
            self.assertLess(time.monotonic(), deadline, received)
            time.sleep(0.1)
            received_here = [n for n in received
                             if n[3].get('instance_uuid') == server['id']]
        received = received_here
        snapshot_events = [(n[0], n[2]) for n in received
                           if n[2].startswith('instance.snapshot.')]
        self.assertEqual([('INFO', 'instance.snapshot.start'),
                          ('INFO', 'instance.snapshot.end')], snapshot_events)
        for _, publisher, event_type, payload in received:
            if event_type.startswith('instance.snapshot.'):
                self.assertEqual(image['id'], payload['snapshot_image_id'])
                self.assertEqual(server['id'], payload['instance_uuid'])
                self.assertEqual('nova-snapshot-compute:%s' % self.hosts[0],
                                 publisher)
        resp = self.client.request(
            'GET', '/servers/%s/os-instance-actions' % server['id'])
        self.assertEqual(200, resp.status_code, resp.text)
        actions = [a['action'] for a in resp.json()['instanceActions']]
        self.assertIn('createImage', actions)
        server = self.client.get_server(server['id'])
        self.assertIsNone(server['OS-EXT-STS:task_state'])
        self.assertEqual('active', image['status'])


class SuspendSnapshotTest(e2e_base.EndToEndTestCase, _RestoreChecks):
    """The classic path: the guest is saved while its disk is copied.

    Run in the development set-up (noauth API, identity headers to the
    noauth Glance): the one createImage class that keeps that mode honest.
    """

    extra_conf = {'libvirt': {'live_snapshot': 'false'}}
    keystone = False

    def test_running_guest_is_suspended_then_running_again(self):
        watch = self.assert_snapshot_of_running_guest()
        self.assertGreater(watch.not_running_seconds, 0.0,
                           'the suspend path never stopped the guest')


class FailureTest(e2e_base.EndToEndTestCase):
    """Failures leave no image, no task state and a running guest."""

    glance_through_proxy = True

    def tearDown(self):
        self.proxy.refuse_upload_status = None
        self.proxy.upload_delay_per_mib = 0.0
        self.proxy.stall_uploads = False
        super().tearDown()

    def assert_image_gone(self, image_id):
        with self.assertRaises(exception.ImageNotFound):
            self.image_api.get(self.ctx, image_id)

    def assert_snapshot_event_failed(self, server_id):
        # Nova shows a server's fault only in ERROR; a failed snapshot leaves
        # the server ACTIVE, so the failure is read where Nova records it:
        # the createImage action's compute event (events are admin-only
        # below 2.51).
        admin = self.admin_client()
        actions = admin.request(
            'GET', '/servers/%s/os-instance-actions' % server_id).json()
        create = [a for a in actions['instanceActions']
                  if a['action'] == 'createImage']
        self.assertEqual(1, len(create), actions)
        detail = admin.request('GET', '/servers/%s/os-instance-actions/%s' % (
            server_id, create[0]['request_id'])).json()['instanceAction']
        results = {e['event']: e['result'] for e in detail['events']}
        self.assertEqual('Error', results.get('compute_snapshot_instance'),
                         detail)

    def wait_for_no_task(self, server_id, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            server = self.client.get_server(server_id)
            if server['OS-EXT-STS:task_state'] is None:
                return server
            self.assertLess(time.monotonic(), deadline, server)
            time.sleep(0.2)

    def test_glance_refusing_the_upload(self):
        server = self.boot('refused')
        received = self.listen_for_notifications()
        self.proxy.refuse_upload_status = 500
        image_id = self.client.create_image(server['id'], 'refused')
        server = self.wait_for_no_task(server['id'])
        self.assert_image_gone(image_id)
        self.assert_snapshot_event_failed(server['id'])
        # The topic's queue also holds what earlier tests of this class
        # sent: look for this image's error.
        deadline = time.monotonic() + 30
        while True:
            errors = [n for n in received
                      if n[2] == 'instance.snapshot.error'
                      and n[3].get('snapshot_image_id') == image_id]
            if errors:
                break
            self.assertLess(time.monotonic(), deadline, received)
            time.sleep(0.1)
        self.assertEqual('ERROR', errors[0][0])
        self.assertEqual(server['id'], errors[0][3]['instance_uuid'])
        self.assertIsNotNone(errors[0][3]['fault'])
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING,
                         self.domain(server['id']).state()[0])
        self.assert_still_ticking(server['id'])

    def test_domain_disappearing(self):
        server = self.boot('vanishing')
        host = self.hosts[0]
        proc = self.deployment.processes['compute-%s' % host]
        proc.send_signal(19)  # SIGSTOP: the cast waits in RabbitMQ
        try:
            image_id = self.client.create_image(server['id'], 'vanishing')
            for command in (['destroy'], ['undefine', '--managed-save']):
                subprocess.run(['virsh', '-c', 'qemu:///system'] + command
                               + ['instance-%s' % server['id']], check=True,
                               capture_output=True)
        finally:
            proc.send_signal(18)  # SIGCONT
        self.wait_for_no_task(server['id'])
        self.assert_image_gone(image_id)
        self.assert_snapshot_event_failed(server['id'])

    def test_compute_killed_mid_upload_is_repaired_at_restart(self):
        server = self.boot('crash')
        host = self.hosts[0]
        self.proxy.stall_uploads = True
        image_id = self.client.create_image(server['id'], 'crash')
        deadline = time.monotonic() + 60
        while self.client.get_server(server['id'])[
                'OS-EXT-STS:task_state'] != 'image_uploading':
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.1)
        self.deployment.stop_compute(host, sig=9)
        self.proxy.stall_uploads = False
        self.assertEqual('image_uploading', self.client.get_server(
            server['id'])['OS-EXT-STS:task_state'])
        self.deployment.start_compute(host)
        server = self.wait_for_no_task(server['id'])
        self.assert_image_gone(image_id)
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING,
                         self.domain(server['id']).state()[0])
        self.assert_still_ticking(server['id'])
