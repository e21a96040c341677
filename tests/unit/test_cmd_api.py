"""The development server's bounded pool (nova_snapshot/cmd/api.py)."""

import http.client
import threading
import unittest

from nova_snapshot.cmd import api as api_cmd
from nova_snapshot import conf as ns_conf


class TestBoundedServer(unittest.TestCase):

    def _conf(self, **api):
        conf = ns_conf.new_conf([])
        conf.set_override('bind_host', '127.0.0.1', group='api')
        conf.set_override('bind_port', 0, group='api')
        for name, value in api.items():
            conf.set_override(name, value, group='api')
        return conf

    def test_never_more_requests_at_once_than_threads(self):
        lock = threading.Lock()
        running = [0, 0]  # now, peak
        release = threading.Event()

        def app(environ, start_response):
            with lock:
                running[0] += 1
                running[1] = max(running[1], running[0])
            release.wait(0.05)
            with lock:
                running[0] -= 1
            start_response('200 OK', [('Content-Type', 'text/plain')])
            return [b'ok']

        server = api_cmd.make_server(
            self._conf(server_threads=3, backlog=64), app)
        self.assertEqual(64, server.request_queue_size)
        port = server.server_address[1]
        serving = threading.Thread(target=server.serve_forever, daemon=True)
        serving.start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        statuses = []

        def client():
            conn = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
            try:
                conn.request('GET', '/')
                response = conn.getresponse()
                response.read()
                with lock:
                    statuses.append(response.status)
            finally:
                conn.close()

        clients = [threading.Thread(target=client) for _ in range(20)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(30)
        self.assertEqual([200] * 20, statuses)
        self.assertEqual(3, running[1])

    def test_warns_when_threads_exceed_the_pool(self):
        conf = self._conf(server_threads=50)
        conf.set_override('connection', 'postgresql://h/db',
                          group='database')
        self.assertTrue(api_cmd._warn_if_pool_smaller_than_threads(conf))
        conf.set_override('server_threads', 40, group='api')
        self.assertFalse(api_cmd._warn_if_pool_smaller_than_threads(conf))
        conf.set_override('connection', 'sqlite://', group='database')
        conf.set_override('server_threads', 500, group='api')
        self.assertFalse(api_cmd._warn_if_pool_smaller_than_threads(conf))
