"""Backend-independent tests of compute nodes, claims and os-services rows.

A mixin like ``api_tests.DatabaseAPITests``: the SQLite unit tests and the
PostgreSQL/MariaDB functional tests set ``self.db`` (schema at head) and
``self.url`` (the race opens one ``Database`` per thread). Host names are
unique per test, so classes sharing one database do not see each other.
"""

import threading
import uuid

from nova_snapshot.db import api as db_api
from nova_snapshot import exception

TOPIC = 'nova-snapshot-compute'
BINARY = 'nova-snapshot-compute'
NANO = {'memory_mb': 64, 'disk_gb': 1, 'vcpus': 1}


def _uid():
    return str(uuid.uuid4())


class CapacityTests:

    #: Concurrent creators in the claim race (more on real servers).
    CLAIM_THREADS = 8

    def _host(self, memory_mb=1024, local_gb=10, vcpus=4, disabled=False,
              **extra):
        host = 'cap-%s' % uuid.uuid4().hex[:10]
        service = self.db.service_update(host, TOPIC, binary=BINARY)
        if disabled:
            self.db.service_set_status(service['id'], {'disabled': True})
        resources = {'memory_mb': memory_mb, 'local_gb': local_gb,
                     'vcpus': vcpus, 'hypervisor_hostname': host + '.node',
                     'ram_allocation_ratio': 1.0,
                     'disk_allocation_ratio': 1.0,
                     'cpu_allocation_ratio': 1.0}
        resources.update(extra)
        self.db.compute_node_update(host, resources)
        return host

    def _values(self, **extra):
        values = {'name': 'vm', 'project_id': 'p-cap', 'user_id': 'u',
                  'vm_state': 'building', 'task_state': 'scheduling',
                  'flavor': {'memory_mb': 64}}
        values.update(extra)
        return values

    def _used(self, host):
        node = self.db.compute_node_get(host)
        return (node['memory_mb_used'], node['local_gb_used'],
                node['vcpus_used'])

    def test_node_report_creates_then_updates_without_touching_usage(self):
        host = self._host(memory_mb=1000)
        claimed = self.db.instance_create_claimed(self._values(), host, NANO,
                                                  TOPIC)
        self.assertEqual(host, claimed['host'])
        node = self.db.compute_node_update(host, {'memory_mb': 2000,
                                                  'running_vms': 1})
        self.assertEqual(2000, node['memory_mb'])
        self.assertEqual((64, 1, 1), self._used(host))
        self.assertRaises(ValueError, self.db.compute_node_update, host,
                          {'memory_mb_used': 0})

    def test_claim_takes_exactly_the_room_left(self):
        # (1024 - 512 reserved) x 1.5 = 768 MiB for servers.
        host = self._host(memory_mb=1024, memory_mb_reserved=512,
                          ram_allocation_ratio=1.5)
        first = self.db.instance_create_claimed(
            self._values(), host, {'memory_mb': 700, 'vcpus': 1}, TOPIC)
        self.assertEqual((700, 0, 1), (first['claimed_memory_mb'],
                                       first['claimed_disk_gb'],
                                       first['claimed_vcpus']))
        self.assertIsNone(self.db.instance_create_claimed(
            self._values(name='too-big'), host, {'memory_mb': 69}, TOPIC))
        self.assertIsNotNone(self.db.instance_create_claimed(
            self._values(), host, {'memory_mb': 68}, TOPIC))
        self.assertEqual((768, 0, 1), self._used(host))
        names = [i['name'] for i in self.db.instance_get_all(host=host)]
        self.assertNotIn('too-big', names)

    def test_disk_and_vcpus_are_claimed_and_checked(self):
        host = self._host(local_gb=10, local_gb_reserved=2, vcpus=2,
                          cpu_allocation_ratio=2.0)
        self.assertIsNone(self.db.instance_create_claimed(
            self._values(), host, {'memory_mb': 1, 'disk_gb': 9}, TOPIC))
        self.assertIsNotNone(self.db.instance_create_claimed(
            self._values(), host, {'memory_mb': 1, 'disk_gb': 8,
                                   'vcpus': 4}, TOPIC))
        self.assertIsNone(self.db.instance_create_claimed(
            self._values(), host, {'memory_mb': 1, 'vcpus': 1}, TOPIC))
        # No local disk asked (booted from a volume): a full disk is fine.
        self.db.compute_node_update(host, {'cpu_allocation_ratio': 4.0})
        self.assertIsNotNone(self.db.instance_create_claimed(
            self._values(), host, {'memory_mb': 1, 'disk_gb': 0,
                                   'vcpus': 1}, TOPIC))
        self.assertEqual((2, 8, 5), self._used(host))

    def test_disabled_or_unknown_host_refuses_claims(self):
        host = self._host(disabled=True)
        self.assertIsNone(self.db.instance_create_claimed(
            self._values(), host, NANO, TOPIC))
        self.assertIsNone(self.db.instance_create_claimed(
            self._values(), 'no-such-host', NANO, TOPIC))
        self.assertEqual((0, 0, 0), self._used(host))

    def test_release_is_exactly_once_and_destroy_releases(self):
        host = self._host()
        one = self.db.instance_create_claimed(self._values(), host, NANO,
                                              TOPIC)
        two = self.db.instance_create_claimed(self._values(), host, NANO,
                                              TOPIC)
        self.assertEqual((128, 2, 2), self._used(host))
        self.assertTrue(self.db.instance_release_claim(one['uuid']))
        self.assertFalse(self.db.instance_release_claim(one['uuid']))
        self.assertEqual((64, 1, 1), self._used(host))
        released = self.db.instance_get(one['uuid'])
        self.assertEqual(0, released['claimed_memory_mb'])
        self.db.instance_destroy(one['uuid'])  # already released
        self.assertEqual((64, 1, 1), self._used(host))
        self.db.instance_destroy(two['uuid'])
        self.assertEqual((0, 0, 0), self._used(host))
        self.assertFalse(self.db.instance_release_claim(two['uuid']))

    def test_concurrent_releases_release_once(self):
        host = self._host()
        instance = self.db.instance_create_claimed(self._values(), host,
                                                   NANO, TOPIC)
        results = []
        barrier = threading.Barrier(4)

        def release():
            database = db_api.Database(self.url)
            try:
                barrier.wait()
                results.append(database.instance_release_claim(
                    instance['uuid']))
            finally:
                database.dispose()

        threads = [threading.Thread(target=release) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        self.assertEqual(1, results.count(True), results)
        self.assertEqual((0, 0, 0), self._used(host))

    def test_repair_sets_counters_to_the_instances_claims(self):
        host = self._host()
        self.db.instance_create_claimed(self._values(), host, NANO, TOPIC)
        self.assertIsNone(self.db.compute_node_repair_usage(host))
        # Drift, as a row written before the counters existed would leave.
        with self.db.engine.begin() as conn:
            conn.execute(db_api.models.compute_nodes.update().where(
                db_api.models.compute_nodes.c.host == host).values(
                memory_mb_used=999, vcpus_used=0))
        repaired = self.db.compute_node_repair_usage(host)
        self.assertEqual({'memory_mb_used': 64, 'local_gb_used': 1,
                          'vcpus_used': 1}, repaired)
        self.assertEqual((64, 1, 1), self._used(host))
        self.assertIsNone(self.db.compute_node_repair_usage('no-such-host'))

    def test_repair_loses_to_a_claim_made_after_its_read(self):
        host = self._host()
        with self.db.engine.begin() as conn:
            conn.execute(db_api.models.compute_nodes.update().where(
                db_api.models.compute_nodes.c.host == host).values(
                memory_mb_used=500))
        real_begin = self.db.engine.begin
        claimed = []

        def claim_between_read_and_write():
            # Runs when the repair opens its write transaction.
            if not claimed:
                claimed.append('racing')
                self.db.engine.begin = real_begin
                claimed.append(self.db.instance_create_claimed(
                    self._values(), host, NANO, TOPIC))
            return real_begin()

        self.db.engine.begin = claim_between_read_and_write
        try:
            self.assertIsNone(self.db.compute_node_repair_usage(host))
        finally:
            self.db.engine.begin = real_begin
        self.assertIsNotNone(claimed[1])
        # The claim's increment survived; the next repair fixes the rest.
        self.assertEqual(564, self._used(host)[0])
        self.db.compute_node_repair_usage(host)
        self.assertEqual((64, 1, 1), self._used(host))

    def test_node_list_carries_service_state(self):
        host = self._host(disabled=True)
        nodes = {n['host']: n for n in self.db.compute_node_get_all(TOPIC)}
        self.assertTrue(nodes[host]['disabled'])
        self.assertFalse(nodes[host]['forced_down'])
        self.assertIsNotNone(nodes[host]['last_seen_up'])
        self.assertEqual(host + '.node', nodes[host]['hypervisor_hostname'])
        self.assertNotIn(host, [n['host'] for n in
                                self.db.compute_node_get_all('other')])

    def test_service_status_lookup_and_destroy(self):
        host = self._host()
        service = self.db.service_get_by_host_and_binary(host, BINARY)
        self.assertEqual(service, self.db.service_get(service['id']))
        self.assertEqual([service], self.db.service_list(host=host))
        self.assertEqual([], self.db.service_list(host=host, binary='x'))
        updated = self.db.service_set_status(
            service['id'], {'disabled': True, 'disabled_reason': 'drain'})
        self.assertEqual((True, 'drain'), (updated['disabled'],
                                           updated['disabled_reason']))
        # A heartbeat never re-enables.
        self.assertTrue(self.db.service_update(host, TOPIC)['disabled'])
        self.assertRaises(ValueError, self.db.service_set_status,
                          service['id'], {'host': 'x'})
        self.assertRaises(exception.HostBinaryNotFound,
                          self.db.service_get_by_host_and_binary, host, 'x')
        missing = 2 ** 31 - 1
        self.assertRaises(exception.ServiceNotFound, self.db.service_get,
                          missing)
        self.assertRaises(exception.ServiceNotFound,
                          self.db.service_set_status, missing,
                          {'disabled': False})

        self.db.service_set_status(service['id'], {'disabled': False})
        instance = self.db.instance_create_claimed(self._values(), host,
                                                   NANO, TOPIC)
        self.assertRaises(exception.ServiceHasInstances,
                          self.db.service_destroy, service['id'])
        self.assertEqual(host, self.db.compute_node_get(host)['host'])
        self.db.instance_destroy(instance['uuid'])
        self.db.service_destroy(service['id'])
        self.assertRaises(exception.ServiceNotFound, self.db.service_get,
                          service['id'])
        self.assertRaises(exception.ComputeHostNotFound,
                          self.db.compute_node_get, host)
        self.assertRaises(exception.ServiceNotFound,
                          self.db.service_destroy, service['id'])

    def _race(self, connect, attempt):
        """Run ``attempt(database)`` in CLAIM_THREADS threads released at
        once, each on a connection of its own from ``connect()``; return
        what they raised."""
        barrier = threading.Barrier(self.CLAIM_THREADS)
        errors = []

        def run():
            database = connect()
            try:
                barrier.wait()
                attempt(database)
            except Exception as exc:  # reported by the caller
                errors.append(exc)
            finally:
                database.dispose()

        threads = [threading.Thread(target=run)
                   for _ in range(self.CLAIM_THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        return errors

    def test_concurrent_claims_never_overcommit(self):
        """N creators race for a host with room for 3 servers: exactly 3
        win, the counters equal the winners' claims."""
        host = self._host(memory_mb=3 * 64 + 63, local_gb=100, vcpus=100)
        results = []
        errors = self._race(
            lambda: db_api.Database(self.url),
            lambda database: results.append(database.instance_create_claimed(
                self._values(), host, NANO, TOPIC)))
        self.assertEqual([], errors)
        won = [r for r in results if r is not None]
        self.assertEqual(3, len(won))
        self.assertEqual(self.CLAIM_THREADS - 3, results.count(None))
        self.assertEqual((192, 3, 3), self._used(host))
        self.assertEqual(3, len(self.db.instance_get_all(host=host)))

    def test_scheduler_race_fills_two_hosts_exactly(self):
        """Creators race through the scheduler for a small host (room for
        2) and a bigger one (room for 4): each host ends exactly full, the
        rest get NoValidHost, nothing is overcommitted."""
        from nova_snapshot.compute import scheduler
        from tests.unit.compute import fakes

        small = self._host(memory_mb=2 * 64 + 63, local_gb=100, vcpus=100)
        big = self._host(memory_mb=4 * 64 + 63, local_gb=100, vcpus=100)
        conf = fakes.make_conf()
        placed, refused = [], []

        def create(database):
            try:
                placed.append(scheduler.schedule_and_create(
                    conf, database, self._values(), NANO)['host'])
            except exception.NoValidHost:
                refused.append(True)

        # Only this test's hosts: the database may hold other tests'.
        errors = self._race(lambda: _OnlyHosts(self.url, (small, big)),
                            create)
        self.assertEqual([], errors)
        self.assertEqual({small: 2, big: 4},
                         {h: placed.count(h) for h in set(placed)})
        self.assertEqual(self.CLAIM_THREADS - 6, len(refused))
        self.assertEqual((128, 2, 2), self._used(small))
        self.assertEqual((256, 4, 4), self._used(big))

    def test_multiple_create_race_keeps_min_count_or_nothing(self):
        """Requests of min_count 2, max_count 3 race through the scheduler
        for two hosts with room for 5 servers in all: every request ends
        with 2 or 3 placed servers or with all 3 in ERROR holding nothing
        (Nova's answer below min_count), the placed ones never exceed the
        room, and each counter equals its live servers' claims."""
        from nova_snapshot.compute import api as compute_api
        from nova_snapshot.compute import multiple_create
        from nova_snapshot import context as ns_context
        from tests.unit.compute import fakes

        hosts = (self._host(memory_mb=2 * 64 + 63, local_gb=100, vcpus=100),
                 self._host(memory_mb=3 * 64 + 63, local_gb=100, vcpus=100))
        conf = fakes.make_conf()
        results = []

        def create(database):
            api = compute_api.ComputeAPI(conf, database, None, None)
            context = ns_context.RequestContext(user_id='u',
                                                project_id='p-cap')
            values = dict(self._values(), system_metadata={}, metadata={})
            results.append(multiple_create.create(
                api, context, values, [], NANO, 2, 3))

        errors = self._race(lambda: _OnlyHosts(self.url, hosts), create)
        self.assertEqual([], errors)
        self.assertEqual(self.CLAIM_THREADS, len(results))
        placed = 0
        for servers in results:
            states = {s['vm_state'] for s in servers}
            if states == {'error'}:
                self.assertEqual(3, len(servers))
                self.assertEqual([None] * 3, [s['host'] for s in servers])
                for server in servers:
                    self.assertEqual(0, self.db.instance_get(
                        server['uuid'])['claimed_memory_mb'])
            else:
                self.assertEqual({'building'}, states)
                self.assertIn(len(servers), (2, 3))
                placed += len(servers)
            self.assertEqual(1, len({s['reservation_id'] for s in servers}))
        self.assertLessEqual(placed, 5)
        self.assertGreaterEqual(placed, 2)
        live = {host: 64 * len(self.db.instance_get_all(host=host))
                for host in hosts}
        self.assertEqual(live, {host: self._used(host)[0]
                                for host in hosts})
        self.assertEqual(placed, sum(live.values()) // 64)


class _OnlyHosts(db_api.Database):

    def __init__(self, url, hosts):
        super().__init__(url)
        self._hosts = hosts

    def compute_node_get_all(self, topic):
        return [n for n in super().compute_node_get_all(topic)
                if n['host'] in self._hosts]
