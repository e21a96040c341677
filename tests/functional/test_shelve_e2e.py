"""shelve, shelveOffload and unshelve end to end on two compute hosts:
API → RabbitMQ → compute → libvirt/QEMU → Glance (and Cinder on Ceph).

A guest that writes ``tick N`` to sector 1 of its root disk every second
is shelved (its disk snapshotted to the ``<name>-shelved`` image),
offloaded (guest gone, host's room given back) and unshelved on the
*other* host (an admin's 2.91 ``host``): the new guest must find at least
the tick written before the shelve and count on from there; the shelved
image is gone afterwards. A volume-backed server goes through the same
actions with no image, and comes back on the other host with the same
volumes and their data.
"""

import re
import time

import libvirt

from nova_snapshot.db import api as db_api
from tests.functional import e2e_base
from tests.functional import test_volume_backed_e2e

# The admin's unshelve to a named host needs 2.91.
HOST_VERSION = '2.91'


class _ShelveSteps(object):

    def server_host(self, server_id):
        return self.admin_client().get_server(server_id)[
            'OS-EXT-SRV-ATTR:host']

    def shelve_and_offload(self, server_id, expect_shelved=True):
        resp = self.client.action(server_id, {'shelve': None})
        self.assertEqual(202, resp.status_code, resp.text)
        if expect_shelved:
            self.client.wait_for_server(server_id, status='SHELVED',
                                        timeout=300)
            admin = self.admin_client()
            resp = admin.action(server_id, {'shelveOffload': None})
            self.assertEqual(202, resp.status_code, resp.text)
        return self.client.wait_for_server(
            server_id, status='SHELVED_OFFLOADED', timeout=300)

    def unshelve_on(self, server_id, host):
        resp = self.admin_client().action(
            server_id, {'unshelve': {'host': host}},
            microversion=HOST_VERSION)
        self.assertEqual(202, resp.status_code, resp.text)
        # A failed unshelve goes back to SHELVED_OFFLOADED (with a fault):
        # wait for the task state to end, then say why.
        # (The API shows a fault only in ERROR; read it from the database.)
        deadline = time.monotonic() + 300
        while True:
            server = self.client.get_server(server_id)
            if server['OS-EXT-STS:task_state'] is None:
                break
            self.assertLess(time.monotonic(), deadline, server)
            time.sleep(0.5)
        if server['status'] != 'ACTIVE':
            db = db_api.Database(self.deployment.database_url)
            try:
                fault = db.fault_get_latest(server_id)
            finally:
                db.dispose()
            self.fail('unshelve failed: %s, fault %s' % (server['status'],
                                                         fault))
        return server

    def other_host(self, host):
        return [h for h in self.hosts if h != host][0]

    def node_usage(self, host):
        db = db_api.Database(self.deployment.database_url)
        try:
            return db.compute_node_get(host)['memory_mb_used']
        finally:
            db.dispose()


class ShelveImageBackedTest(_ShelveSteps, e2e_base.EndToEndTestCase):

    host_count = 2
    # Shelved servers stay on their host until the admin offloads them.
    extra_conf = {'DEFAULT': {'shelved_offload_time': -1}}

    def test_shelve_offload_unshelve_on_the_other_host_keeps_the_tick(self):
        server = self.boot('shelve-me')
        server_id = server['id']
        first = self.server_host(server_id)
        used_before = self.node_usage(first)
        self.assertGreater(used_before, 0)
        before, _ = self.wait_for_console(server_id,
                                          r'nova-snapshot-guest: tick (\d+)')
        # Let it write a few more, then read the newest it wrote.
        time.sleep(2)
        tick_before = self.latest_tick(server_id)
        self.assertGreaterEqual(tick_before, int(before.group(1)))

        resp = self.client.action(server_id, {'shelve': None})
        self.assertEqual(202, resp.status_code, resp.text)
        shelved = self.client.wait_for_server(server_id, status='SHELVED',
                                              timeout=300)
        self.assertEqual(4, shelved['OS-EXT-STS:power_state'])
        image = self.image_api.get(self.ctx, self._shelved_image_id(
            server_id))
        self.addCleanup(self._delete_image, image['id'])
        self.assertEqual('shelve-me-shelved', image['name'])
        self.assertEqual('active', image['status'])
        self.assertEqual('snapshot', image['image_type'])
        tick_in_image = e2e_base.read_tick(self.download_raw(image['id']))
        self.assertGreaterEqual(tick_in_image, tick_before)
        # Still on its host, whose room it still holds.
        self.assertEqual(first, self.server_host(server_id))

        # Nova's conflicts in the shelved state.
        for body in ({'os-start': None}, {'shelve': None},
                     {'createImage': {'name': 'no'}}):
            resp = self.client.action(server_id, body)
            self.assertEqual(409, resp.status_code, (body, resp.text))

        admin = self.admin_client()
        resp = admin.action(server_id, {'shelveOffload': None})
        self.assertEqual(202, resp.status_code, resp.text)
        offloaded = self.client.wait_for_server(
            server_id, status='SHELVED_OFFLOADED', timeout=120)
        self.assertEqual(4, offloaded['OS-EXT-STS:power_state'])
        self.assertIsNone(self.server_host(server_id))
        self.assertLess(self.node_usage(first), used_before)
        self.assertRaises(libvirt.libvirtError, self.domain, server_id)

        second = self.other_host(first)
        self.unshelve_on(server_id, second)
        self.assertEqual(second, self.server_host(server_id))
        match, _ = self.wait_for_console(
            server_id, r'nova-snapshot-guest: last tick (\d+|none)',
            timeout=120)
        self.assertEqual(str(tick_in_image), match.group(1),
                         'the unshelved guest did not find its tick')
        self.assertGreaterEqual(int(match.group(1)), tick_before)
        self.assert_still_ticking(server_id)
        self.assertGreater(self.latest_tick(server_id), tick_in_image)
        # The shelved image is deleted, the server's image is unchanged.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                status = self.image_api.get(self.ctx, image['id'])['status']
            except Exception:
                break
            if status == 'deleted':
                break
            time.sleep(0.5)
        else:
            self.fail('the shelved image %s is still there' % image['id'])
        server = self.client.get_server(server_id)
        self.assertEqual(self.base_image['id'], server['image']['id'])
        self.assertGreater(self.node_usage(second), 0)

    def _shelved_image_id(self, server_id):
        images = self.image_api.list(self.ctx, instance_uuid=server_id)
        found = [i for i in images if i.get('name', '').endswith('-shelved')]
        self.assertEqual(1, len(found), images)
        return found[0]['id']


class ShelveVolumeBackedTest(_ShelveSteps,
                             test_volume_backed_e2e.VolumeBackedTestBase):

    host_count = 2
    guest_agent = False

    def test_shelve_offload_unshelve_keeps_the_volumes(self):
        server = self.boot_from_volume('bfv-shelve')
        server_id = server['id']
        volumes = self.attached_volumes(server_id)
        self.assertEqual(2, len(volumes))
        first = self.server_host(server_id)
        time.sleep(2)
        tick_before = self.latest_tick(server_id)
        images_before = {i['id'] for i in self._project_images()}

        # A volume-backed server is offloaded at once (Nova): no image.
        self.shelve_and_offload(server_id, expect_shelved=False)
        self.assertIsNone(self.server_host(server_id))
        self.assertEqual(images_before,
                         {i['id'] for i in self._project_images()})
        self.assertEqual(volumes, self.attached_volumes(server_id))
        for volume_id in volumes.values():
            volume = self.volume_api.get(self.ctx, volume_id)
            # Kept for the server (a reserved attachment), connected to no
            # host.
            self.assertIn(volume['status'], ('reserved', 'in-use'), volume)
            attachments = volume.get('attachments') or []
            self.assertFalse([a for a in attachments if a.get('host_name')],
                             volume)
        root_tick, _ = self.rbd_tick(volumes['/dev/vda'])
        self.assertGreaterEqual(root_tick, tick_before)

        second = self.other_host(first)
        self.unshelve_on(server_id, second)
        self.assertEqual(second, self.server_host(server_id))
        match, output = self.wait_for_console(
            server_id, r'nova-snapshot-guest: last tick (\d+|none)',
            timeout=120)
        self.assertEqual(str(root_tick), match.group(1))
        self.assertTrue(re.search(r'last tick vdb \d+', output) or
                        self.wait_for_console(
                            server_id, r'last tick vdb (\d+)')[0])
        self.assert_still_ticking(server_id)
        self.assertEqual(volumes, self.attached_volumes(server_id))
        for volume_id in volumes.values():
            self.assertEqual('in-use',
                             self.volume_api.get(self.ctx, volume_id)[
                                 'status'])

    def _project_images(self):
        return self.image_api.list(self.ctx)
