"""POST /servers with os-multiple-create's min_count, max_count and
return_reservation_id: Nova's schema, its 400s and the two answers,
against FakeComputeAPI (the placement itself: compute/test_multiple_create).
"""

from nova_snapshot import exception
from tests.unit.api import base

IMAGE = '6b0c7a5d-0c86-4b2f-9c5f-1a0c7e0d1f11'


def _body(**extra):
    server = {'name': 'vm', 'imageRef': IMAGE, 'flavorRef': '1'}
    server.update(extra)
    return {'server': server}


class MultipleCreateAPITest(base.APITestCase):

    def create(self, status=202, **extra):
        response = self.request('POST', '/v2.1/servers', _body(**extra))
        self.assertEqual(status, response.status_int, response.text)
        return response

    def counts(self):
        return [call[1:] for call in self.compute.calls
                if call[0] == 'create_counts']

    def test_counts_are_integers_or_digit_strings(self):
        self.create(min_count=2, max_count='3')
        self.create(min_count='03')
        self.create(max_count=4)
        # Nova's defaults: max_count is min_count; 1 and 1 is not recorded.
        self.create(min_count=1, max_count='1')
        self.assertEqual([(2, 3), (3, 3), (1, 4)], self.counts())

    def test_bad_counts_are_400_and_create_nothing(self):
        for extra in ({'min_count': 0}, {'max_count': 0},
                      {'min_count': '0'}, {'max_count': '00'},
                      {'min_count': 2.5}, {'max_count': '2.5'},
                      {'min_count': ''}, {'min_count': -1},
                      {'min_count': '-1'}, {'min_count': True},
                      {'min_count': None}, {'max_count': '1' * 21},
                      {'min_count': 3, 'max_count': 2},
                      {'min_count': '10', 'max_count': '9'}):
            response = self.create(status=400, **extra)
            self.assertEqual(400, response.json['badRequest']['code'])
        response = self.create(status=400, min_count=3, max_count=2)
        self.assertEqual('min_count must be <= max_count',
                         response.json['badRequest']['message'])
        self.assertEqual([], [c for c in self.compute.calls
                              if c[0] == 'create'])

    def test_min_count_above_max_count_is_400_before_the_policy(self):
        # Nova checks the counts before servers:create: a reader (who may
        # not create) gets the 400, not a 403.
        response = self.request(
            'POST', '/v2.1/servers', _body(min_count=3, max_count=2),
            token='alice:project-a', roles=['reader'])
        self.assertEqual(400, response.status_int, response.text)
        response = self.request(
            'POST', '/v2.1/servers', _body(min_count=2, max_count=3),
            token='alice:project-a', roles=['reader'])
        self.assertEqual(403, response.status_int, response.text)

    def test_return_reservation_id(self):
        response = self.create(min_count=1, max_count=2,
                               return_reservation_id=True)
        self.assertEqual({'reservation_id': 'r-fake0001'}, response.json)
        self.assertIsNone(response.location)
        response = self.create(return_reservation_id='True')
        self.assertEqual({'reservation_id': 'r-fake0001'}, response.json)
        # False (or absent): the first server's body, password and all.
        for value in (False, 'false', 'off'):
            response = self.create(max_count=2, return_reservation_id=value)
            self.assertIn('adminPass', response.json['server'])
            self.assertTrue(response.location.endswith(
                response.json['server']['id']))
        self.create(status=400, return_reservation_id='maybe')
        self.create(status=400, return_reservation_id=1)

    def test_compute_errors_map_to_novas_codes(self):
        for exc, status in (
                (exception.TooManyInstances(req='11', allowed=10), 403),
                (exception.AmbiguousHostnameForMultipleInstances(), 400),
                (exception.Invalid('Cannot attach one or more volumes to '
                                   'multiple instances'), 400)):
            original = self.compute.create

            def failing(*args, **kwargs):
                raise exc
            self.compute.create = failing
            try:
                response = self.create(status=status, max_count=11)
            finally:
                self.compute.create = original
            key = 'forbidden' if status == 403 else 'badRequest'
            self.assertEqual(exc.format_message(),
                             response.json[key]['message'])
