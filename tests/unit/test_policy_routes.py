"""Every route and method (and every server action) refuses a caller with
no role: proof that no handler ships without a policy check.

A sample request per route lives in ``SAMPLES``; a route without one fails
``test_every_route_has_a_sample``, so adding a route means adding it here.
"""

import json
import unittest

from oslo_config import cfg
import webob

from nova_snapshot.api import deploy
from nova_snapshot.api.handlers import server_actions
from nova_snapshot.api import router
from nova_snapshot.compute import keypairs as keypair_api
from nova_snapshot import conf as nova_conf
from tests.unit.api import fake_auth
from tests.unit.api import fakes
from tests.unit.compute import test_keypairs

PROJECT = 'project-a'
# The data volume of the sample server (the update names it in its body).
VOLUME_ID = '2c9d5b1e-8f3a-4d6e-9b7c-0a1e2f3d4c5b'
# The server external events name (a row in the fake's database).
EVENT_SERVER = '7d3c1f0a-5b2e-4c8d-9a6f-1e0b2c3d4e5f'

SAMPLES = {
    ('/v2.1/servers', 'GET'): [None],
    ('/v2.1/servers', 'POST'): [{'server': {
        'name': 'vm', 'imageRef': '6b0c7a5d-0c86-4b2f-9c5f-1a0c7e0d1f11',
        'flavorRef': '1', 'networks': 'none'}}],
    ('/v2.1/servers/detail', 'GET'): [None],
    ('/v2.1/servers/{server_id}', 'GET'): [None],
    ('/v2.1/servers/{server_id}', 'PUT'): [{'server': {'name': 'new'}}],
    ('/v2.1/servers/{server_id}', 'DELETE'): [None],
    ('/v2.1/servers/{server_id}/action', 'POST'): [
        {'createImage': {'name': 'snap'}},
        {'os-stop': None}, {'os-start': None}, {'pause': None},
        {'unpause': None}, {'suspend': None}, {'resume': None},
        {'os-getConsoleOutput': {'length': 5}},
        {'createBackup': {'name': 'b', 'backup_type': 'daily',
                          'rotation': 1}},
        {'shelve': None}, {'shelveOffload': None}, {'unshelve': None},
        {'reboot': {'type': 'HARD'}},
        {'rebuild': {'imageRef': '6b0c7a5d-0c86-4b2f-9c5f-1a0c7e0d1f11'}},
        {'lock': None}, {'unlock': None},
        {'restore': None}, {'forceDelete': None},
    ],
    ('/v2.1/servers/{server_id}/os-instance-actions', 'GET'): [None],
    ('/v2.1/servers/{server_id}/os-instance-actions/{request_id}',
     'GET'): [None],
    ('/v2.1/servers/{server_id}/os-volume_attachments', 'GET'): [None],
    ('/v2.1/servers/{server_id}/os-volume_attachments', 'POST'): [
        {'volumeAttachment': {
            'volumeId': '5f0c6e43-77ab-4e31-8a0b-3c2d1e0f9a88'}}],
    ('/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}',
     'GET'): [None],
    ('/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}',
     'PUT'): [{'volumeAttachment': {'volumeId': VOLUME_ID,
                                    'delete_on_termination': True}}],
    ('/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}',
     'DELETE'): [None],
    ('/v2.1/os-services', 'GET'): [None],
    ('/v2.1/os-services/{service_id}', 'PUT'): [
        {'host': fakes.FAKE_SERVICE_HOST, 'binary': 'nova-snapshot-compute'}],
    ('/v2.1/os-services/{service_id}', 'DELETE'): [None],
    ('/v2.1/flavors', 'GET'): [None],
    ('/v2.1/flavors/detail', 'GET'): [None],
    ('/v2.1/flavors/{flavor_id}', 'GET'): [None],
    ('/v2.1/images', 'GET'): [None],
    ('/v2.1/images/detail', 'GET'): [None],
    ('/v2.1/images/{image_id}', 'GET'): [None],
    ('/v2.1/images/{image_id}', 'DELETE'): [None],
    ('/v2.1/images/{image_id}/metadata', 'GET'): [None],
    ('/v2.1/images/{image_id}/metadata', 'POST'): [{'metadata': {'a': 'b'}}],
    ('/v2.1/images/{image_id}/metadata', 'PUT'): [{'metadata': {'a': 'b'}}],
    ('/v2.1/images/{image_id}/metadata/{key}', 'GET'): [None],
    ('/v2.1/images/{image_id}/metadata/{key}', 'PUT'): [{'meta': {'k': 'b'}}],
    ('/v2.1/images/{image_id}/metadata/{key}', 'DELETE'): [None],
    # Keypairs of another user (KEYPAIR_OWNER): the rule is admin or
    # owner, so a caller with no role may manage their own (see
    # tests/unit/api/test_keypairs.py).
    ('/v2.1/os-keypairs', 'GET'): [None],
    ('/v2.1/os-keypairs', 'POST'): [{'keypair': {
        'name': 'k2', 'user_id': 'keypair-owner',
        'public_key': test_keypairs.RSA_KEY}}],
    ('/v2.1/os-keypairs/{keypair_name}', 'GET'): [None],
    ('/v2.1/os-keypairs/{keypair_name}', 'DELETE'): [None],
    ('/v2.1/os-server-external-events', 'POST'): [{'events': [
        {'name': 'volume-extended', 'server_uuid': EVENT_SERVER,
         'tag': VOLUME_ID}]}],
}
KEYPAIR_OWNER = 'keypair-owner'
# Admin-only routes (Nova's defaults): a member is refused, an admin passes.
ADMIN_ROUTES = frozenset(['/v2.1/os-services',
                          '/v2.1/os-services/{service_id}',
                          # another user's keypairs
                          '/v2.1/os-keypairs',
                          '/v2.1/os-keypairs/{keypair_name}',
                          # the service role or an admin
                          '/v2.1/os-server-external-events'])
# Admin-only server actions (Nova's defaults), by body key.
ADMIN_ACTIONS = frozenset(['shelveOffload'])
# Routes that exist only below the latest microversion (Nova's proxies).
VERSIONS = {template: '2.35' for template, _ in SAMPLES
            if template.startswith('/v2.1/images')}
# The samples name a service by host and binary (PUT) and row id (DELETE):
# the forms below 2.53.
VERSIONS['/v2.1/os-services/{service_id}'] = '2.52'


class TestPolicyOnEveryRoute(unittest.TestCase):

    def setUp(self):
        super().setUp()
        conf = cfg.ConfigOpts()
        nova_conf.register_opts(conf)
        conf([], project='nova-snapshot', default_config_files=[])
        conf.set_override('response_validation', 'error', group='api')
        self.compute = fakes.FakeComputeAPI()
        # A server of the caller's own project, in a state every action
        # accepts, so only policy can refuse.
        self.instance = self.compute.add_instance(PROJECT)
        self.volume = self.compute.add_volume(self.instance,
                                              volume_id=VOLUME_ID)
        self.image = self.compute.image_api.add_image(owner=PROJECT, k='v')
        self.compute.actions[self.instance['uuid']] = [{
            'action': 'create', 'instance_uuid': self.instance['uuid'],
            'request_id': 'req-1', 'user_id': 'u', 'project_id': PROJECT,
            'start_time': None, 'message': None, 'events': []}]
        self.compute.db.instance_create({
            'uuid': EVENT_SERVER, 'project_id': PROJECT, 'user_id': 'u',
            'host': fakes.FAKE_SERVICE_HOST, 'vm_state': 'active'})
        keypair_api.KeypairAPI(self.compute.db).import_key_pair(
            KEYPAIR_OWNER, 'k', test_keypairs.RSA_KEY)
        self.app_conf = conf
        self.app = deploy.loadapp(conf, compute_api=self.compute,
                                  auth_protocol=fake_auth.FakeAuthToken)

    def _request(self, template, method, body, roles):
        path = template.format(server_id=self.instance['uuid'],
                               request_id='req-1', flavor_id='1',
                               volume_id=self.volume['volume_id'],
                               image_id=self.image['id'], key='k',
                               keypair_name='k',
                               # PUT names the action below 2.53.
                               service_id='disable' if method == 'PUT'
                               else '1')
        headers = {'X-Auth-Token': fake_auth.token('user', PROJECT, roles),
                   'OpenStack-API-Version': 'compute %s' % VERSIONS.get(
                       template, 'latest')}
        if template.startswith('/v2.1/os-keypairs') and method != 'POST':
            path += '?user_id=' + KEYPAIR_OWNER
        req = webob.Request.blank(path, method=method, headers=headers)
        if body is not None:
            req.content_type = 'application/json'
            req.body = json.dumps(body).encode('utf-8')
        return req.get_response(self.app)

    def test_every_route_has_a_sample(self):
        wanted = {(t, m) for t, methods in router.ROUTES.items()
                  for m in methods if t not in router.UNPOLICED_ROUTES}
        self.assertEqual(wanted, set(SAMPLES))
        actions = {next(iter(b))
                   for b in SAMPLES[('/v2.1/servers/{server_id}/action',
                                     'POST')]}
        self.assertEqual(set(server_actions.ACTIONS), actions)

    def test_no_role_is_forbidden_everywhere(self):
        for (template, method), bodies in SAMPLES.items():
            for body in bodies:
                with self.subTest(route=template, method=method, body=body):
                    response = self._request(template, method, body, [])
                    self.assertEqual(403, response.status_int,
                                     response.text)
                    self.assertEqual(403,
                                     response.json['forbidden']['code'])
        # Nothing reached the compute API.
        self.assertEqual([], self.compute.calls)

    def test_member_passes_policy_everywhere(self):
        # The same requests get past policy for a project member (success,
        # or 409 from the state check for actions the active server cannot
        # take), so the 403s above come from policy, not a broken sample.
        for (template, method), bodies in SAMPLES.items():
            for body in bodies:
                with self.subTest(route=template, method=method, body=body):
                    self.setUp()  # fresh server state per request
                    roles = ['member', 'reader']
                    if template in ADMIN_ROUTES or (
                            isinstance(body, dict) and
                            set(body) & ADMIN_ACTIONS):
                        roles = ['admin'] + roles
                    response = self._request(template, method, body, roles)
                    self.assertIn(response.status_int, (200, 201, 202, 204, 409),
                                  response.text)

    def test_member_is_refused_admin_routes(self):
        for (template, method), bodies in SAMPLES.items():
            if template not in ADMIN_ROUTES:
                continue
            with self.subTest(route=template, method=method):
                response = self._request(template, method, bodies[0],
                                         ['member', 'reader'])
                self.assertEqual(403, response.status_int, response.text)

    def test_member_is_refused_admin_actions(self):
        for action in sorted(ADMIN_ACTIONS):
            with self.subTest(action=action):
                response = self._request(
                    '/v2.1/servers/{server_id}/action', 'POST',
                    {action: None}, ['member', 'reader'])
                self.assertEqual(403, response.status_int, response.text)

    def test_boot_from_volume_checks_attach_volume_too(self):
        # A member may create servers, but an operator who closes
        # create:attach_volume closes boot from volume alone (Nova).
        from nova_snapshot import policy
        from oslo_policy import policy as oslo_policy
        enforcer = policy.Enforcer(self.app_conf)
        enforcer.oslo_enforcer.load_rules()
        enforcer.oslo_enforcer.set_rules(oslo_policy.Rules.from_dict(
            {'os_compute_api:servers:create:attach_volume': '!'}),
            overwrite=False, use_conf=False)
        self.app = deploy.loadapp(self.app_conf, compute_api=self.compute,
                                  enforcer=enforcer,
                                  auth_protocol=fake_auth.FakeAuthToken)
        body = {'server': {'name': 'vm', 'imageRef': '', 'flavorRef': '1',
                           'networks': 'none', 'block_device_mapping_v2': [
                               {'source_type': 'volume', 'boot_index': 0,
                                'uuid': self.volume['volume_id']}]}}
        response = self._request('/v2.1/servers', 'POST', body,
                                 ['member', 'reader'])
        self.assertEqual(403, response.status_int, response.text)
        self.assertEqual([], self.compute.calls)
        del body['server']['block_device_mapping_v2']
        body['server']['imageRef'] = '6b0c7a5d-0c86-4b2f-9c5f-1a0c7e0d1f11'
        response = self._request('/v2.1/servers', 'POST', body,
                                 ['member', 'reader'])
        self.assertEqual(202, response.status_int, response.text)

    def test_unpoliced_routes_are_only_version_documents(self):
        self.assertEqual({'/', '/v2.1'}, set(router.UNPOLICED_ROUTES))
