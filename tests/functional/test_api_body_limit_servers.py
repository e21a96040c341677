"""The body size limit over real HTTP, under uWSGI (production, the shipped
ini) and the development server.

What only a real server shows: a Content-Length over the limit is answered
413 without the body ever being sent (the client waits for the answer
first), and a chunked body, which neither server de-chunks, is no body:
400 at once, never read past the limit and never waited for. Only the API
runs (noauth, SQLite, the stack's RabbitMQ); nothing here gets past the
size check or the body parser, so no compute service is needed.
"""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from tests.functional.fixtures import deployment
from tests.functional.fixtures.stack import bin_path
from tests.functional.fixtures.stack import free_port
from tests.functional.fixtures.stack import read_stack_env

LIMIT = 114688
HEADERS = {'X-Auth-Token': 'alice:project-a',
           'Content-Type': 'application/json'}


class _ServerTest:

    UWSGI = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        stack = read_stack_env()
        cls.state_dir = tempfile.mkdtemp(prefix='nova-snapshot-bodylimit-')
        cls.port = free_port()
        conf = os.path.join(cls.state_dir, 'api.conf')
        with open(conf, 'w') as conf_file:
            conf_file.write(
                '[DEFAULT]\ntransport_url = %s\nlog_file = %s\n'
                '[database]\nconnection = sqlite:///%s\n'
                '[api]\nauth_strategy = noauth\nbind_host = 127.0.0.1\n'
                'bind_port = %d\n[glance]\napi_endpoint = %s\n' % (
                    stack['TRANSPORT_URL'],
                    os.path.join(cls.state_dir, 'api.log'),
                    os.path.join(cls.state_dir, 'db.sqlite'), cls.port,
                    stack['GLANCE_URL']))
        subprocess.run([bin_path('nova-snapshot-manage'), '--config-file',
                        conf, 'db', 'sync'], check=True, capture_output=True)
        if cls.UWSGI:
            ini = deployment.write_uwsgi_ini(
                os.path.join(cls.state_dir, 'api-uwsgi.ini'), cls.port, conf,
                os.path.join(cls.state_dir, 'api-uwsgi.log'))
            argv = [deployment.uwsgi_binary(stack), '--ini', ini]
        else:
            argv = [bin_path('nova-snapshot-api'), '--config-file', conf]
        out = open(os.path.join(cls.state_dir, 'api.out'), 'ab')
        cls.proc = subprocess.Popen(argv, stdout=out, stderr=out,
                                    start_new_session=True)
        out.close()
        deadline = time.monotonic() + 60
        while True:
            try:
                cls._get_root()
                break
            except OSError:
                if cls.proc.poll() is not None or time.monotonic() > deadline:
                    cls._stop()
                    raise
                time.sleep(0.2)

    @classmethod
    def _get_root(cls):
        conn = http.client.HTTPConnection('127.0.0.1', cls.port, timeout=5)
        try:
            conn.request('GET', '/')
            conn.getresponse().read()
        finally:
            conn.close()

    @classmethod
    def _stop(cls):
        if cls.proc.poll() is None:
            # uWSGI's master and workers share the session we started.
            os.killpg(cls.proc.pid, signal.SIGTERM)
            try:
                cls.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(cls.proc.pid, signal.SIGKILL)
                cls.proc.wait()
        shutil.rmtree(cls.state_dir, ignore_errors=True)

    @classmethod
    def tearDownClass(cls):
        cls._stop()
        super().tearDownClass()

    def connect(self):
        conn = http.client.HTTPConnection('127.0.0.1', self.port, timeout=20)
        self.addCleanup(conn.close)
        return conn

    def assertFault(self, response, code, name):
        body = json.loads(response.read())
        self.assertEqual(code, response.status, body)
        self.assertEqual(code, body[name]['code'])
        return body[name]['message']

    def test_content_length_over_the_limit_is_413_before_the_body(self):
        conn = self.connect()
        conn.putrequest('POST', '/v2.1/servers')
        for key, value in HEADERS.items():
            conn.putheader(key, value)
        conn.putheader('Content-Length', str(16 << 20))
        conn.endheaders()
        # Not one byte of the 16 MiB is sent: the answer must not need it.
        started = time.monotonic()
        response = conn.getresponse()
        self.assertLess(time.monotonic() - started, 10)
        self.assertIn('114688', self.assertFault(response, 413, 'overLimit'))

    def test_at_the_limit_reaches_the_api(self):
        body = b'{"server": {"pad": "' + b'x' * (LIMIT - 23) + b'"}}'
        self.assertEqual(LIMIT, len(body))
        conn = self.connect()
        conn.request('POST', '/v2.1/servers', body=body, headers=HEADERS)
        message = self.assertFault(conn.getresponse(), 400, 'badRequest')
        # Parsed and checked against the schema.
        self.assertEqual("'name' is a required property", message)

    def _chunked(self, body):
        """POST ``body`` chunked; the answer, even when the server answers
        and closes before the last chunk (the client then gets EPIPE)."""
        sock = socket.create_connection(('127.0.0.1', self.port), timeout=20)
        self.addCleanup(sock.close)
        head = ['POST /v2.1/servers HTTP/1.1', 'Host: 127.0.0.1',
                'Transfer-Encoding: chunked']
        head += ['%s: %s' % item for item in HEADERS.items()]
        try:
            sock.sendall(('\r\n'.join(head) + '\r\n\r\n').encode())
            for start in range(0, len(body), 8192):
                chunk = body[start:start + 8192]
                sock.sendall(b'%x\r\n%s\r\n' % (len(chunk), chunk))
            sock.sendall(b'0\r\n\r\n')
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered early; the answer is in the receive buffer
        response = http.client.HTTPResponse(sock, method='POST')
        response.begin()
        return response

    def test_chunked_is_no_body_and_no_wait(self):
        # Neither server de-chunks (uWSGI's http-socket hands the app an
        # empty input; wsgiref the raw socket, which the API does not read
        # without a length, as it would wait for the client to close): a
        # chunked body is no body, 400 at once, whatever its size. A server
        # that de-chunks and ends the input has it counted against the
        # limit instead (tests/unit/api/test_request_bounds.py).
        for size in (20000, LIMIT + 1, 4 << 20):
            with self.subTest(size=size):
                started = time.monotonic()
                message = self.assertFault(
                    self._chunked(b'{"server": {"pad": "' + b'x' * size +
                                  b'"}}'), 400, 'badRequest')
                self.assertLess(time.monotonic() - started, 10)
                self.assertEqual('Malformed request body', message)


class UWSGIBodyLimitTest(_ServerTest, unittest.TestCase):
    """The API as production serves it (the shipped api-uwsgi.ini)."""

    UWSGI = True


class DevServerBodyLimitTest(_ServerTest, unittest.TestCase):
    """nova-snapshot-api, the development server (wsgiref)."""
