"""Control-plane benchmark: the compute API under 50 concurrent clients.

A deployment of the real services (``nova-snapshot-api`` and two
``nova-snapshot-compute`` hosts on the ``fake`` driver plugin, RabbitMQ's
test vhost, the stack's Glance on :9292) with a PostgreSQL of its own: a
throwaway cluster started here from the machine's PostgreSQL binaries with
``pg_stat_statements`` loaded, so that every SQL statement the API sends is
counted by the database itself (the API and the compute services connect
as different roles). In one run it measures, and prints:

1. pre-creating ``--servers`` servers (1,000) with 50 concurrent
   ``POST /servers``, and how long until all are ACTIVE;
2. ``GET /servers/detail`` of those servers for one client, and the SQL
   statements each API request costs (one operation at a time);
3. the ceiling: Glance's own ``POST /v2/images`` at the same concurrency,
   then ``createImage`` at that concurrency, one per server (each
   createImage creates one Glance image), and how long until every
   snapshot is uploaded;
4. 50 concurrent ``createImage`` on one server while its snapshot is held
   in flight (``[fake] snapshot_hold_dir``): exactly one should get 202;
   then 50 more while it is still held (all should get 409);
5. 50 clients doing a mix of ``POST /servers``, ``GET /servers/detail``,
   ``GET /servers/{id}`` and ``createImage`` (on distinct servers) for
   ``--duration`` seconds (600; ``--quick``: 60).

For each operation: throughput, p50/p95/p99/max, every non-2xx status and
every connection error by kind; the API's resident memory (VmRSS of its
processes) sampled over the run. Targets are printed next to the numbers;
nothing is asserted. Every request goes to 127.0.0.1 on a new connection
(so a full listen backlog shows up as an error, not as a pooled retry).

Usage: tools/benchmark.sh --control [--quick] [--uwsgi] [--json FILE]
or, once the stack runs: nice -n 10 .venv/bin/python tools/benchmark_control.py
"""

import argparse
import collections
import http.client
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import psycopg2  # noqa: E402

from nova_snapshot import conf as ns_conf  # noqa: E402
from tests.functional.fixtures import deployment as deployment_fixture  # noqa: E402
from tests.functional.fixtures import stack as stack_fixture  # noqa: E402

MICROVERSION = '2.45'
REQUEST_TIMEOUT = 120.0
PG_BIN = '/usr/lib/postgresql/%s/bin'
# Roles of the private cluster: who sent a statement.
API_ROLE, COMPUTE_ROLE, BENCH_ROLE = 'nova_api', 'nova_compute', 'bench'
DB_NAME = 'nova_snapshot'
# Weights of the mixed phase (POST /servers, detail, show, createImage).
DEFAULT_MIX = 'create=2,detail=2,show=4,image=2'


# -- measuring ------------------------------------------------------------

def percentile(sorted_values, fraction):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, int(round(fraction * len(sorted_values) + 0.4999)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class Recorder:
    """Latencies, statuses and connection errors of one phase, by op."""

    def __init__(self, name):
        self.name = name
        self.lock = threading.Lock()
        self.latencies = collections.defaultdict(list)   # op -> [s] of 2xx
        self.finished = collections.defaultdict(list)    # op -> [t] of 2xx
        self.statuses = collections.defaultdict(collections.Counter)
        self.errors = collections.defaultdict(collections.Counter)
        self.started = self.ended = None

    def start(self):
        self.started = time.monotonic()

    def stop(self, at=None):
        """End the phase now, or at ``at`` for a timed phase.

        Throughput counts the answers that arrived by then; latencies and
        statuses include the requests that were in flight.
        """
        self.ended = at or time.monotonic()

    def add(self, op, status, seconds, error=None):
        with self.lock:
            if error is not None:
                self.errors[op][error] += 1
                return
            self.statuses[op][status] += 1
            if 200 <= status < 300:
                self.latencies[op].append(seconds)
                self.finished[op].append(time.monotonic())

    def ops(self):
        return sorted(set(self.statuses) | set(self.errors))

    def wall(self):
        return (self.ended or time.monotonic()) - self.started

    def summary(self, op):
        lat = sorted(self.latencies.get(op, []))
        statuses = self.statuses.get(op, collections.Counter())
        errors = self.errors.get(op, collections.Counter())
        ok = len(lat)
        in_time = sum(1 for t in self.finished.get(op, ())
                      if self.ended is None or t <= self.ended)
        return {
            'requests': sum(statuses.values()) + sum(errors.values()),
            'ok': ok,
            'per_second': in_time / self.wall() if self.wall() > 0 else 0.0,
            'p50_ms': _ms(percentile(lat, 0.50)),
            'p95_ms': _ms(percentile(lat, 0.95)),
            'p99_ms': _ms(percentile(lat, 0.99)),
            'max_ms': _ms(lat[-1] if lat else None),
            'non_2xx': {str(s): n for s, n in sorted(statuses.items())
                        if not 200 <= s < 300},
            'connection_errors': dict(sorted(errors.items())),
        }

    def report(self):
        out = {'wall_seconds': round(self.wall(), 2)}
        for op in self.ops():
            out[op] = self.summary(op)
        return out


def _ms(seconds):
    return None if seconds is None else round(seconds * 1000.0, 1)


def error_kind(exc):
    """A connection error's name: ConnectionResetError, timeout, ..."""
    if isinstance(exc, socket.timeout):
        return 'timeout'
    return type(exc).__name__


class HTTP:
    """One request per new connection to 127.0.0.1:port."""

    def __init__(self, port, headers):
        self.port = port
        self.headers = headers

    def call(self, method, path, body=None, headers=None):
        """(status, parsed body or None); raises OSError/HTTPException."""
        all_headers = dict(self.headers, **(headers or {}))
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            all_headers.setdefault('Content-Type', 'application/json')
        conn = http.client.HTTPConnection('127.0.0.1', self.port,
                                          timeout=REQUEST_TIMEOUT)
        try:
            conn.request(method, path, body=data, headers=all_headers)
            resp = conn.getresponse()
            raw = resp.read()
            location = resp.getheader('Location')
        finally:
            conn.close()
        parsed = None
        if raw and raw[:1] in (b'{', b'['):
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
        return resp.status, parsed, location

    def timed(self, recorder, op, method, path, body=None, headers=None):
        """Make one request and record it.

        Returns (status, body), or (None, None) on a connection error.
        """
        start = time.monotonic()
        try:
            status, parsed, location = self.call(method, path, body, headers)
        except (OSError, http.client.HTTPException) as exc:
            recorder.add(op, None, time.monotonic() - start, error_kind(exc))
            return None, None
        recorder.add(op, status, time.monotonic() - start)
        if parsed is None and location:
            parsed = {'location': location}
        return status, parsed


def run_clients(count, work, deadline):
    """Run ``work(index)`` in ``count`` threads.

    They are joined by ``deadline`` plus the request timeout (a request in
    flight may finish).
    """
    threads = [threading.Thread(target=work, args=(i,), daemon=True)
               for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + REQUEST_TIMEOUT)
    stuck = sum(t.is_alive() for t in threads)
    if stuck:
        print('  warning: %d client threads still running' % stuck)


def split_work(items):
    """A shared queue of work items, taken one at a time."""
    lock = threading.Lock()
    iterator = iter(items)

    def take():
        with lock:
            return next(iterator, None)
    return take


# -- the API's memory -----------------------------------------------------

def vm_rss_kib(pid):
    try:
        with open('/proc/%d/status' % pid) as status:
            for line in status:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pids):
    """User + system CPU seconds of these processes (Linux /proc)."""
    total = 0.0
    for pid in pids:
        try:
            with open('/proc/%d/stat' % pid) as stat:
                fields = stat.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf('SC_CLK_TCK')


class CPUMeter:
    """CPU seconds spent by the API, the computes and Glance in a phase."""

    def __init__(self, deployment, stack):
        with open(os.path.join(stack['STACK_DIR'], 'pids',
                               'glance-uwsgi.pid')) as f:
            glance = int(f.read().split()[0])
        api = deployment.processes['api'].pid
        computes = [proc.pid for name, proc in deployment.processes.items()
                    if name.startswith('compute-')]
        self.accounts = {
            'api': lambda: [api] + deployment_fixture.child_pids(api),
            'computes': lambda: computes,
            'glance': lambda: [glance] + deployment_fixture.child_pids(glance),
        }
        self.before = self.read()

    def read(self):
        return {name: cpu_seconds(pids()) for name, pids in
                self.accounts.items()}

    def delta(self):
        after = self.read()
        return {name: round(after[name] - self.before[name], 1)
                for name in after}


GLANCE_LOG_LINE = re.compile(
    r'\] (GET|POST|PUT|PATCH|DELETE|HEAD) (\S+) => generated \d+ bytes in '
    r'(\d+) msecs')
UUID_RE = re.compile(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-'
                     r'[0-9a-f]{12}')


class GlanceLog:
    """Requests Glance's uWSGI logged in a phase, by method and path shape.

    Read from the stack's Glance log (one line per request with the time
    its worker spent on it); other users of the stack's Glance show up
    here too, which is why the counts are printed per createImage next to
    the phase's own request counts.
    """

    def __init__(self, stack):
        self.path = os.path.join(stack['STACK_DIR'], 'logs',
                                 'glance-uwsgi.log')
        try:
            self.offset = os.path.getsize(self.path)
        except OSError:
            self.offset = None

    def delta(self):
        counts = collections.Counter()
        busy_ms = collections.Counter()
        if self.offset is None:
            return {}
        with open(self.path, 'rb') as log:
            log.seek(self.offset)
            text = log.read(64 * 2 ** 20).decode('utf-8', 'replace')
        for match in GLANCE_LOG_LINE.finditer(text):
            method, path, msecs = match.groups()
            shape = '%s %s' % (method, UUID_RE.sub('{id}',
                                                   path.split('?')[0]))
            counts[shape] += 1
            busy_ms[shape] += int(msecs)
        return {shape: {'requests': n, 'worker_ms': busy_ms[shape]}
                for shape, n in counts.most_common()}


def print_glance(glance_log, per, what):
    if not glance_log:
        return
    print('  Glance requests in the phase (its log), per %s: %s' % (
        what, ', '.join('%s %.2f (%.0f ms)' % (
            shape, v['requests'] / per, v['worker_ms'] / per)
            for shape, v in glance_log.items())))


def print_cpu(cpu, wall):
    print('  CPU seconds in the phase (2 cores = %.0f s available): %s' % (
        2 * wall, ', '.join('%s %.1f' % item for item in sorted(cpu.items()))))


class RSSSampler(threading.Thread):
    """VmRSS of the API process and its children every ``interval`` s."""

    def __init__(self, pid, interval):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.samples = []          # (monotonic, phase, KiB)
        self.phase = 'start'
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            pids = [self.pid] + deployment_fixture.child_pids(self.pid)
            self.samples.append((time.monotonic(), self.phase,
                                 sum(vm_rss_kib(p) for p in pids)))
            self.done.wait(self.interval)

    def stop(self):
        self.done.set()
        self.join(5)


# -- a PostgreSQL of the benchmark's own ------------------------------------

class PrivatePostgres:
    """A throwaway cluster with pg_stat_statements, on 127.0.0.1.

    The stack's shared PostgreSQL does not preload pg_stat_statements and
    cannot be restarted under the other users; this one is started from
    the same binaries with the defaults of ``initdb`` plus the extension.
    """

    def __init__(self, workdir):
        versions = sorted(os.listdir('/usr/lib/postgresql'),
                          key=lambda v: [int(x) for x in v.split('.')])
        self.bin = PG_BIN % versions[-1]
        self.dir = os.path.join(workdir, 'pg')
        self.port = stack_fixture.free_port()
        self.as_owner = []
        if os.geteuid() == 0:
            # initdb refuses to run as root.
            self.as_owner = ['runuser', '-u', 'postgres', '--']

    def _run(self, argv):
        subprocess.run(self.as_owner + argv, check=True, capture_output=True)

    def start(self):
        os.makedirs(self.dir)
        if self.as_owner:
            shutil.chown(os.path.dirname(self.dir), 'postgres')
            shutil.chown(self.dir, 'postgres')
        data = os.path.join(self.dir, 'data')
        self._run([os.path.join(self.bin, 'initdb'), '-D', data, '-A',
                   'trust', '-U', 'postgres', '--no-sync'])
        options = ('-c listen_addresses=127.0.0.1 -c port=%d '
                   '-c unix_socket_directories=%s -c max_connections=400 '
                   '-c shared_preload_libraries=pg_stat_statements '
                   '-c pg_stat_statements.max=10000 '
                   '-c pg_stat_statements.track_utility=on'
                   % (self.port, self.dir))
        self._run([os.path.join(self.bin, 'pg_ctl'), '-D', data, '-w', '-t',
                   '60', '-o', options, '-l',
                   os.path.join(self.dir, 'postgres.log'), 'start'])
        admin = self.connect('postgres', 'postgres')
        with admin.cursor() as cur:
            for role in (API_ROLE, COMPUTE_ROLE, BENCH_ROLE):
                cur.execute('CREATE ROLE %s LOGIN SUPERUSER' % role)
            cur.execute('CREATE DATABASE %s OWNER %s' % (DB_NAME, API_ROLE))
        admin.close()
        self.bench = self.connect(BENCH_ROLE, DB_NAME)
        with self.bench.cursor() as cur:
            cur.execute('CREATE EXTENSION pg_stat_statements')
        return self

    def connect(self, user, dbname):
        conn = psycopg2.connect(host='127.0.0.1', port=self.port, user=user,
                                dbname=dbname)
        conn.autocommit = True
        return conn

    def url(self, role):
        return 'postgresql+psycopg2://%s@127.0.0.1:%d/%s' % (
            role, self.port, DB_NAME)

    def query(self, sql, args=()):
        with self.bench.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def statements(self):
        """{role: (all statements, transaction control among them)}."""
        rows = self.query(
            "SELECT r.rolname, sum(s.calls), sum(s.calls) FILTER (WHERE "
            "s.query ~* '^\\s*(begin|commit|rollback|savepoint|release)')"
            " FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid"
            " JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s"
            " GROUP BY r.rolname", (DB_NAME,))
        return {role: (int(total or 0), int(tx or 0))
                for role, total, tx in rows}

    def top_statements(self, role, limit=8):
        return self.query(
            'SELECT s.calls, left(regexp_replace(s.query, %s, %s, %s), 110)'
            ' FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid'
            ' WHERE r.rolname = %s ORDER BY s.calls DESC LIMIT %s',
            (r'\s+', ' ', 'g', role, limit))

    def stop(self):
        try:
            self.bench.close()
        except Exception:
            pass
        subprocess.run(self.as_owner + [
            os.path.join(self.bin, 'pg_ctl'), '-D',
            os.path.join(self.dir, 'data'), '-m', 'fast', '-w', 'stop'],
            capture_output=True)


class StatementCounter:
    """API statements (and compute statements) between two points."""

    def __init__(self, pg):
        self.pg = pg
        self.before = pg.statements()

    def delta(self):
        after = self.pg.statements()
        out = {}
        for role in (API_ROLE, COMPUTE_ROLE):
            total, tx = after.get(role, (0, 0))
            btotal, btx = self.before.get(role, (0, 0))
            out[role] = (total - btotal, tx - btx)
        return out


# -- the deployment --------------------------------------------------------

class BenchDeployment(deployment_fixture.Deployment):
    """A Deployment whose computes connect as their own database role.

    ``uwsgi=True`` (the fixture's) serves the API under uWSGI with the
    shipped ``etc/nova-snapshot/api-uwsgi.ini``.
    """

    def __init__(self, compute_url, **kw):
        super().__init__(**kw)
        self.compute_url = compute_url

    def start_compute(self, host, extra_conf=None):
        extra = dict(extra_conf or {})
        extra['database'] = dict(extra.get('database', {}),
                                 connection=self.compute_url)
        return super().start_compute(host, extra)


def scheduler_needs_a_host():
    """True while the API refuses to choose among several compute hosts."""
    from nova_snapshot.compute import scheduler
    with open(scheduler.__file__) as src:
        return 'several compute services are up' in src.read()


def deployment_conf(hold_dir, schedule_host, response_validation):
    conf = ns_conf.new_conf([])
    extra = {
        'DEFAULT': {'debug': 'false'},
        # The test fixture's "error"; an operator gets the option's default.
        'api': {'response_validation': response_validation or
                conf.api.response_validation},
        'compute': {'compute_driver': 'fake'},
        'fake': {'snapshot_hold_dir': hold_dir},
    }
    choices = list(getattr(conf._get_opt_info('auth_mode', 'glance')['opt']
                           .type, 'choices', None) or ())
    if 'identity_headers' in choices:
        extra['glance'] = {'auth_mode': 'identity_headers'}
    if schedule_host:
        extra['compute']['default_schedule_host'] = schedule_host
    return extra


# -- Glance, directly --------------------------------------------------------

def glance_http(stack, project, user):
    url = stack['GLANCE_URL']
    port = int(url.rsplit(':', 1)[1].split('/')[0])
    assert url.startswith('http://127.0.0.1:'), url
    return HTTP(port, {'X-Identity-Status': 'Confirmed',
                       'X-Project-Id': project, 'X-User-Id': user,
                       'X-Roles': 'member,reader'})


def upload_base_image(glance):
    status, image, _ = glance.call('POST', '/v2/images', {
        'name': 'bench-control-base', 'disk_format': 'raw',
        'container_format': 'bare', 'visibility': 'private'})
    if status != 201:
        raise RuntimeError('Glance image create: %s %s' % (status, image))
    conn = http.client.HTTPConnection('127.0.0.1', glance.port, timeout=60)
    try:
        conn.request('PUT', '/v2/images/%s/file' % image['id'],
                     body=b'\0' * 4096,
                     headers=dict(glance.headers, **{
                         'Content-Type': 'application/octet-stream'}))
        resp = conn.getresponse()
        resp.read()
    finally:
        conn.close()
    if resp.status != 204:
        raise RuntimeError('Glance upload: %s' % resp.status)
    return image['id']


def delete_project_images(glance, max_seconds=600):
    """Delete every image of the benchmark's project (bounded)."""
    deadline = time.monotonic() + max_seconds
    ids = []
    marker = None
    for _ in range(1000):
        path = '/v2/images?limit=500' + ('&marker=%s' % marker if marker
                                         else '')
        try:
            status, page, _ = glance.call('GET', path)
        except (OSError, http.client.HTTPException):
            break
        if status != 200 or not page['images']:
            break
        ids += [i['id'] for i in page['images']
                if i.get('owner') == glance.headers['X-Project-Id']]
        marker = page['images'][-1]['id']
        if time.monotonic() > deadline:
            break
    take = split_work(ids)
    failed = collections.Counter()

    def work(_):
        while time.monotonic() < deadline:
            image_id = take()
            if image_id is None:
                return
            try:
                status, _, _ = glance.call('DELETE', '/v2/images/%s' % image_id)
                if status not in (204, 404):
                    failed[status] += 1
            except (OSError, http.client.HTTPException) as exc:
                failed[error_kind(exc)] += 1
    run_clients(8, work, deadline)
    return len(ids), dict(failed)


# -- phases -------------------------------------------------------------------

def create_body(name, image_id):
    return {'server': {'name': name, 'imageRef': image_id, 'flavorRef': '1',
                       'networks': 'none'}}


def image_body(name):
    return {'createImage': {'name': name, 'metadata': {}}}


def precreate(api, image_id, count, clients, max_seconds):
    """Create ``count`` servers at ``clients`` concurrency.

    A failed create is recorded and tried again (at most ``count`` retries
    in all) so that the later phases have their servers.
    """
    rec = Recorder('precreate')
    names = split_work(['bench-%04d' % i for i in range(count)])
    retries = split_work(range(count))
    ids = []
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds

    def work(_):
        while time.monotonic() < deadline:
            name = names()
            if name is None:
                return
            while time.monotonic() < deadline:
                status, body = api.timed(rec, 'POST /servers', 'POST',
                                         '/v2.1/servers',
                                         create_body(name, image_id))
                if status == 202:
                    with lock:
                        ids.append(body['server']['id'])
                    break
                if retries() is None:
                    return
    rec.start()
    run_clients(clients, work, deadline)
    rec.stop()
    return rec, ids


def wait_for_states(pg, max_seconds, what='servers'):
    """Wait until no server is building or has a task.

    Returns (seconds waited, {vm_state: n}, servers still busy).
    """
    start = time.monotonic()
    while True:
        busy = pg.query('SELECT count(*) FROM instances WHERE deleted = 0 '
                        'AND (vm_state = %s OR task_state IS NOT NULL)',
                        ('building',))[0][0]
        if busy == 0 or time.monotonic() - start > max_seconds:
            break
        time.sleep(0.5)
    states = dict(pg.query('SELECT vm_state, count(*) FROM instances WHERE '
                           'deleted = 0 GROUP BY vm_state'))
    return time.monotonic() - start, states, busy


def single_client_detail(api, repeats, pg):
    rec = Recorder('detail-1-client')
    counts = []
    counter = StatementCounter(pg)
    rec.start()
    for _ in range(repeats):
        status, body = api.timed(rec, 'GET /servers/detail', 'GET',
                                 '/v2.1/servers/detail')
        if status == 200:
            counts.append(len(body['servers']))
    rec.stop()
    return rec, counts, counter.delta()


def statements_per_request(api, pg, image_id, servers, repeats):
    """Sequential requests of one kind; the API role's statements each."""
    out = {}
    probes = [
        ('GET /servers/{id}', lambda i: ('GET', '/v2.1/servers/%s'
                                         % servers[i], None)),
        ('GET /servers?limit=100', lambda i: ('GET', '/v2.1/servers?limit=100',
                                              None)),
        ('POST /servers', lambda i: ('POST', '/v2.1/servers', create_body(
            'bench-probe-%d' % i, image_id))),
        ('createImage', lambda i: ('POST', '/v2.1/servers/%s/action'
                                   % servers[i], image_body('probe-%d' % i))),
    ]
    for op, make in probes:
        rec = Recorder(op)
        counter = StatementCounter(pg)
        ok = 0
        rec.start()
        for i in range(repeats):
            method, path, body = make(i)
            status, _ = api.timed(rec, op, method, path, body)
            ok += status is not None and 200 <= status < 300
        rec.stop()
        delta = counter.delta()
        total, tx = delta[API_ROLE]
        out[op] = {'requests': repeats, 'ok': ok,
                   'p50_ms': rec.summary(op)['p50_ms'],
                   'statements_per_request': round(total / repeats, 1),
                   'of_which_transaction_control': round(tx / repeats, 1)}
    return out


def glance_ceiling(glance, count, clients, max_seconds, user):
    rec = Recorder('glance')
    take = split_work(range(count))
    deadline = time.monotonic() + max_seconds

    def work(_):
        while time.monotonic() < deadline:
            i = take()
            if i is None:
                return
            # The shape of the image createImage makes (snapshot_metadata).
            glance.timed(rec, 'Glance POST /v2/images', 'POST', '/v2/images',
                         {'name': 'ceiling-%d' % i, 'min_ram': 0,
                          'min_disk': 0, 'visibility': 'private',
                          'instance_uuid': str(uuid.uuid4()),
                          'user_id': user, 'image_type': 'snapshot'})
    rec.start()
    run_clients(clients, work, deadline)
    rec.stop()
    return rec


def create_images(api, servers, clients, max_seconds):
    rec = Recorder('createImage')
    take = split_work(servers)
    deadline = time.monotonic() + max_seconds

    def work(_):
        while time.monotonic() < deadline:
            server = take()
            if server is None:
                return
            api.timed(rec, 'createImage', 'POST',
                      '/v2.1/servers/%s/action' % server,
                      image_body('bench-%s' % server[:8]))
    rec.start()
    run_clients(clients, work, deadline)
    rec.stop()
    return rec


def race(api, server, clients, hold_dir, pg, glance):
    """Concurrent createImage on one server whose snapshot is held.

    ``clients`` requests at once; the winner's snapshot stays held after
    its capture; then as many again while it is still held.
    """
    hold = os.path.join(hold_dir, server)
    open(hold, 'w').close()
    results = {}
    try:
        for wave in ('race', 'while held'):
            rec = Recorder(wave)
            barrier = threading.Barrier(clients, timeout=60)

            def work(i, rec=rec, barrier=barrier, wave=wave):
                barrier.wait()
                api.timed(rec, 'createImage', 'POST',
                          '/v2.1/servers/%s/action' % server,
                          image_body('race-%s-%d' % (wave[:4], i)))
            rec.start()
            run_clients(clients, work, time.monotonic() + 60)
            rec.stop()
            task_state = pg.query('SELECT task_state FROM instances WHERE '
                                  'uuid = %s', (server,))[0][0]
            results[wave] = (rec, task_state)
    finally:
        os.unlink(hold)
    seconds, _, busy = wait_for_states(pg, 60)
    status, page, _ = glance.call('GET', '/v2/images?limit=100&name=in:%s'
                                  % ','.join('race-race-%d' % i
                                             for i in range(clients)))
    race_images = page['images'] if status == 200 else []
    return results, race_images, busy


def mixed(api, image_id, servers, clients, seconds, weights, max_ops):
    rec = Recorder('mixed')
    ops = [op for op, w in weights for _ in range(w)]
    deadline = time.monotonic() + seconds
    # createImage on distinct servers: client i owns servers i, i+n, ...
    owned = [servers[i::clients] for i in range(clients)]

    def work(i):
        rng = random.Random(i)
        mine = owned[i]
        turn = 0
        for n in range(max_ops):
            if time.monotonic() >= deadline:
                return
            op = rng.choice(ops)
            if op == 'create':
                api.timed(rec, 'POST /servers', 'POST', '/v2.1/servers',
                          create_body('mix-%d-%d' % (i, n), image_id))
            elif op == 'detail':
                api.timed(rec, 'GET /servers/detail', 'GET',
                          '/v2.1/servers/detail')
            elif op == 'show':
                api.timed(rec, 'GET /servers/{id}', 'GET',
                          '/v2.1/servers/%s' % rng.choice(servers))
            elif mine:
                server = mine[turn % len(mine)]
                turn += 1
                api.timed(rec, 'createImage', 'POST',
                          '/v2.1/servers/%s/action' % server,
                          image_body('mix-%d-%d' % (i, n)))
    rec.start()
    run_clients(clients, work, deadline)
    rec.stop(at=deadline)
    rec.drain_seconds = time.monotonic() - deadline
    return rec


# -- printing --------------------------------------------------------------

def print_phase(rec, title):
    print('\n%s (%.1f s)' % (title, rec.wall()))
    print('  %-24s %7s %7s %8s %8s %8s %8s %9s  %s' % (
        'operation', 'req', 'ok', 'ok/s', 'p50 ms', 'p95 ms', 'p99 ms',
        'max ms', 'non-2xx / connection errors'))
    for op in rec.ops():
        s = rec.summary(op)
        problems = ', '.join(['%s x%d' % (k, v) for k, v in
                              s['non_2xx'].items()] +
                             ['%s x%d' % (k, v) for k, v in
                              s['connection_errors'].items()]) or '-'
        print('  %-24s %7d %7d %8.1f %8s %8s %8s %9s  %s' % (
            op, s['requests'], s['ok'], s['per_second'], s['p50_ms'],
            s['p95_ms'], s['p99_ms'], s['max_ms'], problems))


def failures(*recorders):
    non_2xx = collections.Counter()
    conn = collections.Counter()
    for rec in recorders:
        for op in rec.ops():
            s = rec.summary(op)
            for status, n in s['non_2xx'].items():
                non_2xx[status] += n
            for kind, n in s['connection_errors'].items():
                conn[kind] += n
    return non_2xx, conn


def rss_verdict(samples, phase):
    values = [(t, kib) for t, p, kib in samples if p == phase]
    if len(values) < 5:
        return None
    t0 = values[0][0]
    warm = values[len(values) // 5][1]
    end = values[-1][1]
    per_minute = []
    for t, kib in values:
        minute = int((t - t0) // 60)
        if len(per_minute) <= minute:
            per_minute.append(kib)
    growth = (end - warm) / warm if warm else 0.0
    return {'after_warmup_mib': round(warm / 1024, 1),
            'end_mib': round(end / 1024, 1),
            'min_mib': round(min(v for _, v in values) / 1024, 1),
            'max_mib': round(max(v for _, v in values) / 1024, 1),
            'growth_after_warmup': round(growth, 3),
            'per_minute_mib': [round(v / 1024, 1) for v in per_minute]}


def target(label, met, detail):
    print('  %-58s %-8s %s' % (label, 'met' if met else 'NOT met', detail))
    return {'target': label, 'met': bool(met), 'detail': detail}


# -- main -------------------------------------------------------------------

def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='a ~1 minute mixed phase and smaller counts')
    parser.add_argument('--servers', type=int, default=1000)
    parser.add_argument('--clients', type=int, default=50)
    parser.add_argument('--duration', type=float,
                        help='seconds of the mixed phase (600; quick 60)')
    parser.add_argument('--image-count', type=int,
                        help='Glance creates and createImages in the ceiling '
                             'comparison (default: --servers; quick 300)')
    parser.add_argument('--mix', default=DEFAULT_MIX,
                        help='weights of the mixed phase (%(default)s)')
    parser.add_argument('--detail-repeats', type=int, default=20)
    parser.add_argument('--probe-repeats', type=int, default=20,
                        help='sequential requests per operation when '
                             'counting SQL statements')
    parser.add_argument('--rss-interval', type=float, default=2.0)
    parser.add_argument('--uwsgi', action='store_true',
                        help='run the API under uWSGI with %s' %
                        deployment_fixture.SHIPPED_UWSGI_INI)
    parser.add_argument('--schedule-host', choices=('auto', 'yes', 'no'),
                        default='auto', help='set [compute] '
                        'default_schedule_host to the first host (auto: '
                        'only while the API cannot choose among hosts)')
    parser.add_argument('--response-validation',
                        choices=('error', 'warn', 'ignore'),
                        help='[api] response_validation (default: the '
                        'option\'s default, as an operator runs it)')
    parser.add_argument('--json', help='also write the results to this file')
    args = parser.parse_args()
    if args.duration is None:
        args.duration = 60.0 if args.quick else 600.0
    if args.image_count is None:
        args.image_count = 300 if args.quick else args.servers
    args.image_count = min(args.image_count, args.servers - 1)
    if args.quick:
        args.detail_repeats = min(args.detail_repeats, 10)
        args.probe_repeats = min(args.probe_repeats, 10)
    weights = []
    for item in args.mix.split(','):
        op, _, w = item.partition('=')
        if op not in ('create', 'detail', 'show', 'image'):
            parser.error('--mix: create, detail, show, image')
        weights.append((op, int(w)))
    args.weights = weights
    return args


def main():
    args = parse_args()
    stack = stack_fixture.read_stack_env()
    workdir = tempfile.mkdtemp(prefix='nova-snapshot-control-')
    os.chmod(workdir, 0o755)
    hold_dir = os.path.join(workdir, 'hold')
    os.makedirs(hold_dir)
    project, user = uuid.uuid4().hex, 'bench'
    hosts = ['bench-a-%s' % uuid.uuid4().hex[:6],
             'bench-b-%s' % uuid.uuid4().hex[:6]]
    schedule_host = {'yes': hosts[0], 'no': None,
                     'auto': hosts[0] if scheduler_needs_a_host() else None
                     }[args.schedule_host]
    results = {'args': {k: v for k, v in vars(args).items()
                        if k != 'weights'},
               'schedule_host': schedule_host,
               'load_average_start': os.getloadavg()}
    print('setup: %d servers, %d clients, mixed phase %.0f s, API %s, '
          'response validation %s, schedule host %s, load average %.2f '
          '%.2f %.2f' % (
              args.servers, args.clients, args.duration,
              'uWSGI (%s)' % deployment_fixture.SHIPPED_UWSGI_INI
              if args.uwsgi
              else 'nova-snapshot-api',
              args.response_validation or 'default',
              schedule_host or '(scheduler)', *os.getloadavg()))
    glance = glance_http(stack, project, user)
    pg = PrivatePostgres(workdir)
    deployment = None
    sampler = None
    cpu_start = os.times()
    try:
        pg.start()
        deployment = BenchDeployment(
            compute_url=pg.url(COMPUTE_ROLE), uwsgi=args.uwsgi,
            stack_env=stack, hosts=hosts,
            database_url=pg.url(API_ROLE),
            extra_conf=deployment_conf(hold_dir, schedule_host,
                                       args.response_validation))
        deployment.start()
        api = HTTP(deployment.api_port, {
            'X-Auth-Token': '%s:%s' % (user, project),
            'OpenStack-API-Version': 'compute %s' % MICROVERSION,
            'X-OpenStack-Nova-API-Version': MICROVERSION})
        sampler = RSSSampler(deployment.processes['api'].pid,
                             args.rss_interval)
        sampler.start()
        image_id = upload_base_image(glance)

        # 1. pre-create
        sampler.phase = 'precreate'
        rec, servers = precreate(api, image_id, args.servers, args.clients,
                                 max_seconds=1800)
        print_phase(rec, '1. pre-create %d servers, %d clients'
                    % (args.servers, args.clients))
        active_after, states, busy = wait_for_states(pg, 600)
        print('  all POSTs answered after %.1f s; no server building %.1f s '
              'later (%d still busy); vm_states %s' % (
                  rec.wall(), active_after, busy, states))
        by_host = dict(pg.query('SELECT host, count(*) FROM instances '
                                'WHERE deleted = 0 GROUP BY host'))
        print('  servers per host: %s' % by_host)
        results['precreate'] = dict(rec.report(),
                                    active_after_seconds=active_after,
                                    vm_states=states, by_host=by_host)
        precreate_rec = rec
        servers = [row[0] for row in pg.query(
            "SELECT uuid FROM instances WHERE vm_state = 'active' "
            "ORDER BY created_at")]

        # 2. one client, detail; statements per request
        sampler.phase = 'probes'
        cpu = CPUMeter(deployment, stack)
        rec, counts, delta = single_client_detail(api, args.detail_repeats,
                                                  pg)
        detail_cpu = cpu.delta()
        print_phase(rec, '2. GET /servers/detail, one client, %d times'
                    % args.detail_repeats)
        detail_statements = delta[API_ROLE][0] / max(1, args.detail_repeats)
        print('  servers per response: %s; API SQL statements per request: '
              '%.1f; API CPU per request %.0f ms' % (
                  sorted(set(counts)), detail_statements,
                  1000 * detail_cpu['api'] / max(1, args.detail_repeats)))
        results['detail_one_client'] = dict(
            rec.report(), servers_returned=sorted(set(counts)),
            api_cpu_seconds=detail_cpu['api'],
            statements_per_request=detail_statements)
        detail_rec = rec
        probe_servers = servers[-args.probe_repeats:]
        statements = statements_per_request(api, pg, image_id, probe_servers,
                                            args.probe_repeats)
        statements['GET /servers/detail'] = {
            'statements_per_request': round(detail_statements, 1)}
        print('  API SQL statements per request (pg_stat_statements, role '
              '%s, sequential requests):' % API_ROLE)
        for op, facts in statements.items():
            print('    %-24s %s' % (op, facts))
        results['statements_per_request'] = statements
        wait_for_states(pg, 120)

        # 3. the ceiling: Glance, then createImage, same concurrency
        sampler.phase = 'ceiling'
        cpu = CPUMeter(deployment, stack)
        glance_log = GlanceLog(stack)
        glance_rec = glance_ceiling(glance, args.image_count, args.clients,
                                    600, user)
        print_phase(glance_rec, '3a. Glance POST /v2/images, %d clients'
                    % args.clients)
        glance_cpu = cpu.delta()
        print_cpu(glance_cpu, glance_rec.wall())
        glance_requests = glance_log.delta()
        print_glance(glance_requests, args.image_count, 'image create')
        image_servers = servers[:args.image_count]
        counter = StatementCounter(pg)
        cpu = CPUMeter(deployment, stack)
        glance_log = GlanceLog(stack)
        image_rec = create_images(api, image_servers, args.clients, 600)
        print_phase(image_rec, '3b. createImage on %d distinct servers, %d '
                    'clients' % (len(image_servers), args.clients))
        image_cpu = cpu.delta()
        print_cpu(image_cpu, image_rec.wall())
        drained, states, busy = wait_for_states(pg, 600)
        delta = counter.delta()
        image_glance_requests = glance_log.delta()
        print_glance(image_glance_requests, len(image_servers),
                     'createImage (until every snapshot is uploaded)')
        print('  every snapshot uploaded %.1f s after the last 202 (%d still '
              'busy); statements: API %d, computes %d (incl. heartbeats)'
              % (drained, busy, delta[API_ROLE][0], delta[COMPUTE_ROLE][0]))
        results['glance_ceiling'] = dict(glance_rec.report(), cpu=glance_cpu,
                                         glance_log=glance_requests)
        results['create_image'] = dict(image_rec.report(), cpu=image_cpu,
                                       glance_log=image_glance_requests,
                                       drained_seconds=drained,
                                       statements=delta)

        # 4. the one-server race
        sampler.phase = 'race'
        waves, race_images, busy = race(api, servers[-1], args.clients,
                                        hold_dir, pg, glance)
        results['race'] = {}
        for wave, (rec, task_state) in waves.items():
            print_phase(rec, '4. %d concurrent createImage on one server, '
                        '%s (task_state after: %s)'
                        % (args.clients, wave, task_state))
            results['race'][wave] = dict(rec.report(), task_state=task_state)
        print('  race images in Glance: %s' % [
            (i['name'], i['status']) for i in race_images])
        results['race']['images'] = [(i['name'], i['status'])
                                     for i in race_images]

        # 5. the mixed load
        sampler.phase = 'mixed'
        counter = StatementCounter(pg)
        cpu = CPUMeter(deployment, stack)
        mixed_rec = mixed(api, image_id, servers[:-1], args.clients,
                          args.duration, args.weights, max_ops=100000)
        delta = counter.delta()
        mixed_cpu = cpu.delta()
        total_requests = sum(mixed_rec.summary(op)['requests']
                             for op in mixed_rec.ops())
        sampler.phase = 'after'
        print_phase(mixed_rec, '5. mixed load, %d clients, %.0f s, weights %s'
                    % (args.clients, args.duration, args.mix))
        print('  the last answer came %.1f s after the end of the phase'
              % mixed_rec.drain_seconds)
        print_cpu(mixed_cpu, mixed_rec.wall() + mixed_rec.drain_seconds)
        print('  API SQL statements per request over the mix: %.1f '
              '(%d statements, %d requests)' % (
                  delta[API_ROLE][0] / max(1, total_requests),
                  delta[API_ROLE][0], total_requests))
        drained, states, busy = wait_for_states(pg, 600)
        print('  settled %.1f s after the phase; vm_states %s, %d busy'
              % (drained, states, busy))
        results['mixed'] = dict(mixed_rec.report(), statements=delta,
                                drain_seconds=mixed_rec.drain_seconds,
                                cpu=mixed_cpu,
                                settled_vm_states=states, busy_after=busy)
        sampler.stop()
        rss = rss_verdict(sampler.samples, 'mixed')
        all_rss = [kib for _, _, kib in sampler.samples]
        print('\nAPI RSS (VmRSS of its processes, every %.0f s): start %.1f '
              'MiB, max %.1f MiB; mixed phase: %s' % (
                  args.rss_interval, all_rss[0] / 1024,
                  max(all_rss) / 1024, rss))
        results['rss'] = rss
        results['rss_samples'] = [(round(t, 1), p, kib)
                                  for t, p, kib in sampler.samples]
        print('\nmost frequent API statements this run:')
        for calls, text in pg.top_statements(API_ROLE):
            print('  %8d  %s' % (calls, text))

        # targets
        print('\ntargets (issue 6)')
        checks = []
        non_2xx, conn = failures(precreate_rec, image_rec, mixed_rec)
        checks.append(target(
            '0 errors, 0 connection resets at %d clients' % args.clients,
            not non_2xx and not conn,
            'non-2xx %s, connection errors %s (pre-create, createImage, '
            'mixed)' % (dict(non_2xx) or 0, dict(conn) or 0)))
        race_rec = waves['race'][0]
        race_status = race_rec.statuses['createImage']
        held_status = waves['while held'][0].statuses['createImage']
        checks.append(target(
            'exactly one 202 in the one-server race',
            race_status[202] == 1 and
            race_status[409] == args.clients - 1 and
            held_status[409] == args.clients,
            'race %s, while held %s, errors %s' % (
                dict(race_status), dict(held_status),
                dict(race_rec.errors['createImage']) or 0)))
        glance_rate = glance_rec.summary(
            'Glance POST /v2/images')['per_second']
        image_sum = image_rec.summary('createImage')
        checks.append(target(
            'createImage rate >= 0.8 x Glance image-create rate',
            image_sum['per_second'] >= 0.8 * glance_rate,
            '%.1f/s vs %.1f/s (%.2f x)' % (
                image_sum['per_second'], glance_rate,
                image_sum['per_second'] / glance_rate if glance_rate
                else 0)))
        checks.append(target(
            'createImage p99 <= 4 x p50',
            image_sum['p99_ms'] is not None and
            image_sum['p99_ms'] <= 4 * image_sum['p50_ms'],
            'p99 %s ms, p50 %s ms' % (image_sum['p99_ms'],
                                      image_sum['p50_ms'])))
        detail = detail_rec.summary('GET /servers/detail')
        checks.append(target(
            'GET /servers/detail of %d servers <= 300 ms, one client'
            % args.servers,
            detail['p50_ms'] is not None and detail['p50_ms'] <= 300 and
            sorted(set(counts)) == [args.servers],
            'p50 %s ms, max %s ms, %s servers per response, API CPU %.0f '
            'ms per request' % (
                detail['p50_ms'], detail['max_ms'], sorted(set(counts)),
                1000 * detail_cpu['api'] / max(1, args.detail_repeats))))
        checks.append(target(
            'API RSS flat over the mixed phase (<= 5 % after warm-up)',
            rss is not None and rss['growth_after_warmup'] <= 0.05,
            '%s' % ({k: rss[k] for k in ('after_warmup_mib', 'end_mib',
                                         'growth_after_warmup')}
                    if rss else 'too few samples')))
        results['targets'] = checks
    finally:
        if sampler is not None:
            sampler.stop()
        cpu_end = os.times()
        results['benchmark_client_cpu_seconds'] = round(
            (cpu_end.user - cpu_start.user) +
            (cpu_end.system - cpu_start.system), 1)
        results['load_average_end'] = os.getloadavg()
        print('\nbenchmark client CPU %.1f s; load average at the end %.2f '
              '%.2f %.2f' % (results['benchmark_client_cpu_seconds'],
                             *os.getloadavg()))
        if deployment is not None:
            deployment.stop(remove_state=False)
            keep = os.path.join(workdir, 'logs')
            os.makedirs(keep, exist_ok=True)
            for name in os.listdir(deployment.state_dir):
                if name.endswith(('.log', '.out', '.conf', '.ini')):
                    shutil.copy(os.path.join(deployment.state_dir, name),
                                keep)
            shutil.rmtree(deployment.state_dir, ignore_errors=True)
        pg.stop()
        if args.json:
            with open(args.json, 'w') as out:
                json.dump(results, out, indent=2, sort_keys=True,
                          default=str)
        print('service logs in %s; deleting the run\'s Glance images'
              % os.path.join(workdir, 'logs'), flush=True)
        found, failed = delete_project_images(glance)
        print('deleted %d Glance images of the run (failures: %s)'
              % (found, failed or 0))
        shutil.rmtree(os.path.join(workdir, 'pg'), ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
