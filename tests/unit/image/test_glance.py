"""Unit tests for nova_snapshot.image.glance (fakes at glanceclient's edge)."""

import io
import json
import os
import tempfile
import unittest
from unittest import mock

from glanceclient import exc as glance_exc
from glanceclient.v2 import schemas as glance_schemas
from keystoneauth1 import exceptions as ksa_exc
import warlock

from nova_snapshot import conf as nova_conf
from nova_snapshot import context as nova_context
from nova_snapshot import exception
from nova_snapshot.image import glance


def make_conf(**overrides):
    """Development mode (identity headers to a fixed Glance) unless the
    test says otherwise."""
    conf = nova_conf.new_conf([])
    overrides.setdefault('auth_mode', 'identity_headers')
    overrides.setdefault('api_endpoint', 'http://127.0.0.1:9292')
    for key, value in overrides.items():
        conf.set_override(key, value, group='glance')
    return conf


def make_context(**kwargs):
    kwargs.setdefault('user_id', 'u1')
    kwargs.setdefault('project_id', 'p1')
    kwargs.setdefault('roles', ['member', 'reader'])
    return nova_context.RequestContext(**kwargs)


class IdentityHeadersTest(unittest.TestCase):

    def test_headers_from_context(self):
        headers = glance.identity_headers(make_context(
            roles=['admin', 'member', 'reader']))
        self.assertEqual({'X-Identity-Status': 'Confirmed',
                          'X-Project-Id': 'p1', 'X-User-Id': 'u1',
                          'X-Roles': 'admin,member,reader'}, headers)

    def test_absent_ids_are_not_sent(self):
        headers = glance.identity_headers(make_context(
            user_id=None, project_id=None, roles=['admin']))
        self.assertNotIn('X-Project-Id', headers)
        self.assertNotIn('X-User-Id', headers)
        self.assertEqual('admin', headers['X-Roles'])

    def test_client_carries_headers_on_the_adapter(self):
        # Adapter headers are sent as they are; glanceclient's per-request
        # headers would be URL-encoded (',' -> '%2C').
        api = glance.GlanceAPI(make_conf(api_endpoint='http://127.0.0.1:1/'))
        client = api._client(make_context(global_request_id='req-abc'))
        http = client.http_client
        self.assertEqual('member,reader', http.additional_headers['X-Roles'])
        self.assertEqual('p1', http.additional_headers['X-Project-Id'])
        self.assertEqual('http://127.0.0.1:1', http.endpoint_override)
        self.assertEqual('req-abc', http.global_request_id)
        self.assertIsNone(http.auth)

    def test_token_mode_forwards_token(self):
        api = glance.GlanceAPI(make_conf(auth_mode='token'))
        client = api._client(make_context(auth_token='tok-1'))
        http = client.http_client
        self.assertEqual('tok-1', http.auth.get_token(None))
        self.assertNotIn('X-Roles', http.additional_headers or {})


class TranslateErrorTest(unittest.TestCase):

    def _check(self, glance_cls, expected_cls, code):
        exc = glance.translate_error(glance_cls('details here'), 'img-1')
        self.assertIsInstance(exc, expected_cls)
        self.assertEqual(code, exc.code)
        return exc

    def test_not_found(self):
        exc = self._check(glance_exc.HTTPNotFound, exception.ImageNotFound,
                          404)
        self.assertIn('img-1', exc.format_message())

    def test_forbidden_and_unauthorized(self):
        self._check(glance_exc.HTTPForbidden, exception.ImageNotAuthorized,
                    403)
        self._check(glance_exc.HTTPUnauthorized, exception.ImageNotAuthorized,
                    403)

    def test_bad_request_keeps_reason(self):
        exc = self._check(glance_exc.HTTPBadRequest, exception.ImageBadRequest,
                          400)
        self.assertIn('details here', exc.format_message())

    def test_over_limit(self):
        self._check(glance_exc.HTTPOverLimit, exception.OverQuota, 403)

    def test_conflict(self):
        self._check(glance_exc.HTTPConflict, exception.ImageBadRequest, 400)

    def test_server_error(self):
        exc = self._check(glance_exc.HTTPInternalServerError,
                          exception.NovaSnapshotException, 500)
        self.assertIn('500', exc.format_message())


class ToGlanceTest(unittest.TestCase):

    def test_split(self):
        kwargs, removed = glance.to_glance({
            'name': 'n', 'min_disk': '2', 'status': 'active', 'size': 5,
            'checksum': 'x', 'prop': 'v', 'num': 3, 'flag': True,
            'bdm': [{'a': 1}], 'gone': None, 'owner': None})
        self.assertEqual({'name': 'n', 'min_disk': 2, 'prop': 'v',
                          'num': '3', 'flag': 'True', 'bdm': '[{"a": 1}]'},
                         kwargs)
        self.assertEqual(['gone'], removed)

    def test_flatten_drops_links(self):
        flat = glance.flatten({'id': 'i', 'self': '/v2/images/i',
                               'file': '/v2/images/i/file',
                               'schema': '/v2/schemas/image', 'k': 'v'})
        self.assertEqual({'id': 'i', 'k': 'v'}, flat)


class ChunkedReaderTest(unittest.TestCase):

    def _drain(self, reader):
        chunks = []
        while True:
            chunk = reader.read(1024 * 1024)
            if not chunk:
                return chunks
            chunks.append(chunk)

    def test_file_is_read_in_configured_chunks(self):
        data = os.urandom(10000)
        src = mock.Mock(wraps=io.BytesIO(data))
        reader = glance.ChunkedReader(src, 4096)
        chunks = self._drain(reader)
        self.assertEqual([4096, 4096, 1808], [len(c) for c in chunks])
        self.assertEqual(data, b''.join(chunks))
        self.assertEqual(10000, reader.bytes_read)
        # Never asked the file for more than one chunk at a time.
        for call in src.read.call_args_list:
            self.assertEqual((4096,), call.args)

    def test_iterator_is_rechunked(self):
        pieces = [b'a' * 10, b'b' * 5000, b'', b'c' * 3, b'd' * 9000]
        reader = glance.ChunkedReader(iter(pieces), 4096)
        chunks = self._drain(reader)
        self.assertEqual(b''.join(pieces), b''.join(chunks))
        self.assertEqual([4096, 4096, 4096, 14013 - 3 * 4096],
                         [len(c) for c in chunks])

    def test_iterator_is_consumed_lazily(self):
        consumed = []

        def gen():
            for i in range(100):
                consumed.append(i)
                yield b'x' * 1000
        reader = glance.ChunkedReader(gen(), 4096)
        reader.read()
        # One chunk needs five 1000-byte pieces, not all hundred.
        self.assertEqual(5, len(consumed))

    def test_bytes(self):
        reader = glance.ChunkedReader(b'q' * 5000, 4096)
        self.assertEqual([4096, 904], [len(c) for c in self._drain(reader)])

    def test_empty(self):
        reader = glance.ChunkedReader(iter([]), 4096)
        self.assertEqual(b'', reader.read())
        self.assertEqual(0, reader.bytes_read)


class FakeImage(dict):
    """What glanceclient returns: a dict with schema links."""


class GlanceAPIWithFakeClientTest(unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.client = mock.Mock()
        patcher = mock.patch.object(glance.glanceclient, 'Client',
                                    return_value=self.client)
        self.client_factory = patcher.start()
        self.addCleanup(patcher.stop)
        sleep = mock.patch.object(glance.time, 'sleep')
        self.sleep = sleep.start()
        self.addCleanup(sleep.stop)
        self.api = glance.GlanceAPI(make_conf(num_retries=2,
                                              upload_chunk_size=4096))
        self.ctx = make_context()

    def test_get_flattens(self):
        self.client.images.get.return_value = FakeImage(
            id='i1', status='active', self='/v2/images/i1', os_distro='x')
        self.assertEqual({'id': 'i1', 'status': 'active', 'os_distro': 'x'},
                         self.api.get(self.ctx, 'i1'))

    def test_get_translates_not_found(self):
        self.client.images.get.side_effect = glance_exc.HTTPNotFound('nope')
        self.assertRaises(exception.ImageNotFound,
                          self.api.get, self.ctx, 'i1')

    def test_connection_failures_are_retried(self):
        self.client.images.get.side_effect = [
            glance_exc.CommunicationError('down'),
            ksa_exc.ConnectFailure('down'),
            FakeImage(id='i1')]
        self.assertEqual('i1', self.api.get(self.ctx, 'i1')['id'])
        self.assertEqual(3, self.client.images.get.call_count)
        self.assertEqual(2, self.sleep.call_count)

    def test_retries_are_bounded(self):
        self.client.images.get.side_effect = glance_exc.CommunicationError('x')
        self.assertRaises(exception.GlanceConnectionFailed,
                          self.api.get, self.ctx, 'i1')
        self.assertEqual(3, self.client.images.get.call_count)

    def test_http_errors_are_not_retried(self):
        self.client.images.delete.side_effect = \
            glance_exc.HTTPInternalServerError('boom')
        self.assertRaises(exception.NovaSnapshotException,
                          self.api.delete, self.ctx, 'i1')
        self.assertEqual(1, self.client.images.delete.call_count)

    def test_upload_retries_only_before_data_was_sent(self):
        calls = []

        def upload(image_id, reader, image_size=None):
            calls.append(image_size)
            if len(calls) == 1:
                # Connection refused before the body was touched.
                raise glance_exc.CommunicationError('refused')
            reader.read()
            raise glance_exc.CommunicationError('reset mid-stream')
        self.client.images.upload.side_effect = upload
        self.assertRaises(exception.GlanceConnectionFailed, self.api.upload,
                          self.ctx, 'i1', iter([b'x' * 10000]), size=10000)
        self.assertEqual([10000, 10000], calls)

    def test_upload_streams_chunks_and_reports_bytes(self):
        seen = []

        def upload(image_id, reader, image_size=None):
            seen.append(image_size)
            while True:
                chunk = reader.read(1024 * 1024)
                if not chunk:
                    break
                seen.append(len(chunk))
        self.client.images.upload.side_effect = upload
        sent = self.api.upload(self.ctx, 'i1', [b'a' * 5000, b'b' * 5000])
        self.assertEqual(10000, sent)
        # Size unknown for an iterator; chunks of the configured size.
        self.assertEqual([None, 4096, 4096, 1808], seen)

    def test_upload_size_of_a_regular_file(self):
        with tempfile.TemporaryFile() as f:
            f.write(b'z' * 7000)
            f.seek(1000)
            self.api.upload(self.ctx, 'i1', f)
        self.assertEqual(6000, self.client.images.upload.call_args.kwargs[
            'image_size'])

    def test_upload_server_error_is_upload_failed(self):
        self.client.images.upload.side_effect = \
            glance_exc.HTTPServiceUnavailable('busy')
        self.assertRaises(exception.ImageUploadFailed, self.api.upload,
                          self.ctx, 'i1', io.BytesIO(b'abc'))

    def test_create_adds_instance_owner_as_member(self):
        self.client.images.create.return_value = FakeImage(
            id='i1', visibility='shared', owner='p1')
        self.api.create(self.ctx, {'name': 'n', 'instance_owner': 'p2'})
        self.client.image_members.create.assert_called_once_with('i1', 'p2')
        kwargs = self.client.images.create.call_args.kwargs
        self.assertEqual('p2', kwargs['instance_owner'])

    def test_create_own_project_adds_no_member(self):
        self.client.images.create.return_value = FakeImage(
            id='i1', visibility='shared', owner='p1')
        self.api.create(self.ctx, {'name': 'n', 'instance_owner': 'p1'})
        self.client.image_members.create.assert_not_called()

    def test_create_schema_violation_is_bad_request(self):
        self.client.images.create.side_effect = TypeError('bad disk_format')
        self.assertRaises(exception.ImageBadRequest, self.api.create,
                          self.ctx, {'disk_format': 'floppy'})

    def test_update_reads_once_and_sends_one_patch(self):
        schema = {'name': 'image', 'properties': {
            'id': {'type': 'string'}, 'name': {'type': 'string'}},
            'additionalProperties': {'type': 'string'}}
        self.client.images.model = warlock.model_factory(
            schema, base_class=glance_schemas.SchemaBasedModel)
        self.client.images.get.return_value = {
            'id': 'i1', 'name': 'n', 'c': 'old', 'd': 'old', 'e': 'keep'}
        self.client.http_client.patch.return_value = (
            mock.Mock(), {'id': 'i1', 'name': 'n', 'a': 'b', 'e': 'keep',
                          'self': '/v2/images/i1'})
        image = self.api.update(self.ctx, 'i1',
                                {'a': 'b', 'c': None, 'id': 'x'},
                                remove_props=['d', 'absent'])
        # Glance's answer to the PATCH is the result: no second read.
        self.assertEqual({'id': 'i1', 'name': 'n', 'a': 'b', 'e': 'keep'},
                         image)
        self.client.images.get.assert_called_once_with('i1')
        (url,), kwargs = self.client.http_client.patch.call_args
        self.assertEqual('/v2/images/i1', url)
        self.assertEqual(glance._JSON_PATCH, kwargs['headers']['Content-Type'])
        ops = sorted(json.loads(kwargs['data']), key=lambda op: op['path'])
        self.assertEqual([{'op': 'add', 'path': '/a', 'value': 'b'},
                          {'op': 'remove', 'path': '/c'},
                          {'op': 'remove', 'path': '/d'}], ops)

    def test_update_schema_violation_is_bad_request(self):
        schema = {'name': 'image', 'properties': {
            'name': {'type': 'string', 'maxLength': 3}}}
        self.client.images.model = warlock.model_factory(
            schema, base_class=glance_schemas.SchemaBasedModel)
        self.client.images.get.return_value = {'name': 'abc'}
        self.assertRaises(exception.ImageBadRequest, self.api.update,
                          self.ctx, 'i1', {'name': 'too long'})
        self.client.http_client.patch.assert_not_called()

    def test_schemas_are_fetched_once_for_every_client(self):
        fetched = []

        def new_client(*args, **kwargs):
            client = mock.Mock()
            client.schemas.get.side_effect = (
                lambda name: fetched.append(name) or 'schema-' + name)
            return client

        self.client_factory.side_effect = new_client
        for user in ('u1', 'u2', 'u3'):
            client = self.api._client(make_context(user_id=user))
            self.assertEqual('schema-image', client.schemas.get('image'))
            self.assertEqual('schema-member', client.schemas.get('member'))
        self.assertEqual(['image', 'member'], fetched)

    def test_schemas_are_fetched_again_after_their_ttl(self):
        fetch = mock.Mock(side_effect=lambda name: object())
        cache = glance._SchemaCache(ttl=60)
        get = cache.wrap(fetch)
        with mock.patch.object(glance.time, 'monotonic', return_value=100):
            first = get('image')
            self.assertIs(first, get('image'))
        with mock.patch.object(glance.time, 'monotonic', return_value=161):
            self.assertIsNot(first, get('image'))
        self.assertEqual(2, fetch.call_count)

    def test_download_streams_to_file(self):
        self.client.images.data.return_value = iter([b'ab', b'cd', b'e'])
        with tempfile.TemporaryDirectory() as d:
            dest = os.path.join(d, 'img')
            self.assertEqual(5, self.api.download(self.ctx, 'i1', dest))
            with open(dest, 'rb') as f:
                self.assertEqual(b'abcde', f.read())

    def test_download_failure_removes_partial_file(self):
        def body():
            yield b'ab'
            raise IOError('Corrupt image download')
        self.client.images.data.return_value = body()
        with tempfile.TemporaryDirectory() as d:
            dest = os.path.join(d, 'img')
            self.assertRaises(exception.GlanceConnectionFailed,
                              self.api.download, self.ctx, 'i1', dest)
            self.assertFalse(os.path.exists(dest))

    def test_download_of_image_without_data(self):
        self.client.images.data.return_value = None
        with tempfile.TemporaryDirectory() as d:
            self.assertRaises(exception.ImageUnacceptable, self.api.download,
                              self.ctx, 'i1', os.path.join(d, 'img'))

    def test_create_active_empty(self):
        self.client.images.create.return_value = FakeImage(id='i1')
        self.client.images.get.return_value = FakeImage(id='i1',
                                                        status='active')
        image = self.api.create_active_empty(self.ctx, {'name': 'v'})
        self.assertEqual('active', image['status'])
        kwargs = self.client.images.create.call_args.kwargs
        self.assertEqual(('raw', 'bare'), (kwargs['disk_format'],
                                           kwargs['container_format']))
        upload = self.client.images.upload.call_args
        self.assertEqual(0, upload.kwargs['image_size'])

    def test_create_active_empty_deletes_on_failure(self):
        self.client.images.create.return_value = FakeImage(id='i1')
        self.client.images.upload.side_effect = glance_exc.HTTPBadRequest('x')
        self.assertRaises(exception.ImageBadRequest,
                          self.api.create_active_empty, self.ctx, {})
        self.client.images.delete.assert_called_once_with('i1')

    def test_generate_image_url(self):
        api = glance.GlanceAPI(make_conf(api_endpoint='http://g:9292/'))
        self.assertEqual('http://g:9292/images/i1',
                         api.generate_image_url('i1'))


CATALOG = [{'type': 'image', 'name': 'glance', 'endpoints': [
    {'region': 'RegionOne', 'publicURL': 'http://public.test:9292',
     'internalURL': 'http://internal.test:9292'}]}]


class RecordingServer:
    """A local HTTP server that answers 204 and keeps request headers."""

    def __init__(self):
        import http.server
        import threading
        seen = self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_DELETE(self):
                seen.append((self.command, self.path, dict(self.headers)))
                self.send_response(204)
                self.send_header('Content-Length', '0')
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.HTTPServer(('127.0.0.1', 0), Handler)
        self.url = 'http://127.0.0.1:%d' % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def keystone_conf(**glance):
    """Keystone mode (the default); the service user's token is a fixed
    one (keystoneauth's admin_token plugin) so nothing calls Keystone."""
    conf = nova_conf.new_conf([])
    for key, value in glance.items():
        conf.set_override(key, value, group='glance')
    return conf


def with_service_user(conf, send=True, endpoint=None):
    conf.set_override('send_service_user_token', send, group='service_user')
    conf.set_override('auth_type', 'admin_token', group='service_user')
    from keystoneauth1 import loading as ks_loading
    ks_loading.load_auth_from_conf_options(conf, 'service_user')
    conf.set_override('token', 'service-tok', group='service_user')
    if endpoint:
        conf.set_override('endpoint', endpoint, group='service_user')
    return conf


class KeystoneModeTest(unittest.TestCase):

    def test_keystone_is_the_default_and_every_call_has_a_timeout(self):
        api = glance.GlanceAPI(keystone_conf())
        self.assertEqual('keystone', api.auth_mode)
        self.assertEqual(60.0, api._session.timeout)

    def test_endpoint_from_the_users_catalog_internal_first(self):
        api = glance.GlanceAPI(keystone_conf())
        client = api._client(make_context(auth_token='tok-1',
                                          service_catalog=CATALOG))
        self.assertEqual('http://internal.test:9292',
                         client.http_client.endpoint_override)
        self.assertEqual('http://internal.test:9292/images/i1',
                         api.generate_image_url('i1'))

    def test_interface_and_override_options(self):
        api = glance.GlanceAPI(keystone_conf(valid_interfaces=['public']))
        client = api._client(make_context(auth_token='t',
                                          service_catalog=CATALOG))
        self.assertEqual('http://public.test:9292',
                         client.http_client.endpoint_override)
        api = glance.GlanceAPI(keystone_conf(endpoint_override='http://o:1'))
        client = api._client(make_context(auth_token='t'))
        self.assertEqual('http://o:1', client.http_client.endpoint_override)

    def test_no_endpoint_is_a_connection_failure(self):
        api = glance.GlanceAPI(keystone_conf())
        with self.assertRaises(exception.GlanceConnectionFailed):
            api.delete(make_context(auth_token='t', service_catalog=[]),
                       'i1')

    def test_user_and_service_tokens_go_on_the_wire(self):
        server = RecordingServer()
        self.addCleanup(server.stop)
        conf = with_service_user(keystone_conf(endpoint_override=server.url))
        api = glance.GlanceAPI(conf)
        api.delete(make_context(auth_token='user-tok'), 'i1')
        method, path, headers = server.requests[-1]
        self.assertEqual(('DELETE', '/v2/images/i1'), (method, path))
        self.assertEqual('user-tok', headers['X-Auth-Token'])
        self.assertEqual('service-tok', headers['X-Service-Token'])
        self.assertNotIn('X-Roles', headers)

    def test_no_service_token_unless_asked(self):
        server = RecordingServer()
        self.addCleanup(server.stop)
        conf = with_service_user(keystone_conf(endpoint_override=server.url),
                                 send=False)
        glance.GlanceAPI(conf).delete(make_context(auth_token='user-tok'),
                                      'i1')
        headers = server.requests[-1][2]
        self.assertEqual('user-tok', headers['X-Auth-Token'])
        self.assertNotIn('X-Service-Token', headers)

    def test_without_user_token_acts_as_the_service_user(self):
        server = RecordingServer()
        self.addCleanup(server.stop)
        # The endpoint comes from the service identity (here the
        # admin_token plugin's own endpoint option).
        conf = with_service_user(keystone_conf(), endpoint=server.url)
        glance.GlanceAPI(conf).delete(nova_context.get_admin_context(), 'i1')
        headers = server.requests[-1][2]
        self.assertEqual('service-tok', headers['X-Auth-Token'])
        self.assertNotIn('X-Service-Token', headers)

    def test_without_user_token_nor_credentials_is_refused(self):
        api = glance.GlanceAPI(keystone_conf())
        with self.assertLogs('nova_snapshot.image.glance', 'ERROR') as logs:
            with self.assertRaises(exception.ImageNotAuthorized) as caught:
                api.delete(nova_context.get_admin_context(), 'i1')
        self.assertIn('i1', caught.exception.format_message())
        self.assertIn('[service_user]', logs.output[0])

    def test_identity_headers_mode_needs_an_endpoint_and_warns(self):
        conf = keystone_conf(auth_mode='identity_headers')
        with self.assertRaises(exception.NovaSnapshotException):
            glance.GlanceAPI(conf)
        conf.set_override('endpoint_override', 'http://g:1', group='glance')
        with self.assertLogs('nova_snapshot.image.glance', 'WARNING'):
            glance.GlanceAPI(conf)
