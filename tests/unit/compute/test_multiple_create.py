"""Multiple create (compute/multiple_create.py) through the real ComputeAPI,
scheduler and database: counts, names, reservation ids, placement as many
as fit, Nova's all-ERROR answer below min_count, and rollback."""

import re
import unittest
from unittest import mock

from nova_snapshot.compute import multiple_create
from nova_snapshot.compute import rpcapi as compute_rpcapi
from nova_snapshot.compute import vm_states
from nova_snapshot import exception
from tests.unit.compute import fakes
from tests.unit.compute import volume_fakes

TINY = '3'  # m1.tiny: 512 MiB
HOST_B = 'host-b'


def _small_host_conf():
    """host-a reports RAM for two m1.tiny servers exactly (no reserve,
    ratio 1)."""
    conf = _make_conf()
    conf.set_override('memory_mb', 1024, group='fake')
    conf.set_override('reserved_host_memory_mb', 0)
    conf.set_override('ram_allocation_ratio', 1.0)
    return conf


_make_conf = fakes.make_conf


class CountsTest(unittest.TestCase):

    def test_nova_defaults_and_the_bound(self):
        counts = multiple_create.counts
        self.assertEqual((1, 1), counts(None, None, 10))
        self.assertEqual((3, 3), counts(3, None, 10))
        self.assertEqual((1, 4), counts(None, 4, 10))
        # A larger max_count is lowered to the bound, as Nova lowers it
        # to the quota's room ...
        self.assertEqual((2, 10), counts(2, 50, 10))
        # ... and a min_count above it creates nothing (403).
        with self.assertRaises(exception.TooManyInstances) as caught:
            counts(11, 50, 10)
        self.assertEqual(403, caught.exception.code)
        self.assertEqual('Quota exceeded for instances: Requested 11-50, but '
                         'one request creates at most 10 servers',
                         caught.exception.format_message())
        with self.assertRaises(exception.TooManyInstances) as caught:
            counts(12, 12, 10)
        self.assertIn('Requested 12, but', caught.exception.format_message())
        with self.assertRaises(exception.Invalid) as caught:
            counts(3, 2, 10)
        self.assertEqual('min_count must be <= max_count',
                         caught.exception.format_message())

    def test_reservation_id_is_novas_shape(self):
        ids = {multiple_create.reservation_id() for _ in range(50)}
        self.assertEqual(50, len(ids))
        for value in ids:
            self.assertRegex(value, r'^r-[0-9a-z]{8}$')

    def test_names(self):
        name = multiple_create.display_name
        self.assertEqual('web', name('web', 0, 1))
        self.assertEqual(['web-1', 'web-2', 'web-3'],
                         [name('web', i, 3) for i in range(3)])

    def test_volumes_cannot_be_shared(self):
        check = multiple_create.check_volumes
        volume = [{'source_type': 'volume', 'boot_index': 0}]
        check(volume, 1, 1)
        for low, high in ((1, 2), (2, 2)):
            with self.assertRaises(exception.Invalid) as caught:
                check(volume, low, high)
            self.assertEqual(multiple_create.VOLUMES_NOT_SHARED,
                             caught.exception.format_message())
        # Each server gets its own volume from an image, snapshot or blank.
        check([{'source_type': 'image', 'destination_type': 'volume'},
               {'source_type': 'snapshot'}, {'source_type': 'blank'}], 3, 3)


class MultipleCreateTest(fakes.ComputeTestCase):
    """host-a (a running compute service on the fake driver) holds two
    m1.tiny servers; tests that want a second host add host-b, a node
    whose service reports but runs no compute process (its casts wait)."""

    def setUp(self):
        with mock.patch.object(fakes, 'make_conf', _small_host_conf):
            super().setUp()
        self.wait_for_node('host-a', 1024)

    def wait_for_node(self, host, memory_mb):
        return fakes.wait_for(
            lambda: any(n['host'] == host and n['memory_mb'] == memory_mb
                        for n in self.db.compute_node_get_all(
                            compute_rpcapi.TOPIC)),
            message='%s reporting %d MiB' % (host, memory_mb))

    def add_host_b(self):
        self.db.service_update(HOST_B, compute_rpcapi.TOPIC,
                               binary='nova-snapshot-compute')
        self.db.compute_node_update(HOST_B, {
            'memory_mb': 1024, 'local_gb': 100, 'vcpus': 8,
            'hypervisor_hostname': HOST_B})

    def create(self, name='web', flavor=TINY, **kwargs):
        return self.api.create(self.ctx, name, self.base_image['id'], flavor,
                               **kwargs)

    def request_servers(self, first):
        rows = self.db.instance_list(
            {'reservation_id_regex': '^%s$' % first['reservation_id']},
            sort_keys=['launch_index'], sort_dirs=['asc'])
        return rows

    def used(self):
        return {n['host']: n['memory_mb_used']
                for n in self.db.compute_node_get_all(compute_rpcapi.TOPIC)}

    def test_three_servers_in_one_request_over_two_hosts(self):
        self.add_host_b()
        first = self.create(min_count=3, max_count=3)
        servers = self.request_servers(first)
        self.assertEqual(first['uuid'], servers[0]['uuid'])
        self.assertRegex(first['reservation_id'], r'^r-[0-9a-z]{8}$')
        self.assertEqual(['web-1', 'web-2', 'web-3'],
                         [s['name'] for s in servers])
        self.assertEqual([0, 1, 2], [s['launch_index'] for s in servers])
        self.assertEqual({first['reservation_id']},
                         {s['reservation_id'] for s in servers})
        # Spread: the emptiest host first, so both hosts get one at least.
        self.assertEqual({'host-a', HOST_B}, {s['host'] for s in servers})
        hosts = [s['host'] for s in servers]
        self.assertEqual({'host-a': 512 * hosts.count('host-a'),
                          HOST_B: 512 * hosts.count(HOST_B)}, self.used())
        # Each has its create action, under the one request.
        for server in servers:
            actions = self.db.actions_get(server['uuid'])
            self.assertEqual(['create'], [a['action'] for a in actions])
        # host-a's servers are built.
        for server in servers:
            if server['host'] == 'host-a':
                self.wait_for_instance(
                    server['uuid'],
                    lambda i: i['vm_state'] == vm_states.ACTIVE)

    def test_as_many_as_fit_up_to_max_count(self):
        first = self.create(min_count=1, max_count=5)
        servers = self.request_servers(first)
        self.assertEqual(['web-1', 'web-2'], [s['name'] for s in servers])
        self.assertEqual({'host-a': 1024}, self.used())
        for server in servers:
            self.wait_for_instance(server['uuid'],
                                   lambda i: i['vm_state'] == 'active')

    def test_one_server_keeps_the_name_asked_for(self):
        self.create(name='full')
        self.create(name='full')
        # host-a is full: nothing fits, min_count 1 is not met, so Nova's
        # all-ERROR answer (3 servers).
        first = self.create(name='one', min_count=1, max_count=3)
        servers = self.request_servers(first)
        self.assertEqual(['one-1', 'one-2', 'one-3'],
                         [s['name'] for s in servers])
        self.assertEqual({'error'}, {s['vm_state'] for s in servers})
        # With room for one, the single server is named as asked.
        self.api.delete(self.ctx, self.db.instance_list(
            {'name_regex': '^full$'})[0])
        fakes.wait_for(lambda: self.used()['host-a'] == 512,
                       message='the claim given back')
        first = self.create(name='one', min_count=1, max_count=3)
        servers = self.request_servers(first)
        self.assertEqual(['one'], [s['name'] for s in servers])
        self.assertEqual(0, servers[0]['launch_index'])

    def test_fewer_than_min_count_fit_every_server_is_an_error(self):
        with mock.patch.object(multiple_create, '_pause_before_retry') as sleep:
            first = self.create(min_count=3, max_count=4)
        # Given back and tried again before the answer (a racing request
        # may have held the room), with a random wait before each retry.
        self.assertEqual(multiple_create.PLACEMENT_ATTEMPTS - 1,
                         sleep.call_count)
        servers = self.request_servers(first)
        self.assertEqual(4, len(servers))
        self.assertEqual(['web-1', 'web-2', 'web-3', 'web-4'],
                         [s['name'] for s in servers])
        for server in servers:
            self.assertEqual((vm_states.ERROR, None, None),
                             (server['vm_state'], server['task_state'],
                              server['host']))
            fault = self.db.fault_get_latest(server['uuid'])
            self.assertEqual('No valid host was found. There are not '
                             'enough hosts available.', fault['message'])
            self.assertIn('host-a', fault['details'])
        # No host keeps anything for them, and no row of the placed ones
        # is left behind.
        self.assertEqual({'host-a': 0}, self.used())
        self.assertEqual(4, len(self.db.instance_list({'deleted': None})))

    def test_a_request_short_of_min_count_gives_back_and_tries_again(self):
        """Racing requests of min_count 2 can each hold one server of the
        last room and all fall short; each gives its claim back and tries
        again after a random wait instead of failing at once."""
        self.add_host_b()
        real = self.api._place
        calls = []

        def racing(values, usage, *args):
            calls.append(values['launch_index'])
            if len(calls) == 2:
                raise exception.NoValidHost(reason='held by another request')
            return real(values, usage, *args)

        with mock.patch.object(self.api, '_place', racing), \
                mock.patch.object(multiple_create, '_pause_before_retry') as sleep:
            first = self.create(min_count=2, max_count=2)
        self.assertEqual([0, 1, 0, 1], calls)
        sleep.assert_called_once()
        servers = self.request_servers(first)
        self.assertEqual(['web-1', 'web-2'], [s['name'] for s in servers])
        self.assertEqual({vm_states.BUILDING}, {s['vm_state'] for s in servers})
        # The first try's server is gone and its claim given back: only
        # the two placed ones hold memory.
        self.assertEqual(2, len(self.db.instance_list({'deleted': None})))
        self.assertEqual(1024, sum(self.used().values()))
        # A single server is never retried (no partial hold to break).
        calls.clear()
        with mock.patch.object(self.api, '_place', racing), \
                mock.patch.object(multiple_create, '_pause_before_retry') as sleep:
            self.create(name='one')
        sleep.assert_not_called()

    def test_the_request_bound_lowers_max_count(self):
        self.add_host_b()
        self.conf.set_override('max_servers_per_request', 2, group='api')
        first = self.create(min_count=1, max_count=4)
        self.assertEqual(2, len(self.request_servers(first)))
        self.assertRaises(exception.TooManyInstances, self.create,
                          min_count=3, max_count=4)
        self.assertEqual(2, len(self.db.instance_list({'deleted': None})))

    def test_a_hostname_is_for_one_server(self):
        exc = self.raises(exception.AmbiguousHostnameForMultipleInstances,
                          self.create, hostname='web', max_count=2)
        self.assertEqual(400, exc.code)
        self.assertEqual([], self.db.instance_list({'deleted': None}))

    def test_a_failure_while_storing_removes_every_row(self):
        self.add_host_b()
        real = self.db.action_start
        calls = []

        def third_fails(context, uuid, action):
            calls.append(uuid)
            if len(calls) == 3:
                raise RuntimeError('database gone')
            return real(context, uuid, action)

        with mock.patch.object(self.db, 'action_start', third_fails), \
                mock.patch.object(self.rpcapi, 'build_instance') as build:
            self.assertRaises(RuntimeError, self.create, min_count=3)
        build.assert_not_called()
        self.assertEqual(3, len(calls))
        self.assertEqual([], self.db.instance_list({'deleted': None}))
        for uuid in calls:
            self.assertEqual([], self.db.bdm_get_by_instance(uuid))
            self.assertEqual([], self.db.actions_get(uuid))
        self.assertEqual({'host-a': 0, HOST_B: 0}, self.used())

    def test_a_failed_cast_leaves_no_server_building(self):
        self.add_host_b()
        broken = exception.ComputeServiceUnavailable(host=HOST_B,
                                                     reason='broker down')
        real = self.rpcapi.build_instance
        sent = []

        def second_fails(context, instance, image_ref):
            if sent:
                raise broken
            sent.append(instance['uuid'])
            return real(context, instance, image_ref)

        with mock.patch.object(self.rpcapi, 'build_instance', second_fails):
            self.assertRaises(exception.ComputeServiceUnavailable,
                              self.create, min_count=3)
        rows = {r['uuid']: r for r in self.db.instance_list(
            {'deleted': None})}
        self.assertEqual(3, len(rows))
        # The one sent is deleted (its build and delete both reach host-a
        # or wait for host-b) ...
        self.assertEqual(1, len(sent))
        self.assertEqual('deleting', rows[sent[0]]['task_state'])
        # ... and the others failed as a single create's unsent build.
        unsent = [r for uuid, r in rows.items() if uuid != sent[0]]
        self.assertEqual({vm_states.ERROR}, {r['vm_state'] for r in unsent})
        for row in unsent:
            self.assertEqual(0, row['claimed_memory_mb'])
            self.assertEqual('Build request not sent to the compute host',
                             self.db.fault_get_latest(row['uuid'])['message'])

    def test_a_volume_is_not_shared(self):
        exc = self.raises(exception.Invalid, self.create, max_count=2,
                          block_device_mapping=[{
                              'source_type': 'volume',
                              'destination_type': 'volume',
                              'uuid': '9f3a1f1e-1111-4a4a-8a8a-000000000001',
                              'boot_index': None}])
        self.assertEqual(multiple_create.VOLUMES_NOT_SHARED,
                         exc.format_message())
        self.assertEqual([], self.db.instance_list({'deleted': None}))

    def test_single_create_is_unchanged(self):
        instance = self.create(name='solo')
        self.assertEqual('solo', instance['name'])
        self.assertEqual(0, instance['launch_index'])
        self.assertTrue(re.match(r'^r-[0-9a-z]{8}$',
                                 instance['reservation_id']))
        self.wait_for_instance(instance['uuid'],
                               lambda i: i['vm_state'] == 'active')


class VolumeBackedMultipleCreateTest(volume_fakes.VolumeComputeTestCase):
    """Nova's rule for volumes: a new volume per server is fine, one
    existing volume for several servers is not."""

    def test_each_server_gets_its_own_volume_from_the_image(self):
        first = self.api.create(
            self.ctx, 'bfv', None, '1', min_count=2,
            block_device_mapping=[{
                'source_type': 'image', 'uuid': self.base_image['id'],
                'destination_type': 'volume', 'boot_index': 0,
                'volume_size': 1, 'delete_on_termination': True}])
        servers = self.db.instance_list(
            {'reservation_id_regex': '^%s$' % first['reservation_id']})
        self.assertEqual(['bfv-1', 'bfv-2'],
                         sorted(s['name'] for s in servers))
        volumes = []
        for server in servers:
            self.wait_for_instance(server['uuid'],
                                   lambda i: i['vm_state'] == 'active')
            root = [b for b in self.db.bdm_get_by_instance(server['uuid'])
                    if b['boot_index'] == 0]
            volumes.append(root[0]['volume_id'])
        self.assertEqual(2, len(set(volumes)))
        for volume_id in volumes:
            self.assertEqual('in-use',
                             self.cinder.get(self.ctx, volume_id)['status'])

    def test_an_existing_volume_is_not_shared(self):
        volume = self.cinder.add_volume(size=1, bootable=True)
        with self.assertRaises(exception.Invalid) as caught:
            self.api.create(
                self.ctx, 'bfv', None, '1', min_count=1, max_count=2,
                block_device_mapping=[{
                    'source_type': 'volume', 'uuid': volume['id'],
                    'destination_type': 'volume', 'boot_index': 0}])
        self.assertEqual(multiple_create.VOLUMES_NOT_SHARED,
                         caught.exception.format_message())
        self.assertEqual([], self.db.instance_list({'deleted': None}))
        self.assertEqual('available',
                         self.cinder.get(self.ctx, volume['id'])['status'])
