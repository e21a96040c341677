"""The scheduler: filters, weigher, forced hosts, claims and releases."""

import datetime
import os
import random
import shutil
import tempfile
import unittest
from unittest import mock

from nova_snapshot.compute import scheduler
from nova_snapshot.db import api as db_api
from nova_snapshot import exception
from nova_snapshot import service as compute_service
from nova_snapshot.virt import fake as fake_virt
from tests.unit.compute import fakes

NOW = datetime.datetime(2026, 11, 27, 12, 0, 0,
                        tzinfo=datetime.timezone.utc)
NANO = {'memory_mb': 64, 'disk_gb': 1, 'vcpus': 1}


def _node(host, free_ram=1000, disabled=False, seen=5, **extra):
    node = {'host': host, 'hypervisor_hostname': host + '.node',
            'disabled': disabled, 'disabled_reason': None,
            'forced_down': False,
            'last_seen_up': (NOW - datetime.timedelta(seconds=seen))
            .replace(tzinfo=None),
            'memory_mb': free_ram, 'memory_mb_used': 0,
            'memory_mb_reserved': 0, 'ram_allocation_ratio': 1.0,
            'local_gb': 100, 'local_gb_used': 0, 'local_gb_reserved': 0,
            'disk_allocation_ratio': 1.0, 'vcpus': 8, 'vcpus_used': 0,
            'vcpus_reserved': 0, 'cpu_allocation_ratio': 1.0}
    node.update(extra)
    return node


class ParseAvailabilityZoneTest(unittest.TestCase):

    def test_nova_forms(self):
        parse = scheduler.parse_availability_zone
        self.assertEqual((None, None, None), parse(None))
        self.assertEqual(('nova', None, None), parse('nova'))
        self.assertEqual(('nova', 'h1', None), parse('nova:h1'))
        self.assertEqual((None, 'h1', None), parse(':h1'))
        self.assertEqual(('nova', None, 'n1'), parse('nova::n1'))
        self.assertEqual(('nova', 'h1', 'n1'), parse('nova:h1:n1'))
        self.assertRaises(exception.Invalid, parse, 'a:b:c:d')


class UsageTest(unittest.TestCase):

    def test_volume_backed_takes_no_local_root_disk(self):
        flavor = {'memory_mb': 2048, 'vcpus': 2, 'root_gb': 20,
                  'ephemeral_gb': 1, 'swap': 1500}
        self.assertEqual({'memory_mb': 2048, 'vcpus': 2, 'disk_gb': 23},
                         scheduler.usage_for(flavor, volume_backed=False))
        self.assertEqual(3, scheduler.usage_for(flavor, True)['disk_gb'])


class ServiceIsUpTest(unittest.TestCase):

    def test_down_time_and_forced_down(self):
        fresh = {'last_seen_up': (NOW - datetime.timedelta(seconds=59))
                 .replace(tzinfo=None)}
        self.assertTrue(scheduler.service_is_up(fresh, 60, NOW))
        self.assertFalse(scheduler.service_is_up(fresh, 30, NOW))
        self.assertFalse(scheduler.service_is_up(
            dict(fresh, forced_down=True), 60, NOW))
        self.assertFalse(scheduler.service_is_up({}, 60, NOW))
        # Without last_seen_up, updated_at then created_at count (Nova).
        self.assertTrue(scheduler.service_is_up(
            {'updated_at': fresh['last_seen_up']}, 60, NOW))


class FilterAndWeighTest(unittest.TestCase):

    def setUp(self):
        self.conf = fakes.make_conf()

    def test_filters_say_why(self):
        nodes = [
            _node('ok'),
            _node('off', disabled=True, disabled_reason='drain'),
            _node('gone', seen=61),
            # (1000 - 512) x 1.5 = 732 MiB; 700 used leaves 32 < 64.
            _node('full', memory_mb_reserved=512, ram_allocation_ratio=1.5,
                  memory_mb_used=700),
            _node('nodisk', local_gb=1, local_gb_used=1),
            _node('nocpu', vcpus=1, vcpus_used=1),
        ]
        passed, rejected = scheduler.filter_hosts(self.conf, nodes, NANO,
                                                  now=NOW)
        self.assertEqual(['ok'], [n['host'] for n in passed])
        self.assertEqual('disabled: drain', rejected['off'])
        self.assertIn('down', rejected['gone'])
        self.assertIn('not enough memory (32 MiB free, 64 wanted)',
                      rejected['full'])
        self.assertIn('not enough disk', rejected['nodisk'])
        self.assertIn('not enough vcpus', rejected['nocpu'])
        # A volume-backed server does not need the local disk.
        passed, _ = scheduler.filter_hosts(
            self.conf, [nodes[4]], dict(NANO, disk_gb=0), now=NOW)
        self.assertEqual(['nodisk'], [n['host'] for n in passed])

    def test_ratio_lets_memory_overcommit(self):
        node = _node('h', free_ram=1000, memory_mb_used=1400,
                     ram_allocation_ratio=1.5)
        passed, _ = scheduler.filter_hosts(self.conf, [node], NANO, now=NOW)
        self.assertEqual([node], passed)

    def test_spread_by_default_pack_with_negative_multiplier(self):
        nodes = [_node('small', free_ram=500), _node('big', free_ram=4000),
                 _node('mid', free_ram=2000)]
        self.assertEqual(['big', 'mid', 'small'], [
            n['host'] for n in scheduler.order_hosts(self.conf, nodes)])
        self.conf.set_override('ram_weight_multiplier', -1.0,
                               'filter_scheduler')
        self.assertEqual(['small', 'mid', 'big'], [
            n['host'] for n in scheduler.order_hosts(self.conf, nodes)])

    def test_host_subset_size_picks_among_the_best(self):
        self.conf.set_override('host_subset_size', 2, 'filter_scheduler')
        nodes = [_node('a', free_ram=3000), _node('b', free_ram=2000),
                 _node('c', free_ram=1000)]
        firsts = {scheduler.order_hosts(self.conf, nodes,
                                        rng=random.Random(seed))[0]['host']
                  for seed in range(20)}
        self.assertEqual({'a', 'b'}, firsts)
        ordered = scheduler.order_hosts(self.conf, nodes,
                                        rng=random.Random(1))
        self.assertEqual(3, len(ordered))


class ScheduleAndCreateTest(unittest.TestCase):
    """Against a real SQLite database with reported nodes."""

    def setUp(self):
        self.conf = fakes.make_conf()
        tmp = tempfile.mkdtemp(prefix='nova-snapshot-sched-')
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        self.db = db_api.Database('sqlite:///' + os.path.join(tmp, 's.db'))
        self.addCleanup(self.db.dispose)
        self.db.create_schema()

    def _mark_down(self, host):
        """Its last heartbeat long ago."""
        with self.db.engine.begin() as conn:
            conn.execute(db_api.models.services.update().where(
                db_api.models.services.c.host == host).values(
                last_seen_up=datetime.datetime(2000, 1, 1)))

    def _report(self, host, memory_mb=1024, **extra):
        self.db.service_update(host, scheduler.TOPIC,
                               binary=compute_service.BINARY)
        resources = {'memory_mb': memory_mb, 'local_gb': 100, 'vcpus': 8,
                     'hypervisor_hostname': host + '.node',
                     'ram_allocation_ratio': 1.0}
        resources.update(extra)
        self.db.compute_node_update(host, resources)

    def _create(self, **kwargs):
        return scheduler.schedule_and_create(
            self.conf, self.db, {'name': 'vm', 'project_id': 'p'}, NANO,
            **kwargs)

    def _disable(self, host):
        service = self.db.service_get_by_host_and_binary(
            host, compute_service.BINARY)
        self.db.service_set_status(service['id'], {'disabled': True})

    def test_spreads_then_fills_then_no_valid_host(self):
        self._report('a', memory_mb=64 * 3)
        self._report('b', memory_mb=64 * 3)
        hosts = [self._create()['host'] for _ in range(6)]
        self.assertEqual(['a', 'b'] * 3, hosts)
        exc = self.assertRaises(exception.NoValidHost, self._create)
        self.assertIn('a: not enough memory', exc.kwargs['reason'])

    def test_packs_with_negative_multiplier(self):
        self.conf.set_override('ram_weight_multiplier', -1.0,
                               'filter_scheduler')
        self._report('a', memory_mb=64 * 2)
        self._report('b', memory_mb=64 * 3)
        hosts = [self._create()['host'] for _ in range(5)]
        self.assertEqual(['a', 'a', 'b', 'b', 'b'], hosts)

    def test_lost_claim_moves_on_to_the_next_host(self):
        self._report('a', memory_mb=2000)
        self._report('b', memory_mb=1000)
        real = self.db.instance_create_claimed
        with mock.patch.object(
                self.db, 'instance_create_claimed',
                side_effect=lambda v, host, *a: None if host == 'a'
                else real(v, host, *a)) as claim:
            self.assertEqual('b', self._create()['host'])
        self.assertEqual(['a', 'b'], [c.args[1] for c in
                                      claim.call_args_list])

    def test_disabled_and_down_hosts_are_never_picked(self):
        self._report('off', memory_mb=9000)
        self._report('old', memory_mb=9000)
        self._report('on', memory_mb=200)
        self._disable('off')
        self._mark_down('old')
        self.assertEqual(['on'] * 3, [self._create()['host']
                                      for _ in range(3)])

    def test_no_node_reported(self):
        exc = self.assertRaises(exception.NoValidHost, self._create)
        self.assertIn('No compute service has reported',
                      exc.kwargs['reason'])

    def test_forced_host_skips_filters_but_not_claim_down_or_disable(self):
        self._report('big', memory_mb=9000)
        self._report('small', memory_mb=128)
        self._report('off', memory_mb=9000)
        self._report('gone', memory_mb=9000)
        self._disable('off')
        self._mark_down('gone')
        # Too small for the filters, but forced: the filters are skipped.
        self.assertEqual('small', self._create(force_host='small')['host'])
        self.assertEqual('small', self._create(
            force_node='small.node')['host'])
        # Full: the claim still refuses.
        exc = self.assertRaises(exception.NoValidHost, self._create,
                                force_host='small')
        self.assertIn('claim refused', exc.kwargs['reason'])
        exc = self.assertRaises(exception.NoValidHost, self._create,
                                force_host='off')
        self.assertIn('disabled', exc.kwargs['reason'])
        # Down: never picked, even forced (Nova would cast to it).
        exc = self.assertRaises(exception.NoValidHost, self._create,
                                force_host='gone')
        self.assertIn('down', exc.kwargs['reason'])
        exc = self.assertRaises(exception.NoValidHost, self._create,
                                force_host='nope')
        self.assertIn('host nope', exc.kwargs['reason'])
        self.assertRaises(exception.NoValidHost, self._create,
                          force_host='big', force_node='small.node')

    def assertRaises(self, exc_class, func, *args, **kwargs):
        with super().assertRaises(exc_class) as caught:
            func(*args, **kwargs)
        return caught.exception


class CapacityReportTest(fakes.ComputeTestCase):
    """The heartbeat's capacity report and the release paths, through a
    running compute service."""

    def test_report_uses_driver_and_host_options(self):
        self.conf.set_override('memory_mb', 4096, 'fake')
        self.conf.set_override('reserved_host_disk_mb', 1025)
        self.conf.set_override('ram_allocation_ratio', 2.0)
        node = self.service.report_capacity()
        self.assertEqual((4096, 512, 2, 2.0), (
            node['memory_mb'], node['memory_mb_reserved'],
            node['local_gb_reserved'], node['ram_allocation_ratio']))
        self.assertEqual(self.HOST, node['hypervisor_hostname'])
        self.assertEqual(1000, node['vcpus'])

    def test_heartbeat_never_overwrites_claims_and_repairs_drift(self):
        instance = self.boot()
        self.service.report_capacity()
        self.assertEqual(64, self.db.compute_node_get(
            self.HOST)['memory_mb_used'])
        with self.db.engine.begin() as conn:
            conn.execute(db_api.models.compute_nodes.update().values(
                memory_mb_used=0))
        with self.assertLogs('nova_snapshot.service', 'WARNING'):
            node = self.service.report_capacity()
        self.assertEqual(64, node['memory_mb_used'])
        self.assertEqual(1, node['running_vms'])
        self.api.delete(self.ctx, instance)
        fakes.wait_for(lambda: self.db.compute_node_get(
            self.HOST)['memory_mb_used'] == 0, message='release on delete')

    def test_failed_build_releases_its_claim(self):
        self.driver.fail_spawn_with = exception.HypervisorError(reason='x')
        instance = self.api.create(self.ctx, 'vm', self.base_image['id'], '3')
        self.assertEqual(512, self.db.compute_node_get(
            self.HOST)['memory_mb_used'])
        self.wait_for_instance(instance['uuid'],
                               lambda i: i['vm_state'] == 'error')
        fakes.wait_for(lambda: self.db.compute_node_get(
            self.HOST)['memory_mb_used'] == 0, message='release on failure')
        self.assertEqual(0, self.db.instance_get(
            instance['uuid'])['claimed_memory_mb'])

    def test_servers_spread_over_two_services_and_avoid_a_disabled_one(self):
        other = compute_service.ComputeService(
            self.conf, host='host-b', db=self.db, image_api=self.image_api,
            driver=fake_virt.FakeDriver(self.conf, self.image_api),
            transport=self.transport, notifier=self.service.notifier)
        other.start()
        self.addCleanup(other.stop)
        hosts = [self.boot(name='vm%d' % i)['host'] for i in range(4)]
        self.assertEqual({'host-a': 2, 'host-b': 2},
                         {h: hosts.count(h) for h in set(hosts)})
        service = self.db.service_get_by_host_and_binary(
            'host-b', compute_service.BINARY)
        self.db.service_set_status(service['id'], {'disabled': True})
        self.assertEqual(['host-a'] * 2, [self.boot()['host']
                                          for _ in range(2)])

    def test_unknown_availability_zone_is_400(self):
        exc = self.raises(exception.AvailabilityZoneNotAvailable,
                          self.api.create, self.ctx, 'vm',
                          self.base_image['id'], '1',
                          availability_zone='elsewhere')
        self.assertEqual(400, exc.code)
        instance = self.api.create(self.ctx, 'vm', self.base_image['id'],
                                   '1', availability_zone='nova',
                                   forced_host=self.HOST)
        self.assertEqual(self.HOST, instance['host'])

    def test_unsent_build_cast_errors_the_server_and_releases(self):
        boom = RuntimeError('broker down')
        with mock.patch.object(self.rpcapi, 'build_instance',
                               side_effect=boom):
            self.assertRaises(RuntimeError, self.api.create, self.ctx, 'vm',
                              self.base_image['id'], '3')
        [instance] = self.db.instance_get_all()
        self.assertEqual(('error', None, 0), (
            instance['vm_state'], instance['task_state'],
            instance['claimed_memory_mb']))
        self.assertEqual(0, self.db.compute_node_get(
            self.HOST)['memory_mb_used'])
        fault = self.db.fault_get_latest(instance['uuid'])
        self.assertEqual('broker down', fault['details'])
