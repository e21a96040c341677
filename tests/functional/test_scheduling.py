"""Scheduling across hosts with the real services: one nova-snapshot-api
and two nova-snapshot-compute processes on the ``fake`` driver plugin,
RabbitMQ, PostgreSQL and Glance from the stack.

What an operator sees: servers spread over both hosts; disabling one (by
os-services and by nova-snapshot-manage) sends new servers to the other;
an admin's ``availability_zone`` = ``nova:host`` lands there; a host's
capacity report fills up and is given back on delete.
"""

import subprocess
import unittest
import uuid

from nova_snapshot.db import api as db_api
from nova_snapshot.image import glance
from tests.functional import e2e_base
from tests.functional.fixtures import deployment as ns_deployment
from tests.functional.fixtures import guest
from tests.functional.fixtures.stack import bin_path

# Each fake host has room for exactly this many m1.micro (128 MiB) servers:
# (memory_mb - reserved) x ratio = (1024 - 256) x 1.0 = 768 MiB = 6 x 128.
PER_HOST = 6


class SchedulingTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.db_name, db_url = e2e_base.create_pg_database()
        suffix = uuid.uuid4().hex[:6]
        cls.hosts = ['sched-a-%s' % suffix, 'sched-b-%s' % suffix]
        cls.deployment = ns_deployment.Deployment(
            hosts=cls.hosts,
            database_url=db_url,
            extra_conf={
                'compute': {'compute_driver': 'fake'},
                'fake': {'memory_mb': 1024, 'vcpus': 8, 'local_gb': 100},
                'DEFAULT': {'reserved_host_memory_mb': 256,
                            'ram_allocation_ratio': 1.0,
                            'report_interval': 1}})
        try:
            cls.deployment.start()
        except Exception:
            cls.deployment.stop()
            e2e_base.drop_pg_database(cls.db_name)
            raise
        cls.project = uuid.uuid4().hex
        cls.user = cls.deployment.client(project=cls.project)
        cls.admin = cls.deployment.client(user='admin', project='admin')
        conf = e2e_base._glance_conf(cls.deployment.stack['GLANCE_URL'])
        cls.image_api = glance.GlanceAPI(conf)
        cls.ctx = guest.user_context('demo', cls.project)
        image = cls.image_api.create(cls.ctx, {
            'name': 'sched-base', 'disk_format': 'raw',
            'container_format': 'bare', 'visibility': 'private'})
        cls.image_api.upload(cls.ctx, image['id'], iter([b'\0' * 4096]),
                             size=4096)
        cls.image_id = image['id']
        cls.db = db_api.Database(cls.deployment.database_url)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.image_api.delete(cls.ctx, cls.image_id)
        except Exception:
            pass
        cls.db.dispose()
        cls.deployment.stop()
        e2e_base.drop_pg_database(cls.db_name)
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.servers = []
        self.addCleanup(self._delete_servers)

    def _delete_servers(self):
        for server_id in self.servers:
            self.admin.delete_server(server_id)
        for server_id in self.servers:
            self.admin.wait_for_server_gone(server_id)

    def _boot(self, client=None, wait='ACTIVE', **extra):
        client = client or self.user
        server = client.create_server('sched', self.image_id, '2', **extra)
        self.servers.append(server['id'])
        return client.wait_for_server(server['id'], status=wait)

    def _host_of(self, server):
        return self.admin.get_server(server['id'])['OS-EXT-SRV-ATTR:host']

    def _service(self, host):
        resp = self.admin.request(
            'GET', '/os-services?host=%s&binary=nova-snapshot-compute' % host)
        resp.raise_for_status()
        [service] = resp.json()['services']
        return service

    def _set(self, action, host, **body):
        resp = self.admin.request('PUT', '/os-services/%s' % action, json=dict(
            host=host, binary='nova-snapshot-compute', **body))
        self.assertEqual(200, resp.status_code, resp.text)

    def test_servers_spread_over_both_hosts_then_fill_them(self):
        hosts = [self._host_of(self._boot()) for _ in range(4)]
        self.assertEqual({self.hosts[0]: 2, self.hosts[1]: 2},
                         {h: hosts.count(h) for h in set(hosts)})
        for host in self.hosts:
            node = self.db.compute_node_get(host)
            self.assertEqual((1024, 256, 8), (node['memory_mb'],
                                              node['memory_mb_reserved'],
                                              node['vcpus']))
            self.assertEqual(256, node['memory_mb_used'])
        # Fill both hosts; the next server finds no room.
        for _ in range(2 * PER_HOST - 4):
            self._boot()
        full = self._boot(wait='ERROR')
        self.assertEqual('No valid host was found. There are not enough '
                         'hosts available.', full['fault']['message'])
        for host in self.hosts:
            self.assertEqual(PER_HOST * 128,
                             self.db.compute_node_get(host)['memory_mb_used'])
        # Deleting gives the room back.
        first = self.servers.pop(0)
        self.admin.delete_server(first)
        self.admin.wait_for_server_gone(first)
        self.assertEqual(2 * PER_HOST * 128 - 128, sum(
            self.db.compute_node_get(h)['memory_mb_used']
            for h in self.hosts))
        self._boot()

    def test_disabled_host_gets_nothing_until_enabled(self):
        down, other = self.hosts
        self._set('disable-log-reason', down, disabled_reason='drain test')
        self.addCleanup(self._set, 'enable', down)
        service = self._service(down)
        self.assertEqual(('disabled', 'drain test', 'up'), (
            service['status'], service['disabled_reason'], service['state']))
        hosts = {self._host_of(self._boot()) for _ in range(3)}
        self.assertEqual({other}, hosts)
        self._set('enable', down)
        self.assertEqual(down, self._host_of(self._boot()))

    def test_manage_disables_a_host(self):
        first, other = self.hosts
        conf = self.deployment.config_files['api']
        manage = bin_path('nova-snapshot-manage')
        subprocess.run([manage, '--config-file', conf, 'service', 'disable',
                        first, '--reason', 'by manage'], check=True,
                       capture_output=True)
        self.addCleanup(subprocess.run, [manage, '--config-file', conf,
                                         'service', 'enable', first],
                        check=True, capture_output=True)
        listing = subprocess.run([manage, '--config-file', conf, 'service',
                                  'list'], check=True, capture_output=True,
                                 text=True).stdout
        [row] = [line for line in listing.splitlines() if first in line]
        self.assertIn('disabled', row.split())
        self.assertTrue(row.endswith('by manage'))
        self.assertEqual('disabled', self._service(first)['status'])
        self.assertEqual({other}, {self._host_of(self._boot())
                                   for _ in range(2)})

    def test_admin_forces_zone_host(self):
        for host in self.hosts:
            for _ in range(2):
                server = self._boot(client=self.admin,
                                    availability_zone='nova:%s' % host)
                self.assertEqual(host, server['OS-EXT-SRV-ATTR:host'])
        resp = self.user.request('POST', '/servers', json={'server': {
            'name': 'forced', 'imageRef': self.image_id, 'flavorRef': '2',
            'networks': 'none',
            'availability_zone': 'nova:%s' % self.hosts[0]}})
        self.assertEqual(403, resp.status_code, resp.text)

    def test_os_services_lists_both_hosts_up(self):
        resp = self.admin.request('GET', '/os-services')
        self.assertEqual(200, resp.status_code, resp.text)
        mine = {s['host']: s for s in resp.json()['services']
                if s['host'] in self.hosts}
        self.assertEqual(set(self.hosts), set(mine))
        for service in mine.values():
            self.assertEqual(('nova-snapshot-compute', 'nova', 'up',
                              False), (service['binary'], service['zone'],
                                       service['state'],
                                       service['forced_down']))
        self.assertEqual(403, self.user.request(
            'GET', '/os-services').status_code)
