"""Server create with "host" / "hypervisor_hostname" (microversion 2.74):
the HTTP contract against FakeComputeAPI, and ComputeAPI's check and the
placement on the real scheduler (SQLite, fake:/ RPC)."""

from nova_snapshot import exception
from tests.unit.api import base
from tests.unit.api import fakes
from tests.unit.compute import fakes as compute_fakes

IMAGE = '6b0c7a5d-0c86-4b2f-9c5f-1a0c7e0d1f11'


def _body(**extra):
    server = {'name': 'vm', 'imageRef': IMAGE, 'flavorRef': '1',
              'networks': 'none'}
    server.update(extra)
    return {'server': server}


class TestRequestedHostApi(base.APITestCase):

    def _post(self, version='2.74', roles='admin', **extra):
        return self.request('POST', '/v2.1/servers', _body(**extra),
                            version=version, roles=roles)

    def _destinations(self):
        return [c for c in self.compute.calls
                if c[0] == 'create_destination']

    def test_admin_requests_a_host_and_or_node(self):
        for extra, wanted in (
                ({'host': fakes.FAKE_SERVICE_HOST},
                 (fakes.FAKE_SERVICE_HOST, None)),
                ({'hypervisor_hostname': fakes.FAKE_SERVICE_HOST},
                 (None, fakes.FAKE_SERVICE_HOST)),
                ({'host': fakes.FAKE_SERVICE_HOST,
                  'hypervisor_hostname': fakes.FAKE_SERVICE_HOST},
                 (fakes.FAKE_SERVICE_HOST, fakes.FAKE_SERVICE_HOST))):
            with self.subTest(extra=extra):
                response = self._post(**extra)
                self.assertEqual(202, response.status_int, response.text)
                self.assertEqual(wanted, self._destinations()[-1][2:])

    def test_unknown_host_or_node_is_400(self):
        for key in ('host', 'hypervisor_hostname'):
            with self.subTest(key=key):
                response = self._post(**{key: 'nowhere'})
                self.assertEqual(400, response.status_int, response.text)
                self.assertEqual('Compute host nowhere could not be found.',
                                 response.json['badRequest']['message'])
        self.assertEqual([], self._destinations())

    def test_before_2_74_the_keys_are_unknown(self):
        response = self._post(version='2.73', host=fakes.FAKE_SERVICE_HOST)
        self.assertEqual(400, response.status_int, response.text)
        self.assertIn("'host' was unexpected",
                      response.json['badRequest']['message'])

    def test_bad_names_and_policy(self):
        response = self._post(host='bad host!')
        self.assertEqual(400, response.status_int, response.text)
        response = self._post(host='')
        self.assertEqual(400, response.status_int, response.text)
        response = self._post(roles='member,reader',
                              host=fakes.FAKE_SERVICE_HOST)
        self.assertEqual(403, response.status_int, response.text)
        self.assertIn('compute:servers:create:requested_destination',
                      response.json['forbidden']['message'])
        self.assertEqual([], self._destinations())

    def test_exclusive_with_a_host_in_the_zone(self):
        response = self._post(host=fakes.FAKE_SERVICE_HOST,
                              availability_zone='nova:%s'
                              % fakes.FAKE_SERVICE_HOST)
        self.assertEqual(400, response.status_int, response.text)
        self.assertIn('mutually exclusive',
                      response.json['badRequest']['message'])


class TestRequestedHostCompute(compute_fakes.ComputeTestCase):

    def test_check_and_placement_on_the_requested_host(self):
        self.api.check_requested_destination(host=self.HOST)
        self.api.check_requested_destination(node=self.HOST)
        self.api.check_requested_destination(host=self.HOST, node=self.HOST)
        for host, node in (('other', None), (None, 'other'),
                           (self.HOST, 'other')):
            self.assertRaises(exception.ComputeHostNotFound,
                              self.api.check_requested_destination,
                              host, node)
        instance = self.api.create(self.ctx, 'vm', self.base_image['id'],
                                   '1', forced_host=self.HOST)
        self.assertEqual(self.HOST, instance['host'])
