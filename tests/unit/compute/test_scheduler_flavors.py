import unittest

from nova_snapshot.compute import flavors
from nova_snapshot import exception


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
