"""reboot, rebuild and lock end to end: API -> RabbitMQ -> compute ->
libvirt/QEMU -> Glance, as a Keystone user of a project of the class's own.

The tiny guest counts ``tick N`` in sector 1 of its disk and prints
``last tick N`` when it boots, so a restarted guest shows on its console
(the log is appended to across boots) and tells which disk it booted from.
"""

import re
import time

from tests.functional import e2e_base
from tests.functional.fixtures import client as client_fixture
from tests.functional import test_volume_backed_e2e

LAST_TICK = r'nova-snapshot-guest: last tick (\d+|none)'


class RebootRebuildLockTest(e2e_base.EndToEndTestCase):

    keystone_own_project = True
    # The test guest (busybox as PID 1) ignores the ACPI power button: a
    # soft reboot falls back to hard after this bounded wait, as in Nova.
    extra_conf = {'libvirt': {'wait_soft_reboot_seconds': 5}}

    def _boots(self, server_id):
        return re.findall(LAST_TICK, self.client.console(server_id))

    def _wait_for_boots(self, server_id, count, timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            boots = self._boots(server_id)
            if len(boots) >= count:
                return boots
            self.assertLess(time.monotonic(), deadline,
                            'the guest did not boot again')
            time.sleep(0.3)

    def _reboot(self, server, kind):
        domain_id = self.domain(server['id']).ID()
        tick_before = self.latest_tick(server['id'])
        boots = len(self._boots(server['id']))
        resp = self.client.action(server['id'], {'reboot': {'type': kind}})
        self.assertEqual(202, resp.status_code, resp.text)
        self.client.wait_for_server(server['id'], timeout=120)
        found = self._wait_for_boots(server['id'], boots + 1)
        # A new QEMU process booted the same disk: the counter goes on
        # from where the running guest was.
        self.assertNotEqual(domain_id, self.domain(server['id']).ID())
        self.assertGreaterEqual(int(found[boots]), tick_before)
        self.assert_still_ticking(server['id'])

    def test_soft_and_hard_reboot_restart_the_guest(self):
        server = self.boot('reboot')
        self._reboot(server, 'SOFT')
        self._reboot(server, 'HARD')
        actions = self.client.request(
            'GET', '/servers/%s/os-instance-actions' % server['id']).json()
        self.assertEqual(['reboot', 'reboot', 'create'],
                         [a['action'] for a in actions['instanceActions']])

    def test_rebuild_from_a_snapshot_brings_its_data_back(self):
        server = self.boot('rebuild')
        image = self.snapshot_and_wait(server['id'], 'rebuild-snap')
        captured = e2e_base.read_tick(self.download_raw(image['id']))
        self.assertIsNotNone(captured)
        # The guest counts on well past the snapshot's tick.
        deadline = time.monotonic() + 60
        while self.latest_tick(server['id']) < captured + 40:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.3)
        resp = self.client.action(server['id'], {'rebuild': {
            'imageRef': image['id'], 'name': 'rebuilt'}})
        self.assertEqual(202, resp.status_code, resp.text)
        body = resp.json()['server']
        self.assertEqual((server['id'], 'REBUILD', image['id'], 'rebuilt'),
                         (body['id'], body['status'], body['image']['id'],
                          body['name']))
        after = self.client.wait_for_server(server['id'], timeout=180)
        self.assertEqual(image['id'], after['image']['id'])
        # The console log went with the old disk: the first boot on it is
        # the rebuilt guest's, and it found the snapshot's tick.
        match, _ = self.wait_for_console(server['id'], LAST_TICK)
        self.assertEqual(str(captured), match.group(1))
        match, _ = self.wait_for_console(
            server['id'], r'nova-snapshot-guest: tick (\d+)')
        self.assertGreater(int(match.group(1)), captured)

    def _second_member(self):
        """Another member user of the class's project (Keystone)."""
        project = self.own_project
        password = 'pw-%s' % project.name
        user_id = project._call('POST', '/users', json={'user': {
            'name': project.name + '-second', 'domain_id': 'default',
            'password': password,
            'default_project_id': project.project_id}}).json()['user']['id']
        self.addCleanup(project._call, 'DELETE', '/users/%s' % user_id)
        member = project._call('GET', '/roles?name=member').json()['roles'][0]
        project._call('PUT', '/projects/%s/users/%s/roles/%s' % (
            project.project_id, user_id, member['id']))
        from keystoneauth1.identity import v3
        from keystoneauth1 import session as ksa_session
        session = ksa_session.Session(auth=v3.Password(
            auth_url=self.stack['KEYSTONE_URL'], user_id=user_id,
            password=password, project_id=project.project_id), timeout=30)
        return client_fixture.ComputeClient(self.deployment.endpoint,
                                            auth=session)

    def test_lock_refuses_other_members_and_the_owner_until_unlocked(self):
        server = self.boot('locked', wait_for_ticks=False)
        other = self._second_member()
        resp = self.client.action(server['id'], {'lock': {
            'locked_reason': 'e2e'}}, microversion='2.73')
        self.assertEqual(202, resp.status_code, resp.text)
        self.addCleanup(self.client.action, server['id'], {'unlock': None})
        shown = self.client.request('GET', '/servers/%s' % server['id'],
                                    microversion='2.73').json()['server']
        self.assertEqual((True, 'e2e'),
                         (shown['locked'], shown['locked_reason']))
        # Nova's check_instance_lock: every non-admin, the owner too.
        for who in (other, self.client):
            resp = who.action(server['id'], {'os-stop': None})
            self.assertEqual(409, resp.status_code, resp.text)
            self.assertEqual('Instance %s is locked' % server['id'],
                             resp.json()['conflictingRequest']['message'])
        resp = other.request('DELETE', '/servers/%s' % server['id'])
        self.assertEqual(409, resp.status_code, resp.text)
        # The owner's lock may be lifted by any member of the project.
        resp = other.action(server['id'], {'unlock': None})
        self.assertEqual(202, resp.status_code, resp.text)
        resp = self.client.action(server['id'], {'os-stop': None})
        self.assertEqual(202, resp.status_code, resp.text)
        self.client.wait_for_server(server['id'], status='SHUTOFF')
        actions = self.client.request(
            'GET', '/servers/%s/os-instance-actions' % server['id']).json()
        self.assertEqual(['stop', 'unlock', 'lock', 'create'],
                         [a['action'] for a in actions['instanceActions']])


class VolumeBackedRebootRebuildTest(test_volume_backed_e2e.VolumeBackedTestBase):
    """A server booted from a Cinder volume (with a data volume): a hard
    reboot and a rebuild keep both volumes and their data; a rebuild to
    another image is Nova's 400 (before 2.93)."""

    guest_agent = False

    def test_reboot_and_rebuild_keep_the_volumes(self):
        server = self.boot_from_volume('bfv-rebuild')
        volumes = self.attached_volumes(server['id'])
        self.assertEqual(2, len(volumes))
        boots = len(re.findall(LAST_TICK, self.client.console(server['id'])))
        tick = self.latest_tick(server['id'])
        resp = self.client.action(server['id'],
                                  {'reboot': {'type': 'HARD'}})
        self.assertEqual(202, resp.status_code, resp.text)
        self.client.wait_for_server(server['id'], timeout=120)
        found = self._wait_for_boot(server['id'], boots + 1)
        self.assertGreaterEqual(int(found[boots]), tick)

        resp = self.client.action(server['id'], {'rebuild': {
            'imageRef': self.base_image['id']}})
        self.assertEqual(400, resp.status_code, resp.text)
        self.assertIn('Unable to rebuild with a different image for a '
                      'volume-backed server',
                      resp.json()['badRequest']['message'])

        tick = self.latest_tick(server['id'])
        resp = self.client.action(server['id'], {'rebuild': {
            'imageRef': self.vol_image['id'], 'name': 'bfv-rebuilt'}})
        self.assertEqual(202, resp.status_code, resp.text)
        self.assertEqual('', resp.json()['server']['image'])
        after = self.client.wait_for_server(server['id'], timeout=180)
        self.assertEqual('bfv-rebuilt', after['name'])
        self.assertEqual(volumes, self.attached_volumes(server['id']))
        # The root volume is not re-imaged: the guest finds its own tick
        # (the console log went with the old domain's directory).
        match, _ = self.wait_for_console(server['id'], LAST_TICK)
        self.assertGreaterEqual(int(match.group(1)), tick)
        self.wait_for_console(server['id'],
                              r'nova-snapshot-guest: last tick vdb \d+')
        self.assert_still_ticking(server['id'])

    def _wait_for_boot(self, server_id, count, timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            boots = re.findall(LAST_TICK, self.client.console(server_id))
            if len(boots) >= count:
                return boots
            self.assertLess(time.monotonic(), deadline,
                            'the guest did not boot again')
            time.sleep(0.3)
