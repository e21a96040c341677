"""nova-snapshot-api under 60 concurrent clients on loopback.

Starts the real console script (noauth, SQLite with 50 servers, the
in-memory messaging driver: listing never casts) with fewer worker threads
than clients, then 60 clients open a new connection for each of their
requests at the same moment (``GET /`` and ``GET /v2.1/servers/detail``).
Every request must get a 200: no connection reset, refused or timed out,
while the server process stays within its thread budget.
"""

import configparser
import http.client
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

from nova_snapshot.db import api as db_api
from tests.functional.fixtures import stack
from tests.functional import test_db_postgresql

CLIENTS = 60
REQUESTS_PER_CLIENT = 6
SERVER_THREADS = 8
SERVERS = 50
DEADLINE = 120  # seconds for the whole burst; normally a few


def seeded_api_conf(tmp, db_url, servers, prefix, api_options=None):
    """A database at ``db_url`` holding ``servers`` active servers and a
    noauth API config using it (in-memory messaging: listing never casts);
    returns the config file's path."""
    database = db_api.Database(db_url)
    database.create_schema()
    for i in range(servers):
        database.instance_create({'name': '%s-%d' % (prefix, i),
                                  'project_id': 'project',
                                  'user_id': 'demo', 'vm_state': 'active'})
    database.dispose()
    conf = configparser.ConfigParser()
    conf['DEFAULT'] = {'transport_url': 'fake:/'}
    conf['api'] = dict(api_options or {}, auth_strategy='noauth')
    conf['database'] = {'connection': db_url}
    conf_path = os.path.join(tmp, 'api.conf')
    with open(conf_path, 'w') as f:
        conf.write(f)
    return conf_path


def _threads_of(pid):
    with open('/proc/%d/status' % pid) as status:
        for line in status:
            if line.startswith('Threads:'):
                return int(line.split()[1])
    return 0


class TestAPIServerUnderLoad(unittest.TestCase):
    """SQLite, and fewer worker threads than clients."""

    THREADS = SERVER_THREADS

    def _database_url(self):
        return 'sqlite:///%s/state.sqlite' % self.tmp

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix='nova-snapshot-load-')
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.port = stack.free_port()
        api = {'bind_host': '127.0.0.1', 'bind_port': str(self.port),
               'backlog': '128'}
        if self.THREADS is not None:
            api['server_threads'] = str(self.THREADS)
        conf_path = seeded_api_conf(self.tmp, self._database_url(), SERVERS,
                                    'load', api)
        self.log_path = os.path.join(self.tmp, 'api.log')
        log = open(self.log_path, 'wb')
        self.addCleanup(log.close)
        self.proc = subprocess.Popen(
            [stack.bin_path('nova-snapshot-api'), '--config-file', conf_path],
            stdout=log, stderr=subprocess.STDOUT)
        self.addCleanup(self._stop)
        self._wait_for_api()

    def _stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def _log_tail(self):
        with open(self.log_path, errors='replace') as f:
            return ''.join(f.readlines()[-30:])

    def _get(self, path, timeout=30):
        conn = http.client.HTTPConnection('127.0.0.1', self.port,
                                          timeout=timeout)
        try:
            conn.request('GET', path,
                         headers={'X-Auth-Token': 'demo:project'})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def _wait_for_api(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.fail('nova-snapshot-api exited: %s' % self._log_tail())
            try:
                if self._get('/', timeout=2)[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.fail('nova-snapshot-api did not answer: %s' % self._log_tail())

    def test_sixty_clients_no_connection_errors(self):
        baseline_threads = _threads_of(self.proc.pid)
        start = threading.Barrier(CLIENTS + 1)
        lock = threading.Lock()
        statuses, errors, listed = [], [], []
        done = threading.Event()
        peak_threads = [baseline_threads]

        def client(index):
            start.wait()
            for n in range(REQUESTS_PER_CLIENT):
                path = '/v2.1/servers/detail' if (index + n) % 2 else '/'
                try:
                    status, body = self._get(path)
                except OSError as exc:  # reset, refused, timed out
                    with lock:
                        errors.append('%s %s: %r' % (index, path, exc))
                    continue
                with lock:
                    statuses.append(status)
                    if path != '/' and status == 200:
                        listed.append(len(json.loads(body)['servers']))

        def watch_threads():
            while not done.is_set():
                peak_threads[0] = max(peak_threads[0],
                                      _threads_of(self.proc.pid))
                time.sleep(0.01)

        clients = [threading.Thread(target=client, args=(i,), daemon=True)
                   for i in range(CLIENTS)]
        watcher = threading.Thread(target=watch_threads, daemon=True)
        for thread in clients:
            thread.start()
        watcher.start()
        began = time.monotonic()
        start.wait()
        for thread in clients:
            thread.join(max(0, DEADLINE - (time.monotonic() - began)))
        elapsed = time.monotonic() - began
        done.set()
        watcher.join()
        self.assertFalse(any(t.is_alive() for t in clients),
                         'clients still running after %ss' % DEADLINE)
        total = CLIENTS * REQUESTS_PER_CLIENT
        print('%d requests from %d clients in %.2fs: %d errors, statuses %s, '
              'server threads %d -> peak %d' % (
                  total, CLIENTS, elapsed, len(errors),
                  sorted(set(statuses)), baseline_threads, peak_threads[0]))
        self.assertEqual([], errors)
        self.assertEqual([200] * total, statuses)
        self.assertEqual([SERVERS] * (total // 2), listed)
        # Workers are a fixed pool: not a thread per connection.
        self.assertLessEqual(peak_threads[0],
                             baseline_threads + (self.THREADS or 32))


class TestAPIServerUnderLoadPostgreSQL(TestAPIServerUnderLoad):
    """PostgreSQL with the default [api] server_threads and [database]
    pool: the issue's "QueuePool limit of size 5 overflow 10 reached" 500s
    came from this combination."""

    THREADS = None

    def _database_url(self):
        server_db = test_db_postgresql._PostgreSQL(test_db_postgresql.PG_URL)
        server_db.create()
        self.addCleanup(server_db.drop)
        return server_db.url.render_as_string(hide_password=False)
