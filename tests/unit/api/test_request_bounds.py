"""Request bounds: the body size limit (413), bodies that cannot be parsed
within bounds (400) and numeric strings checked against their ranges, all
as Nova fault bodies, through the whole API pipeline."""

import io
import json
import unittest

import webob

from nova_snapshot.api import faults
from nova_snapshot.api import request_body
from nova_snapshot.api.schemas import block_device_mapping as bdm_schema
from nova_snapshot.api.schemas import servers as server_schema
from nova_snapshot.api import validation
from tests.unit.api import base

IMAGE = '155d900f-4e14-4e4c-a73d-069cbf4541e6'
LIMIT = 114688  # [oslo_middleware] max_request_body_size default


def _server(**extra):
    server = {'name': 'vm', 'imageRef': IMAGE, 'flavorRef': '1'}
    server.update(extra)
    return {'server': server}


class FaultAssertions:

    def assertFault(self, response, code, name):
        self.assertEqual(code, response.status_int, response.text)
        self.assertEqual('application/json', response.content_type)
        body = json.loads(response.body)
        self.assertEqual([name], list(body))
        self.assertEqual(code, body[name]['code'])
        self.assertIsInstance(body[name]['message'], str)
        return body[name]['message']

    def assertNotCreated(self):
        self.assertEqual([], [c for c in self.compute.calls
                              if c[0] == 'create'])


class TestBodySizeLimit(FaultAssertions, base.APITestCase):

    def _padded(self, size):
        """A valid create body of exactly ``size`` bytes."""
        body = _server()
        body['server']['adminPass'] = ''
        raw = json.dumps(body).encode()
        body['server']['adminPass'] = 'p' * (size - len(raw))
        raw = json.dumps(body).encode()
        self.assertEqual(size, len(raw))
        return raw

    def test_default_is_novas(self):
        self.assertEqual(
            LIMIT, self.conf.oslo_middleware.max_request_body_size)

    def test_at_the_limit_is_served(self):
        response = self.request('POST', '/v2.1/servers',
                                raw=self._padded(LIMIT))
        self.assertEqual(202, response.status_int, response.text)

    def test_one_byte_over_with_content_length_is_413(self):
        response = self.request('POST', '/v2.1/servers',
                                raw=self._padded(LIMIT + 1))
        message = self.assertFault(response, 413, 'overLimit')
        self.assertIn('114688', message)
        self.assertNotCreated()
        # Outside auth, inside the request id: a 413 still carries one.
        self.assertIn('x-compute-request-id', response.headers)

    def test_sixteen_mib_is_413_unread(self):
        raw = b'{"server": "' + b'x' * (16 << 20) + b'"}'
        reads = []

        class Input(io.BytesIO):
            def read(self, *args):
                reads.append(args)
                return super().read(*args)

        req = webob.Request.blank('/v2.1/servers', method='POST', headers={
            'X-Auth-Token': 'alice:project-a',
            'Content-Type': 'application/json'})
        req.environ['wsgi.input'] = Input(raw)
        req.environ['CONTENT_LENGTH'] = str(len(raw))
        response = req.get_response(self.app)
        self.assertFault(response, 413, 'overLimit')
        self.assertEqual([], reads)

    def _chunked(self, raw, terminated=True):
        """A request without Content-Length, as a server that de-chunks
        (uWSGI, mod_wsgi) hands it over."""
        req = webob.Request.blank('/v2.1/servers', method='POST', headers={
            'X-Auth-Token': 'alice:project-a',
            'Content-Type': 'application/json',
            'Transfer-Encoding': 'chunked'})
        req.environ.pop('CONTENT_LENGTH', None)
        req.environ['wsgi.input'] = io.BytesIO(raw)
        if terminated:
            req.environ['wsgi.input_terminated'] = True
        return req.get_response(self.app)

    def test_chunked_over_the_limit_is_413(self):
        response = self._chunked(self._padded(LIMIT + 1))
        self.assertFault(response, 413, 'overLimit')
        self.assertNotCreated()

    def test_chunked_under_the_limit_is_served(self):
        response = self._chunked(self._padded(1000))
        self.assertEqual(202, response.status_int, response.text)

    def test_no_length_on_a_server_that_does_not_end_input(self):
        # wsgiref (the development server) does not de-chunk: the body
        # is not read (it would wait for the client to close), so it is
        # an empty body: 400, never a hang.
        response = self._chunked(self._padded(1000), terminated=False)
        self.assertFault(response, 400, 'badRequest')

    def test_limit_is_configurable(self):
        self.conf.set_override('max_request_body_size', 1000,
                               group='oslo_middleware')
        response = self.request('POST', '/v2.1/servers',
                                raw=self._padded(1001))
        self.assertIn('1000 bytes',
                      self.assertFault(response, 413, 'overLimit'))


class TestUnparseableBodies(FaultAssertions, base.APITestCase):

    def setUp(self):
        super().setUp()
        self.server = self.compute.add_instance('project-a', user_id='alice')

    def assertRefused(self, raw, reason=None, path='/v2.1/servers'):
        response = self.request('POST', path, raw=raw)
        message = self.assertFault(response, 400, 'badRequest')
        self.assertTrue(message.startswith('Malformed request body'),
                        message)
        if reason:
            self.assertIn(reason, message)
        self.assertNotCreated()

    def test_deep_nesting(self):
        for depth in (33, 500, 1000, 5000):
            with self.subTest(depth=depth):
                self.assertRefused(b'[' * depth + b']' * depth, 'nested')
                self.assertRefused(
                    b'{"pause": ' + b'[' * depth + b']' * depth + b'}',
                    'nested', path='/v2.1/servers/%s/action'
                    % self.server['uuid'])

    def test_nesting_at_the_limit_reaches_the_schema(self):
        inner = b'[' * 29 + b']' * 29  # depth 32 in all
        response = self.request(
            'POST', '/v2.1/servers',
            raw=b'{"server": {"metadata": {"k": ' + inner + b'}}}')
        message = self.assertFault(response, 400, 'badRequest')
        self.assertNotIn('Malformed', message)

    def test_bad_json_and_encodings(self):
        for raw in (b'{', b'{"server": }', b"{'server': 1}", b'\xff\xfe{}',
                    '{"server": {}}'.encode('utf-16'),
                    '{"server": {}}'.encode('utf-32'),
                    b'{"name": "\xc3"}', b'\xef\xbb\xbf{}'):
            with self.subTest(raw=raw):
                self.assertRefused(raw)

    def test_not_an_object(self):
        for raw in (b'[]', b'"server"', b'1', b'null', b'true'):
            with self.subTest(raw=raw):
                self.assertRefused(raw, 'object')

    def test_numbers(self):
        for raw, reason in ((b'{"a": ' + b'9' * 5000 + b'}', 'characters'),
                            (b'{"a": ' + b'9' * 33 + b'}', 'characters'),
                            (b'{"a": 1e999}', 'range'),
                            (b'{"a": -1e999}', 'range'),
                            (b'{"a": NaN}', 'NaN'),
                            (b'{"a": Infinity}', 'Infinity'),
                            (b'{"a": -Infinity}', 'Infinity')):
            with self.subTest(raw=raw[:40]):
                self.assertRefused(raw, reason)

    def test_strings_a_database_cannot_store(self):
        for value in ('\\u0000', 'a\\u0000b', '\\ud800', '\\udfff',
                      'x\\ud83d'):
            with self.subTest(value=value):
                raw = ('{"server": {"name": "vm", "flavorRef": "1", '
                       '"imageRef": "%s", "metadata": {"k": "%s"}}}'
                       % (IMAGE, value)).encode()
                self.assertRefused(raw)
                self.assertRefused(
                    ('{"server": {"metadata": {"%s": "v"}}}'
                     % value).encode())

    def test_a_surrogate_pair_is_fine(self):
        raw = ('{"server": {"name": "vm", "flavorRef": "1", "imageRef": '
               '"%s", "metadata": {"k": "\\ud83d\\ude00"}}}' % IMAGE).encode()
        response = self.request('POST', '/v2.1/servers', raw=raw)
        self.assertEqual(202, response.status_int, response.text)


class TestParse(unittest.TestCase):

    def test_within_bounds(self):
        body = request_body.parse(
            b'{"a": [1, -2.5, "x", null, true, {"b": 123456789012345}]}')
        self.assertEqual({'a': [1, -2.5, 'x', None, True,
                                {'b': 123456789012345}]}, body)

    def test_depth_limit_is_exact(self):
        ok = b'{"a": ' * (request_body.MAX_DEPTH - 1) + b'{}' + \
            b'}' * (request_body.MAX_DEPTH - 1)
        request_body.parse(ok)
        with self.assertRaises(faults.APIFault):
            request_body.parse(b'{"a": ' + ok + b'}')


class TestNumericStrings(unittest.TestCase):
    """min/max apply to integer strings, with the length bounded first."""

    def _bdm(self, **item):
        return _server(block_device_mapping_v2=[item])

    def assertRefused(self, body, schema=None):
        schema = schema or server_schema.create_schema(
            _version((2, 1)))
        with self.assertRaises(faults.APIFault) as ctx:
            validation.validate(body, schema)
        self.assertEqual(400, ctx.exception.code)
        self.assertLess(len(ctx.exception.message), 700)
        return ctx.exception.message

    def assertValid(self, body):
        validation.validate(body, server_schema.create_schema(
            _version((2, 1))))

    def test_volume_size(self):
        for size in (1, '1', 2147483647, '2147483647', '0000000001'):
            with self.subTest(size=size):
                self.assertValid(self._bdm(volume_size=size))
        for size in (0, '0', 2147483648, '2147483648', '9' * 5000,
                     '-1', 10 ** 30, '1.5', ' 1'):
            with self.subTest(size=str(size)[:20]):
                self.assertRefused(self._bdm(volume_size=size))

    def test_boot_index(self):
        for index in (0, '0', -1, '-1', None, '2147483647', -2147483648):
            with self.subTest(index=index):
                self.assertValid(self._bdm(boot_index=index))
        for index in ('1' * 5000, '2147483648', '-2147483649', 2 ** 31,
                      -2 ** 31 - 1, '--1', '1e3'):
            with self.subTest(index=str(index)[:20]):
                self.assertRefused(self._bdm(boot_index=index))

    def test_console_output_length(self):
        schema = server_schema.GET_CONSOLE_OUTPUT
        for length in (-1, '-1', 0, '10', None, '2147483647'):
            with self.subTest(length=length):
                validation.validate(
                    {'os-getConsoleOutput': {'length': length}}, schema)
        for length in (-2, '-2', '9' * 5000, '2147483648', 2 ** 40):
            with self.subTest(length=str(length)[:20]):
                self.assertRefused(
                    {'os-getConsoleOutput': {'length': length}}, schema)

    def test_string_bound_message_names_the_value(self):
        message = self.assertRefused(self._bdm(volume_size='2147483648'))
        self.assertIn("'2147483648' is greater than the maximum of "
                      "2147483647", message)

    def test_huge_value_is_shortened_in_the_message(self):
        message = self.assertRefused(self._bdm(boot_index='1' * 5000))
        self.assertIn('(5000 characters)', message)

    def test_schema_bounds_reach_every_integer_string(self):
        # Every integer-as-string field of the item has a maxLength.
        for name, prop in bdm_schema.ITEM['properties'].items():
            types = prop.get('type', [])
            if 'string' in types and 'integer' in types:
                with self.subTest(field=name):
                    self.assertIn('maxLength', prop)
                    self.assertIn('maximum', prop)


class TestMetadataItems(FaultAssertions, base.APITestCase):

    def test_server_create_over_128_items_is_403(self):
        metadata = {'k%d' % i: 'v' for i in range(129)}
        response = self.request('POST', '/v2.1/servers',
                                _server(metadata=metadata))
        message = self.assertFault(response, 403, 'forbidden')
        self.assertEqual('Maximum number of metadata items exceeds 128',
                         message)
        self.assertNotCreated()

    def test_server_create_with_128_items(self):
        metadata = {'k%d' % i: 'v' for i in range(128)}
        response = self.request('POST', '/v2.1/servers',
                                _server(metadata=metadata))
        self.assertEqual(202, response.status_int, response.text)


def _version(pair):
    from nova_snapshot.api import microversion
    return microversion.APIVersion(*pair)


class TestQueryBounds(FaultAssertions, base.APITestCase):
    """Query strings reach int() and re.compile() too."""

    def test_huge_limits_are_400(self):
        for path in ('/v2.1/servers?limit=%s', '/v2.1/servers/detail?limit=%s',
                     '/v2.1/images?limit=%s', '/v2.1/images/detail?limit=%s',
                     '/v2.1/images?page_size=%s'):
            for value in ('9' * 21, '9' * 5000):
                with self.subTest(path=path, digits=len(value)):
                    response = self.request('GET', path % value)
                    self.assertFault(response, 400, 'badRequest')

    def test_twenty_digit_server_limit_is_capped(self):
        response = self.request('GET', '/v2.1/servers?limit=' + '9' * 20)
        self.assertEqual(200, response.status_int, response.text)

    def test_regex_filters_nested_too_deep_are_400(self):
        for pattern in ('(' * 3000 + ')' * 3000, '(' * 3000, '[', '*'):
            with self.subTest(pattern=pattern[:10]):
                response = self.request(
                    'GET', '/v2.1/servers/detail?name=' + pattern)
                self.assertFault(response, 400, 'badRequest')
