import datetime
import unittest

from nova_snapshot.compute import flavors
from nova_snapshot.compute import scheduler
from nova_snapshot import exception
from tests.unit.compute import fakes


class _FakeServicesDB(object):
    def __init__(self, services):
        self.services = services

    def service_get_all(self, topic):
        assert topic == 'nova-snapshot-compute'
        return self.services


def _ago(seconds):
    return (datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
            - datetime.timedelta(seconds=seconds))


class SelectHostTest(unittest.TestCase):

    def setUp(self):
        self.conf = fakes.make_conf()

    def test_configured_host_wins(self):
        self.conf.set_override('default_schedule_host', 'h9', 'compute')
        self.assertEqual('h9', scheduler.select_host(self.conf,
                                                     _FakeServicesDB([])))

    def test_only_live_service(self):
        db = _FakeServicesDB([{'host': 'old', 'last_seen_up': _ago(120)},
                              {'host': 'new', 'last_seen_up': _ago(5)}])
        self.assertEqual('new', scheduler.select_host(self.conf, db))

    def test_none_or_several_live(self):
        self.assertRaises(exception.NoComputeHost, scheduler.select_host,
                          self.conf, _FakeServicesDB([]))
        db = _FakeServicesDB([{'host': 'a', 'last_seen_up': _ago(1)},
                              {'host': 'b', 'last_seen_up': _ago(1)}])
        self.assertRaises(exception.NoComputeHost, scheduler.select_host,
                          self.conf, db)


class FlavorsTest(unittest.TestCase):

    def test_builtin(self):
        self.assertEqual(['m1.nano', 'm1.micro', 'm1.tiny', 'm1.small'],
                         [f['name'] for f in flavors.list_flavors()])
        small = flavors.get_flavor('4')
        self.assertEqual((2048, 20, 1), (small['memory_mb'],
                                         small['root_gb'], small['vcpus']))
        self.assertEqual('1', flavors.get_flavor('m1.nano')['id'])
        self.assertRaises(exception.FlavorNotFound, flavors.get_flavor, '7')

    def test_copies(self):
        flavors.get_flavor('1')['memory_mb'] = 1
        self.assertEqual(64, flavors.get_flavor('1')['memory_mb'])
