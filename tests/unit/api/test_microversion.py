import unittest

from nova_snapshot.api import faults
from nova_snapshot.api import microversion


class TestVersions(unittest.TestCase):

    def test_window(self):
        self.assertEqual((2, 1), microversion.MIN_VERSION)
        self.assertEqual((2, 104), microversion.MAX_VERSION)
        # Every version that changes a shape is inside the window.
        for version in microversion.CHANGES:
            self.assertIn(version, microversion.VERSIONS)

    def test_ledger_accounts_for_every_later_version(self):
        # From 2.46 on, each version either changes a route served here
        # or says why it does not; never both, never neither.
        for minor in range(46, microversion.MAX_MINOR + 1):
            version = '2.%d' % minor
            with self.subTest(version=version):
                self.assertNotEqual(
                    version in microversion.CHANGES,
                    version in microversion.NOT_APPLICABLE)
        for version in microversion.NOT_APPLICABLE:
            self.assertIn(version, microversion.VERSIONS)

    def test_no_header_is_minimum(self):
        self.assertEqual((2, 1), microversion.extract_version({}))

    def test_headers(self):
        cases = [
            ({'OpenStack-API-Version': 'compute 2.10'}, (2, 10)),
            ({'OpenStack-API-Version': 'compute latest'}, (2, 104)),
            ({'OpenStack-API-Version': 'compute 2.104'}, (2, 104)),
            ({'OpenStack-API-Version': 'compute 2.46'}, (2, 46)),
            ({'OpenStack-API-Version': 'Compute 2.3'}, (2, 3)),
            ({'OpenStack-API-Version': 'volume 3.1,compute 2.5'}, (2, 5)),
            ({'X-OpenStack-Nova-API-Version': '2.20'}, (2, 20)),
            ({'X-OpenStack-Nova-API-Version': 'LATEST'}, (2, 104)),
            ({'OpenStack-API-Version': 'compute 2.7',
              'X-OpenStack-Nova-API-Version': '2.9'}, (2, 7)),
        ]
        for headers, expected in cases:
            with self.subTest(headers=headers):
                self.assertEqual(expected,
                                 microversion.extract_version(headers))

    def test_errors(self):
        cases = [('2.105', 406), ('2.0', 406), ('3.1', 406), ('1.1', 406),
                 ('2', 400), ('2.x', 400), ('two', 400), ('2.01', 400),
                 ('-2.1', 400), ('', 400)]
        for text, code in cases:
            with self.subTest(text=text):
                with self.assertRaises(faults.APIFault) as ctx:
                    microversion.extract_version(
                        {'X-OpenStack-Nova-API-Version': text or ' '})
                self.assertEqual(code, ctx.exception.code)

    def test_matches(self):
        version = microversion.APIVersion(2, 45)
        self.assertTrue(version.matches((2, 45)))
        self.assertTrue(version.matches('2.1', '2.45'))
        self.assertFalse(version.matches((2, 46)))
        self.assertFalse(version.matches(None, '2.44'))
        self.assertEqual('2.45', str(version))
        self.assertGreater(microversion.APIVersion(2, 10),
                           microversion.APIVersion(2, 9))
