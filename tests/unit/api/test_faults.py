"""Errors always leave in Nova's fault format; never a traceback."""

from unittest import mock

from oslo_db import exception as db_exc
import sqlalchemy.exc
import webob

from nova_snapshot.api import auth
from nova_snapshot.api import deploy
from nova_snapshot import exception
from tests.unit.api import base


class TestFaults(base.APITestCase):

    def test_unexpected_exception_is_500_without_traceback(self):
        with mock.patch.object(self.compute, 'get_all',
                               side_effect=RuntimeError('secret detail')):
            with self.assertLogs('nova_snapshot.api.faults', 'ERROR'):
                response = self.request('GET', '/v2.1/servers')
        self.assertEqual(500, response.status_int)
        fault = response.json['computeFault']
        self.assertEqual(500, fault['code'])
        self.assertNotIn('secret detail', response.text)
        self.assertNotIn('Traceback', response.text)
        # The microversion headers are still there.
        self.assertIn('OpenStack-API-Version', response.headers)

    def test_internal_error_with_500_code_is_generic(self):
        # (Glance, Cinder or a compute service not answering is a 503
        # since the bounded waits: test_dependency_down_is_503.)
        with mock.patch.object(
                self.compute, 'get_all',
                side_effect=exception.NovaSnapshotException('secret x')):
            with self.assertLogs('nova_snapshot.api.faults', 'ERROR'):
                response = self.request('GET', '/v2.1/servers')
        self.assertEqual(500, response.status_int)
        self.assertIn('Unexpected API Error',
                      response.json['computeFault']['message'])

    def test_dependency_down_is_503(self):
        with mock.patch.object(
                self.compute, 'get_all',
                side_effect=exception.GlanceConnectionFailed(reason='x')):
            with self.assertLogs('nova_snapshot.api.faults', 'ERROR'):
                response = self.request('GET', '/v2.1/servers')
        self.assertEqual(503, response.status_int)
        self.assertEqual(
            'The image service is unavailable; try again later.',
            response.json['serviceUnavailable']['message'])

    def test_database_down_is_503(self):
        # What a PostgreSQL restart gives a request once oslo.db's
        # retries ran out (the fault campaign's pg-restart saw both as
        # 500s): a statement's error, and a refused new connection.
        for exc in (db_exc.DBConnectionError('connection refused'),
                    sqlalchemy.exc.OperationalError(
                        'connect', {}, Exception('shutting down'))):
            with self.subTest(exc=type(exc).__name__):
                with mock.patch.object(self.compute, 'get_all',
                                       side_effect=exc):
                    with self.assertLogs('nova_snapshot.api.faults',
                                         'ERROR'):
                        response = self.request('GET', '/v2.1/servers')
                self.assertEqual(503, response.status_int)
                self.assertEqual(
                    'The database is unavailable; try again later.',
                    response.json['serviceUnavailable']['message'])
                self.assertNotIn('connection refused', response.text)
                self.assertNotIn('shutting down', response.text)

    def test_middleware_failure_is_caught_by_the_wrapper(self):
        with mock.patch('nova_snapshot.api.microversion.extract_version',
                        side_effect=RuntimeError('boom')):
            with self.assertLogs('nova_snapshot.api.faults', 'ERROR'):
                response = self.request('GET', '/v2.1/servers')
        self.assertEqual(500, response.status_int)
        self.assertEqual(500, response.json['computeFault']['code'])

    def test_exception_codes_map_to_fault_names(self):
        cases = [
            (exception.InstanceNotFound(instance_id='x'), 404,
             'itemNotFound'),
            (exception.Invalid(reason='r'), 400, 'badRequest'),
            (exception.Forbidden(), 403, 'forbidden'),
            (exception.Conflict(reason='r'), 409, 'conflictingRequest'),
        ]
        for exc, code, name in cases:
            with self.subTest(exc=exc):
                with mock.patch.object(self.compute, 'get_all',
                                       side_effect=exc):
                    response = self.request('GET', '/v2.1/servers')
                self.assertEqual(code, response.status_int)
                self.assertEqual(exc.format_message(),
                                 response.json[name]['message'])

    def test_response_validation_error_is_500(self):
        self.compute.add_instance('project-a', name=None, uuid='not-a-uuid')
        with self.assertLogs('nova_snapshot.api.faults', 'ERROR'):
            response = self.request('GET', '/v2.1/servers/detail')
        self.assertEqual(500, response.status_int)

    def test_request_ids(self):
        response = self.request('GET', '/v2.1/flavors')
        self.assertRegex(response.headers['x-openstack-request-id'],
                         '^req-[0-9a-f-]{36}$')
        self.assertEqual(response.headers['x-openstack-request-id'],
                         response.headers['x-compute-request-id'])

    def test_keystone_context_needs_a_confirmed_identity(self):
        # Even if auth_token lets a request through (delay_auth_decision),
        # the context middleware refuses an unconfirmed identity.
        app = auth.KeystoneContext(self.fail, enforcer=None)
        response = webob.Request.blank('/v2.1/servers').get_response(app)
        self.assertEqual(401, response.status_int)
        self.assertEqual(401, response.json['unauthorized']['code'])

    def test_keystone_context_from_headers(self):
        seen = {}

        def inner(environ, start_response):
            seen['ctx'] = environ[auth.CONTEXT_KEY]
            start_response('204 No Content', [])
            return [b'']

        app = auth.KeystoneContext(inner, enforcer='enforcer')
        req = webob.Request.blank('/v2.1/servers', headers={
            'X-Identity-Status': 'Confirmed', 'X-User-Id': 'u1',
            'X-Project-Id': 'p1', 'X-Roles': 'admin,member'})
        self.assertEqual(204, req.get_response(app).status_int)
        ctx = seen['ctx']
        self.assertEqual(('u1', 'p1'), (ctx.user_id, ctx.project_id))
        self.assertTrue(ctx.is_admin)
        self.assertEqual('enforcer', ctx.enforcer)

    def test_loadapp_with_keystone_strategy_wraps_auth_token(self):
        from keystonemiddleware import auth_token
        for group, opts in auth_token.list_opts():
            self.conf.register_opts(opts, group=group)
        # Set so auth_token never looks for an identity endpoint (nothing
        # here may leave the machine).
        self.conf.set_override('www_authenticate_uri',
                               'http://127.0.0.1:5000/',
                               group='keystone_authtoken')
        self.conf.set_override('auth_strategy', 'keystone', group='api')
        app = deploy.loadapp(self.conf, compute_api=self.compute)
        # The version document stays open; everything else needs a token
        # (no token at all is refused before Keystone is contacted).
        req = webob.Request.blank('/')
        self.assertEqual(200, req.get_response(app).status_int)
        req = webob.Request.blank('/v2.1/servers')
        self.assertEqual(401, req.get_response(app).status_int)
