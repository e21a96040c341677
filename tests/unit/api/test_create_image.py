"""The createImage handler against FakeComputeAPI: what it asks for."""

from oslo_policy import policy as oslo_policy

from nova_snapshot.compute import task_states
from tests.unit.api import base


class TestCreateImage(base.APITestCase):

    def setUp(self):
        super().setUp()
        self.server = self.compute.add_instance('project-a')
        self.url = '/v2.1/servers/%s/action' % self.server['uuid']

    def test_location_below_245(self):
        response = self.request('POST', self.url, {'createImage': {
            'name': 'snap', 'metadata': {'k': 'v'}}}, version='2.44')
        self.assertEqual(202, response.status_int)
        self.assertEqual(b'', response.body)
        call = self.compute.calls[-1]
        self.assertEqual(('snapshot', self.server['uuid'], 'snap',
                          {'k': 'v'}), call)
        self.assertRegex(response.headers['Location'],
                         r'^http://glance\.test/images/[0-9a-f-]{36}$')

    def test_image_id_from_245(self):
        response = self.request('POST', self.url,
                                {'createImage': {'name': 'snap'}},
                                version='2.45')
        self.assertEqual(202, response.status_int)
        self.assertNotIn('Location', response.headers)
        self.assertEqual(['image_id'], list(response.json))
        self.assertEqual(('snapshot', self.server['uuid'], 'snap', {}),
                         self.compute.calls[-1])

    def test_state_conflict_message(self):
        self.compute.instances[self.server['uuid']]['task_state'] = (
            task_states.IMAGE_SNAPSHOT_PENDING)
        response = self.request('POST', self.url,
                                {'createImage': {'name': 'snap'}})
        self.assertEqual(409, response.status_int)
        self.assertEqual(
            "Cannot 'createImage' instance %s while it is in task_state "
            "image_snapshot_pending" % self.server['uuid'],
            response.json['conflictingRequest']['message'])

    def test_volume_backed_checks_both_rules(self):
        server = self.compute.add_instance('project-a', image_ref='')
        url = '/v2.1/servers/%s/action' % server['uuid']
        response = self.request('POST', url, {'createImage': {'name': 's'}})
        self.assertEqual(400, response.status_int)
        self.assertEqual('snapshot_volume_backed', self.compute.calls[-1][0])

    def test_volume_backed_rule_can_refuse_alone(self):
        # An operator closes only allow_volume_backed: image-backed servers
        # still snapshot, volume-backed ones are 403.
        from nova_snapshot.api import deploy
        from nova_snapshot import policy
        from tests.unit.api import fake_auth
        enforcer = policy.Enforcer(self.conf)
        enforcer.oslo_enforcer.load_rules()
        enforcer.oslo_enforcer.set_rules(oslo_policy.Rules.from_dict(
            {'os_compute_api:servers:create_image:allow_volume_backed':
             '!'}), overwrite=False, use_conf=False)
        self.app = deploy.loadapp(self.conf, compute_api=self.compute,
                                  enforcer=enforcer,
                                  auth_protocol=fake_auth.FakeAuthToken)
        server = self.compute.add_instance('project-a', image_ref='')
        url = '/v2.1/servers/%s/action' % server['uuid']
        response = self.request('POST', url, {'createImage': {'name': 's'}})
        self.assertEqual(403, response.status_int)
        self.assertEqual([], [c for c in self.compute.calls
                              if c[0] == 'snapshot_volume_backed'])
        response = self.request('POST', self.url,
                                {'createImage': {'name': 's'}})
        self.assertEqual(202, response.status_int)

    def test_admin_target_is_the_instance_project(self):
        other = self.compute.add_instance('project-b')
        url = '/v2.1/servers/%s/action' % other['uuid']
        response = self.request('POST', url, {'createImage': {'name': 's'}},
                                token='admin:project-a')
        self.assertEqual(202, response.status_int)
        # A member of project-a cannot even see it.
        response = self.request('POST', url, {'createImage': {'name': 's'}})
        self.assertEqual(404, response.status_int)

    def test_metadata_quota_only_below_239(self):
        metadata = {'k%d' % i: 'v' for i in range(129)}
        response = self.request('POST', self.url, {'createImage': {
            'name': 's', 'metadata': metadata}}, version='2.38')
        self.assertEqual(403, response.status_int)
        self.assertEqual('Image metadata limit exceeded',
                         response.json['forbidden']['message'])
        self.assertEqual([], self.compute.calls)
        response = self.request('POST', self.url, {'createImage': {
            'name': 's', 'metadata': metadata}}, version='2.39')
        self.assertEqual(202, response.status_int)


class TestOtherActions(base.APITestCase):

    def setUp(self):
        super().setUp()
        self.server = self.compute.add_instance('project-a')
        self.url = '/v2.1/servers/%s/action' % self.server['uuid']

    def test_console_output(self):
        for body, length in (({'length': 3}, 3), ({'length': '2'}, 2),
                             ({'length': -1}, None), ({'length': None}, None),
                             ({}, None)):
            with self.subTest(body=body):
                response = self.request(
                    'POST', self.url, {'os-getConsoleOutput': body})
                self.assertEqual(200, response.status_int, response.text)
                self.assertEqual(('get_console_output', self.server['uuid'],
                                  length), self.compute.calls[-1])
                self.assertIsInstance(response.json['output'], str)

    def test_console_output_bad_length(self):
        for length in (-2, 'abc', 1.5, [1]):
            with self.subTest(length=length):
                response = self.request('POST', self.url, {
                    'os-getConsoleOutput': {'length': length}})
                self.assertEqual(400, response.status_int)

    def test_simple_actions_call_compute(self):
        for key, method in (('os-stop', 'stop'), ('pause', 'pause'),
                            ('suspend', 'suspend')):
            with self.subTest(action=key):
                response = self.request('POST', self.url, {key: None})
                self.assertEqual(202, response.status_int, response.text)
                self.assertEqual((method, self.server['uuid']),
                                 self.compute.calls[-1])
