"""Multiple create on the real stack: one POST /servers with min_count 3
boots three tiny guests under libvirt/QEMU over the two compute hosts of
the deployment, as the Keystone user demo, and deletes them.

What it shows: one reservation id for the three (filterable by the user,
shown to the admin at 2.3 with each launch_index), Nova's names (-1..-3),
the scheduler spreading them over both hosts with the claims on the
hosts' counters, each guest really running (its console ticks), and all
of it given back on delete (no domain, no claim). A second request asks
for the reservation id instead of a server. A volume-backed pair gets a
volume each from Cinder on Ceph; one existing volume for two is a 400.
"""

import time
import uuid

import libvirt

from nova_snapshot.db import api as db_api
from nova_snapshot import exception
from tests.functional import e2e_base
from tests.functional import test_volume_backed_e2e

ADMIN_VERSION = '2.3'


class MultipleCreateEndToEndTest(e2e_base.EndToEndTestCase):

    host_count = 2

    def node_usage(self):
        db = db_api.Database(self.deployment.database_url)
        try:
            return {host: db.compute_node_get(host)['memory_mb_used']
                    for host in self.hosts}
        finally:
            db.dispose()

    def reservation_servers(self, reservation_id):
        resp = self.client.request(
            'GET', '/servers?reservation_id=%s&sort_key=display_name'
            '&sort_dir=asc' % reservation_id)
        self.assertEqual(200, resp.status_code, resp.text)
        return resp.json()['servers']

    def delete_all(self, server_ids):
        for server_id in server_ids:
            resp = self.client.delete_server(server_id)
            self.assertEqual(204, resp.status_code, resp.text)
        for server_id in server_ids:
            self.client.wait_for_server_gone(server_id, timeout=120)

    def test_three_guests_in_one_request_over_two_hosts(self):
        self.assertEqual({host: 0 for host in self.hosts},
                         self.node_usage())
        started = time.monotonic()
        resp = self.client.request('POST', '/servers', json={'server': {
            'name': 'trio', 'imageRef': self.base_image['id'],
            'flavorRef': '2', 'networks': 'none', 'min_count': 3}})
        self.assertEqual(202, resp.status_code, resp.text)
        first = resp.json()['server']
        self.assertIn('adminPass', first)
        self.assertTrue(resp.headers['Location'].endswith(first['id']))
        admin = self.admin_client()
        shown = admin.request('GET', '/servers/%s' % first['id'],
                              microversion=ADMIN_VERSION).json()['server']
        reservation = shown['OS-EXT-SRV-ATTR:reservation_id']
        self.assertRegex(reservation, r'^r-[0-9a-z]{8}$')
        self.assertEqual(0, shown['OS-EXT-SRV-ATTR:launch_index'])

        servers = self.reservation_servers(reservation)
        self.assertEqual(['trio-1', 'trio-2', 'trio-3'],
                         [s['name'] for s in servers])
        self.assertEqual(first['id'], servers[0]['id'])
        ids = [s['id'] for s in servers]
        self.addCleanup(self._delete_quietly, ids)

        hosts = {}
        for index, server_id in enumerate(ids):
            self.client.wait_for_server(server_id, timeout=300)
            detail = admin.request('GET', '/servers/%s' % server_id,
                                   microversion=ADMIN_VERSION).json()[
                                       'server']
            self.assertEqual((reservation, index),
                             (detail['OS-EXT-SRV-ATTR:reservation_id'],
                              detail['OS-EXT-SRV-ATTR:launch_index']))
            hosts[server_id] = detail['OS-EXT-SRV-ATTR:host']
        booted = time.monotonic() - started
        # The scheduler spread them: both hosts run one at least, and
        # each host's counter holds its servers' RAM (m1.micro: 128 MiB).
        self.assertEqual(set(self.hosts), set(hosts.values()))
        self.assertEqual(
            {host: 128 * list(hosts.values()).count(host)
             for host in self.hosts}, self.node_usage())
        for server_id in ids:
            self.assertEqual(libvirt.VIR_DOMAIN_RUNNING,
                             self.domain(server_id).state()[0])
            self.wait_for_console(server_id, r'nova-snapshot-guest: tick \d+',
                                  timeout=120)

        self.delete_all(ids)
        for server_id in ids:
            self.assertRaises(libvirt.libvirtError, self.domain, server_id)
        self.assertEqual({host: 0 for host in self.hosts},
                         self.node_usage())
        self.assertEqual([], self.reservation_servers(reservation))
        print('\nmultiple create: 3 guests ACTIVE in %.1f s on %s'
              % (booted, sorted(hosts.values())))

    def test_return_reservation_id(self):
        resp = self.client.request('POST', '/servers', json={'server': {
            'name': 'pair', 'imageRef': self.base_image['id'],
            'flavorRef': '2', 'networks': 'none', 'min_count': 1,
            'max_count': 2, 'return_reservation_id': True}})
        self.assertEqual(202, resp.status_code, resp.text)
        body = resp.json()
        self.assertEqual(['reservation_id'], list(body))
        self.assertNotIn('Location', resp.headers)
        servers = self.reservation_servers(body['reservation_id'])
        self.assertEqual(['pair-1', 'pair-2'], [s['name'] for s in servers])
        ids = [s['id'] for s in servers]
        self.addCleanup(self._delete_quietly, ids)
        for server_id in ids:
            self.client.wait_for_server(server_id, timeout=300)
        self.delete_all(ids)

    def _delete_quietly(self, ids):
        for server_id in ids:
            try:
                self.client.delete_server(server_id)
                self.client.wait_for_server_gone(server_id, timeout=120)
            except Exception:
                pass


class VolumeBackedMultipleCreateEndToEndTest(
        test_volume_backed_e2e.VolumeBackedTestBase):
    """Nova's volume rule on the real Cinder (Ceph RBD): two servers from
    one image -> volume mapping get a volume each; one existing volume for
    two servers is a 400 that leaves it untouched."""

    host_count = 2
    guest_agent = False

    def test_two_volume_backed_servers_in_one_request(self):
        resp = self.client.request('POST', '/servers', json={'server': {
            'name': 'bfv', 'imageRef': '', 'flavorRef': '2',
            'networks': 'none', 'min_count': 2,
            'block_device_mapping_v2': [{
                'source_type': 'image', 'destination_type': 'volume',
                'uuid': self.vol_image['id'], 'boot_index': 0,
                'volume_size': 1, 'delete_on_termination': True}]}})
        self.assertEqual(202, resp.status_code, resp.text)
        servers = self.client.request(
            'GET', '/servers/detail?name=^bfv-[12]$').json()['servers']
        self.assertEqual(['bfv-1', 'bfv-2'],
                         sorted(s['name'] for s in servers))
        ids = [s['id'] for s in servers]
        for server_id in ids:
            self.addCleanup(self._delete_server, server_id)
        volumes = []
        for server_id in ids:
            server = self.client.wait_for_server(server_id, timeout=300)
            self.wait_for_console(server_id,
                                  r'nova-snapshot-guest: tick \d+',
                                  timeout=120)
            attached = server['os-extended-volumes:volumes_attached']
            self.assertEqual(1, len(attached))
            volumes.append(attached[0]['id'])
        self.assertEqual(2, len(set(volumes)))
        for volume_id in volumes:
            volume = self.volume_api.get(self.ctx, volume_id)
            self.assertEqual('in-use', volume['status'])
        for server_id in ids:
            self.client.delete_server(server_id)
        for server_id in ids:
            self.client.wait_for_server_gone(server_id, timeout=120)
        # delete_on_termination: each server's own volume goes with it.
        for volume_id in volumes:
            deadline = time.monotonic() + 120
            while True:
                try:
                    self.volume_api.get(self.ctx, volume_id)
                except exception.VolumeNotFound:
                    break
                self.assertLess(time.monotonic(), deadline, volume_id)
                time.sleep(1)

    def test_one_existing_volume_for_two_servers_is_400(self):
        volume = self.volume_api.create(
            self.ctx, 1, 'e2e-%s' % uuid.uuid4().hex[:8],
            image_id=self.vol_image['id'])
        volume = self.volume_api.wait_for_volume(self.ctx, volume['id'], 300)
        self.addCleanup(self.volume_api.delete, self.ctx, volume['id'])
        resp = self.client.request('POST', '/servers', json={'server': {
            'name': 'shared', 'imageRef': '', 'flavorRef': '2',
            'networks': 'none', 'max_count': 2,
            'block_device_mapping_v2': [{
                'source_type': 'volume', 'destination_type': 'volume',
                'uuid': volume['id'], 'boot_index': 0}]}})
        self.assertEqual(400, resp.status_code, resp.text)
        self.assertEqual(
            'Cannot attach one or more volumes to multiple instances',
            resp.json()['badRequest']['message'])
        self.assertEqual([], self.client.request(
            'GET', '/servers?name=^shared').json()['servers'])
        self.assertEqual('available',
                         self.volume_api.get(self.ctx, volume['id'])['status'])
