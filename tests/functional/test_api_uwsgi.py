"""The shipped etc/nova-snapshot/api-uwsgi.ini serves the API under uWSGI.

The file is used as shipped except for what a test must change
(``deployment.write_uwsgi_ini``): the listen address (a free loopback
port), the configuration file it names, the log and the virtualenv (this
one). uWSGI is the project virtualenv's own, else the test stack's Glance
one (same Python); without one the test is an error, not a skip.
"""

import http.client
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

from tests.functional.fixtures import deployment
from tests.functional.fixtures import stack
from tests.functional import test_api_server_load

CLIENTS = 60
SERVERS = 20


class TestAPIUnderUWSGI(unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix='nova-snapshot-uwsgi-')
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.port = stack.free_port()
        conf_path = test_api_server_load.seeded_api_conf(
            self.tmp, 'sqlite:///%s/state.sqlite' % self.tmp, SERVERS, 'u')
        # The shipped ini; only address, config, log and venv are ours.
        self.ini_path = deployment.write_uwsgi_ini(
            os.path.join(self.tmp, 'api-uwsgi.ini'), self.port, conf_path,
            os.path.join(self.tmp, 'uwsgi.log'))
        self.proc = subprocess.Popen(
            [deployment.uwsgi_binary(), '--ini', self.ini_path],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(self._kill)
        self._wait_for_api()

    def _kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def _log(self):
        try:
            with open(os.path.join(self.tmp, 'uwsgi.log'),
                      errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def _get(self, path, headers=None, timeout=30):
        conn = http.client.HTTPConnection('127.0.0.1', self.port,
                                          timeout=timeout)
        try:
            all_headers = {'X-Auth-Token': 'demo:project'}
            all_headers.update(headers or {})
            conn.request('GET', path, headers=all_headers)
            response = conn.getresponse()
            return response, response.read()
        finally:
            conn.close()

    def _wait_for_api(self):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.fail('uwsgi exited %s: %s' % (self.proc.returncode,
                                                   self._log()[-3000:]))
            try:
                if self._get('/', timeout=2)[0].status == 200:
                    return
            except OSError:
                time.sleep(0.3)
        self.fail('uwsgi did not answer: %s' % self._log()[-3000:])

    def test_serves_the_api_as_configured(self):
        response, body = self._get('/')
        self.assertEqual(200, response.status)
        self.assertIn(b'v2.1', body)
        self.assertEqual('close', response.getheader('Connection'))
        # A Keystone-sized header set fits in buffer-size.
        response, body = self._get('/v2.1/servers?limit=5',
                                   headers={'X-Padding': 'x' * 12000})
        self.assertEqual(200, response.status, body)
        self.assertIn(b'servers_links', body)
        # Two workers, each loading the application itself (lazy-apps);
        # the second may still be loading while the first answers.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            log = self._log()
            if len(re.findall(r'WSGI app 0 .* ready', log)) >= 2:
                break
            time.sleep(0.5)
        self.assertEqual(2, len(re.findall(r'spawned uWSGI worker', log)))
        ready = re.findall(r'WSGI app 0 .* ready .* pid: (\d+)', log)
        self.assertEqual(2, len(set(ready)), log[-3000:])
        self.assertIn('listen backlog is limited to 256 connections', log)

    def test_sixty_concurrent_clients(self):
        start = threading.Barrier(CLIENTS + 1)
        lock = threading.Lock()
        statuses, errors = [], []

        def client(index):
            start.wait()
            for path in ('/', '/v2.1/servers/detail', '/v2.1/servers'):
                try:
                    response, _ = self._get(path)
                except OSError as exc:
                    with lock:
                        errors.append('%s %s: %r' % (index, path, exc))
                    continue
                with lock:
                    statuses.append(response.status)

        threads = [threading.Thread(target=client, args=(i,), daemon=True)
                   for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        began = time.monotonic()
        start.wait()
        for thread in threads:
            thread.join(max(0, 120 - (time.monotonic() - began)))
        print('uwsgi: %d requests from %d clients in %.2fs, %d errors' % (
            len(statuses) + len(errors), CLIENTS,
            time.monotonic() - began, len(errors)))
        self.assertEqual([], errors)
        self.assertEqual([200] * (CLIENTS * 3), statuses)

    def test_sigterm_stops_it(self):
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        # die-on-term, and worker-reload-mercy bounds a slow worker.
        self.assertIsNotNone(self.proc.wait(timeout=45))
        print('uwsgi stopped %.1fs after SIGTERM' % (
            time.monotonic() - began))
        self.assertIn('goodbye to uWSGI', self._log())
