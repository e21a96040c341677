"""Authentication strategies: the secure default, the no-auth stand-in that
never believes a client's identity headers, and one KeystoneContext."""

import socket
import time
import unittest

from keystoneauth1 import loading as ks_loading
from keystonemiddleware import auth_token
from oslo_config import cfg
import webob

from nova_snapshot.api import auth
from nova_snapshot.api import deploy
from nova_snapshot import conf as nova_conf
from tests.unit.api import fakes

# Everything a client could send to pass for somebody else.
SPOOFED = {'X-Identity-Status': 'Confirmed', 'X-Roles': 'admin',
           'X-Role': 'admin', 'X-User-Id': 'mallory',
           'X-Project-Id': 'project-b', 'X-Tenant-Id': 'project-b',
           'X-Service-Roles': 'service', 'X-Is-Admin-Project': 'True'}


def make_conf(**api):
    conf = cfg.ConfigOpts()
    nova_conf.register_opts(conf)
    conf([], project='nova-snapshot', default_config_files=[])
    for key, value in api.items():
        conf.set_override(key, value, group='api')
    return conf


class Capture:
    """An inner app that keeps the context it was called with."""

    def __init__(self):
        self.context = None

    def __call__(self, environ, start_response):
        self.context = environ[auth.CONTEXT_KEY]
        start_response('204 No Content', [])
        return [b'']


class TestDefaults(unittest.TestCase):

    def test_keystone_is_the_default(self):
        self.assertEqual('keystone', make_conf().api.auth_strategy)


class TestNoAuth(unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.inner = Capture()
        self.app = auth.NoAuthMiddleware(
            auth.KeystoneContext(self.inner, enforcer='enforcer'))

    def call(self, token, **headers):
        headers['X-Auth-Token'] = token
        req = webob.Request.blank('/v2.1/servers', headers=headers)
        return req.get_response(self.app)

    def test_member_and_reader_by_default(self):
        self.assertEqual(204, self.call('alice:project-a').status_int)
        ctx = self.inner.context
        self.assertEqual(('alice', 'project-a'),
                         (ctx.user_id, ctx.project_id))
        self.assertEqual(['member', 'reader'], ctx.roles)
        self.assertFalse(ctx.is_admin)
        self.assertEqual('enforcer', ctx.enforcer)
        self.assertEqual('alice:project-a', ctx.auth_token)

    def test_the_user_admin_is_an_admin(self):
        self.call('admin:project-a')
        self.assertEqual(['admin', 'member', 'reader'],
                         self.inner.context.roles)
        self.assertTrue(self.inner.context.is_admin)

    def test_client_sent_identity_headers_are_ignored(self):
        self.assertEqual(204, self.call('alice:project-a',
                                        **SPOOFED).status_int)
        ctx = self.inner.context
        self.assertEqual(('alice', 'project-a'),
                         (ctx.user_id, ctx.project_id))
        self.assertEqual(['member', 'reader'], ctx.roles)
        self.assertFalse(ctx.is_admin)
        self.assertEqual([], ctx.service_roles)

    def test_an_empty_roles_header_does_not_remove_roles(self):
        self.call('alice:project-a', **{'X-Roles': ''})
        self.assertEqual(['member', 'reader'], self.inner.context.roles)

    def test_bad_tokens_are_401(self):
        for token in ('', 'alice', 'alice:', ':project', 'a:b:c'):
            with self.subTest(token=token):
                response = self.call(token, **SPOOFED)
                self.assertEqual(401, response.status_int)
                self.assertEqual(401, response.json['unauthorized']['code'])


class TestNoAuthThroughTheAPI(unittest.TestCase):
    """A spoofed admin role does not open another project's server."""

    def setUp(self):
        super().setUp()
        self.conf = make_conf(auth_strategy='noauth',
                              response_validation='error')
        self.compute = fakes.FakeComputeAPI()
        self.other = self.compute.add_instance('project-b')

    def get(self, token, **headers):
        headers['X-Auth-Token'] = token
        req = webob.Request.blank('/v2.1/servers/%s' % self.other['uuid'],
                                  headers=headers)
        return req.get_response(self.app)

    def test_noauth_warns_at_start(self):
        with self.assertLogs('nova_snapshot.api.deploy', 'WARNING') as logs:
            deploy.loadapp(self.conf, compute_api=self.compute)
        self.assertIn('NOT authenticated', logs.output[0])

    def test_spoofed_admin_role_is_ignored(self):
        self.app = deploy.loadapp(self.conf, compute_api=self.compute)
        self.assertEqual(404, self.get('alice:project-a',
                                       **SPOOFED).status_int)
        # The same request from the no-auth admin user does see it: the
        # 404 above is the ignored header, not a broken request.
        self.assertEqual(200, self.get('admin:project-a').status_int)


class TestKeystoneStrategy(unittest.TestCase):
    """The real keystonemiddleware in front (no Keystone is reachable:
    only what it decides before asking Keystone is tested here; the
    functional Keystone tests cover real tokens)."""

    def setUp(self):
        super().setUp()
        self.conf = make_conf(response_validation='error')
        for group, opts in auth_token.list_opts():
            self.conf.register_opts(opts, group=group)
        self.conf.set_override('www_authenticate_uri',
                               'http://127.0.0.1:5000/v3',
                               group='keystone_authtoken')
        self.compute = fakes.FakeComputeAPI()
        self.app = deploy.loadapp(self.conf, compute_api=self.compute)

    def test_no_token_is_401_with_www_authenticate(self):
        req = webob.Request.blank('/v2.1/servers')
        response = req.get_response(self.app)
        self.assertEqual(401, response.status_int)
        self.assertEqual('Keystone uri="http://127.0.0.1:5000/v3"',
                         response.headers['WWW-Authenticate'])

    def test_spoofed_identity_without_token_is_401(self):
        req = webob.Request.blank('/v2.1/servers', headers=SPOOFED)
        self.assertEqual(401, req.get_response(self.app).status_int)
        self.assertEqual([], self.compute.calls)

    def test_version_document_needs_no_token(self):
        self.assertEqual(200, webob.Request.blank('/').get_response(
            self.app).status_int)


class TestKeystoneContext(unittest.TestCase):

    def test_service_catalog_and_token_reach_the_context(self):
        inner = Capture()
        app = auth.KeystoneContext(inner, enforcer=None)
        catalog = ('[{"type": "image", "endpoints": [{"publicURL": '
                   '"http://g"}]}, {"type": "identity", "endpoints": []}]')
        req = webob.Request.blank('/v2.1/servers', headers={
            'X-Identity-Status': 'Confirmed', 'X-User-Id': 'u1',
            'X-Project-Id': 'p1', 'X-Roles': 'member',
            'X-Auth-Token': 'tok', 'X-Service-Catalog': catalog})
        self.assertEqual(204, req.get_response(app).status_int)
        ctx = inner.context
        self.assertEqual('tok', ctx.auth_token)
        # Only what the compute side calls travels on.
        self.assertEqual(['image'],
                         [entry['type'] for entry in ctx.service_catalog])
        self.assertEqual(ctx.service_catalog,
                         ctx.from_dict(ctx.to_dict()).service_catalog)

    def test_bad_catalog_is_a_500_fault(self):
        app = auth.KeystoneContext(Capture(), enforcer=None)
        req = webob.Request.blank('/v2.1/servers', headers={
            'X-Identity-Status': 'Confirmed', 'X-User-Id': 'u1',
            'X-Project-Id': 'p1', 'X-Service-Catalog': '{nope'})
        response = req.get_response(app)
        self.assertEqual(500, response.status_int)
        self.assertIn('computeFault', response.json)


class TestKeystoneThatNeverAnswers(unittest.TestCase):
    """A Keystone that accepts connections and never answers (a loopback
    socket that listens and reads nothing) must not hold an API thread:
    keystonemiddleware gives up after [keystone_authtoken]
    http_connect_timeout, which has a default."""

    def setUp(self):
        super().setUp()
        self.black_hole = socket.socket()
        self.black_hole.bind(('127.0.0.1', 0))
        self.black_hole.listen(16)
        self.addCleanup(self.black_hole.close)
        url = 'http://127.0.0.1:%d/v3' % self.black_hole.getsockname()[1]
        self.conf = make_conf()
        deploy.set_keystone_authtoken_defaults(self.conf)
        # The service user's password plugin, as keystonemiddleware loads it.
        self.conf.register_opts(
            ks_loading.get_auth_plugin_conf_options('password'),
            group='keystone_authtoken')
        for key, value in (('www_authenticate_uri', url), ('auth_url', url),
                           ('auth_type', 'password'), ('username', 'svc'),
                           ('password', 'pw'), ('project_name', 'service'),
                           ('user_domain_name', 'Default'),
                           ('project_domain_name', 'Default'),
                           ('http_request_max_retries', 0)):
            self.conf.set_override(key, value, group='keystone_authtoken')

    def test_the_timeout_has_a_default(self):
        self.assertEqual(deploy.KEYSTONE_AUTHTOKEN_TIMEOUT,
                         self.conf.keystone_authtoken.http_connect_timeout)

    def test_a_token_check_ends_with_an_error_not_a_hang(self):
        self.conf.set_override('http_connect_timeout', 1,
                               group='keystone_authtoken')
        app = deploy.loadapp(self.conf, compute_api=fakes.FakeComputeAPI())
        req = webob.Request.blank('/v2.1/servers',
                                  headers={'X-Auth-Token': 'a-token'})
        started = time.monotonic()
        response = req.get_response(app)
        elapsed = time.monotonic() - started
        self.assertEqual(503, response.status_int, response.body)
        self.assertEqual(503, response.json['serviceUnavailable']['code'])
        # Each of the middleware's calls (service token, then the user's)
        # waits at most the timeout.
        self.assertLess(elapsed, 10)
