#!/usr/bin/env python3
"""Fault campaign: break the real stack under createImage, check what is left.

A deployment with two compute hosts (``nova-snapshot-compute`` twice, with
different host names, on this machine), the libvirt driver and the tiny
guest, against the real services of ``tools/stack/start.sh``. Every trial
injects one fault while a createImage is in flight (a compute SIGKILLed at
a named point or at a random time, RabbitMQ or PostgreSQL restarted,
Glance killed or black-holed, cinder-api killed during the cut, libvirtd
restarted, a full snapshots directory, a racing suspend/pause/stop/delete),
lets the system recover and then checks the invariants of issue 7. Issue
8's actions (createBackup, shelve and its offload, unshelve, rebuild, a
hard reboot) have kill points of their own and race kinds; what they may
leave and how a shelved or ERROR server must come back is checked too:

- no task state left set (within ``--grace`` seconds of recovery);
- every guest in its pre-trial power state, thawed, paused only if the
  user paused it;
- no image of a failed request in Glance (queued, saving, killed...);
- no Cinder snapshot that no image records;
- no libvirt domain of this deployment without a live row;
- every instance action event finished;
- every API error a Nova fault body, no 5xx outside an injected outage;
- a finished image boots and holds the tick it captured (on a sample).

Whatever the campaign kills or restarts is private to it: its own
PostgreSQL cluster (initdb/pg_ctl, another port), its own RabbitMQ node,
its own glance-api (uWSGI) on the stack's Glance database and store, and
its own cinder-api on the stack's Cinder database, scheduler and volume
service. Only libvirtd is shared (one per machine): the three libvirtd
kinds restart it.

    tools/fault-campaign.sh --quick
    tools/fault-campaign.sh --kinds kill-random,rabbit-restart --trials 5

Prints one table row per fault kind: trials, violations (which invariant,
which trial), time to recover, 5xx answers. ``--json FILE`` writes every
trial. Exit status 1 when any invariant was violated.
"""

import argparse
import collections
import concurrent.futures
import configparser
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import libvirt  # noqa: E402
import libvirt_qemu  # noqa: E402
import psycopg2  # noqa: E402
import requests  # noqa: E402

from nova_snapshot import conf as ns_conf  # noqa: E402
from nova_snapshot import context as ns_context  # noqa: E402
from nova_snapshot import fault_injection  # noqa: E402
from nova_snapshot.image import glance as ns_glance  # noqa: E402
from nova_snapshot.volume import cinder as ns_cinder  # noqa: E402
from tests.functional.fixtures import client as client_fixture  # noqa: E402
from tests.functional.fixtures import deployment as deployment_fixture  # noqa: E402,E501
from tests.functional.fixtures import guest as guest_fixture  # noqa: E402
from tests.functional.fixtures import stack as stack_fixture  # noqa: E402

PG_BIN = '/usr/lib/postgresql/15/bin'
RABBIT_SERVER = '/usr/lib/rabbitmq/bin/rabbitmq-server'
GUEST_COMMAND_LINE = 'console=ttyS0 no_timer_check'
IMAGE_STATES = ('image_snapshot_pending', 'image_snapshot',
                'image_pending_upload', 'image_uploading')
# The snapshot paths and the compute options that select each.
PATHS = {
    'live-stream': {'live_snapshot': 'true',
                    'live_snapshot_method': 'stream'},
    'live-push': {'live_snapshot': 'true', 'live_snapshot_method': 'push'},
    'suspend': {'live_snapshot': 'false'},
    'volume-backed': {},
}
IMAGE_PATHS = ('live-stream', 'live-push', 'suspend')
# Kill points are named <prefix>.<what>; the prefix says which paths reach
# them (image.* is shared by the three image paths).
POINT_PREFIX_PATHS = {
    'live_stream': ('live-stream',),
    'live_push': ('live-push',),
    'suspend': ('suspend',),
    'volume': ('volume-backed',),
    'image': IMAGE_PATHS,
    # issue 8's actions: the image-backed server (on the live-stream
    # compute: its options do not matter to them) and the volume-backed.
    'backup': ('live-stream',),
    'shelve': ('live-stream', 'volume-backed'),
    'unshelve': ('live-stream', 'volume-backed'),
    'rebuild': ('live-stream', 'volume-backed'),
    'reboot': ('live-stream', 'volume-backed'),
}
# The action a kill point's trial sends, by the point's prefix (the rest
# are createImage's).
POINT_PREFIX_ACTION = {
    'backup': 'createBackup',
    'shelve': 'shelve',
    'unshelve': 'unshelve',
    'rebuild': 'rebuild',
    'reboot': 'reboot',
}
# Points of actions the campaign has no trial for yet: a trial would send
# a createImage that never reaches them. Soft delete and restore are killed
# at these points by tests/functional/test_soft_delete_e2e.py instead.
NO_TRIAL_PREFIXES = ('soft_delete.', 'restore.')
# Points only an image-backed server reaches: a volume-backed shelve is
# its offload (no image), and its unshelve deletes no image.
IMAGE_ONLY_POINTS = ('shelve.powered_off', 'shelve.image_uploaded',
                     'shelve.shelved', 'unshelve.image_deleted')
# Points of the 2.93 re-image of a volume-backed server's root volume:
# their trials rebuild at 2.93, on the volume-backed server only.
REIMAGE_POINT_PREFIX = 'rebuild.reimage_'
# What a server may be after a trial of the action whose compute was
# killed (besides what it was): a killed shelve is undone or finished, a
# killed unshelve leaves it offloaded or finished, a killed rebuild is
# Nova's ERROR (the old disk may be gone; the user rebuilds again).
ACTION_OUTCOMES = {
    'shelve': ('ACTIVE', 'SHELVED', 'SHELVED_OFFLOADED'),
    'unshelve': ('ACTIVE', 'SHELVED_OFFLOADED'),
    'rebuild': ('ACTIVE', 'ERROR'),
}
# The trial counts for a full run.
FULL_COUNTS = collections.OrderedDict([
    ('kill-point', 5),          # per named point and path
    ('kill-random', 100),
    ('rabbit-restart', 30),
    ('pg-restart', 30),
    ('pg-terminate', 30),
    ('glance-kill', 30),
    ('glance-blackhole', 10),
    ('cinder-api-kill', 20),
    ('libvirtd-backup', 10),
    ('libvirtd-managedsave', 10),
    ('libvirtd-freeze', 10),
    ('snapshots-full', 5),
    ('race-suspend', 50),
    ('race-pause', 50),
    ('race-stop', 50),
    ('race-delete', 50),
    # issue 8's actions racing (createImage vs shelve and vs a hard
    # reboot, createBackup vs stop)
    ('race-shelve', 20),
    ('race-reboot', 20),
    ('race-backup', 20),
])
ALL_KINDS = tuple(FULL_COUNTS)
LIBVIRTD_KINDS = ('libvirtd-backup', 'libvirtd-managedsave', 'libvirtd-freeze')


# libvirt prints every error of the campaign's own connection (those of a
# libvirtd restart included) to stderr by default; the trials handle them.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


def log(msg, *args):
    sys.stdout.write('[%s] %s\n' % (time.strftime('%H:%M:%S'),
                                    msg % args if args else msg))
    sys.stdout.flush()


def wait_until(predicate, timeout, interval=0.2):
    """predicate()'s first true value, or None after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


def tcp_open(port):
    import socket
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=1):
            return True
    except OSError:
        return False


def kill_group(proc, sig=signal.SIGKILL):
    """Signal the session a Popen(start_new_session=True) child leads."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def find_points(root=os.path.join(REPO, 'nova_snapshot')):
    """{point name: file} of every fault_injection.point('...') call."""
    found = {}
    pattern = re.compile(r"fault_injection\.point\(\s*['\"]([^'\"]+)['\"]")
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(dirpath, name)
                with open(path) as source:
                    for match in pattern.finditer(source.read()):
                        found[match.group(1)] = os.path.relpath(path, REPO)
    return found


def point_paths(point):
    paths = POINT_PREFIX_PATHS.get(point.split('.', 1)[0], IMAGE_PATHS)
    if point in IMAGE_ONLY_POINTS:
        paths = tuple(p for p in paths if p != 'volume-backed')
    if point.startswith(REIMAGE_POINT_PREFIX):
        paths = ('volume-backed',)
    return paths


def backup_type(trial):
    """The backup_type of a trial's backups (its own, for its rotation)."""
    return trial.image_name


def point_action(point):
    """The server action a trial of ``point`` sends."""
    return POINT_PREFIX_ACTION.get(point.split('.', 1)[0], 'createImage')


# -- private services ----------------------------------------------------

class PrivatePostgres:
    """A PostgreSQL cluster of the campaign's own (user postgres)."""

    def __init__(self, base, port):
        self.base, self.port = base, port
        self.data = os.path.join(base, 'pgdata')
        self.dbname = 'nova_campaign'
        self.url = 'postgresql+psycopg2://postgres@127.0.0.1:%d/%s' % (
            port, self.dbname)

    def _as_postgres(self, argv):
        return subprocess.run(['setpriv', '--reuid=postgres',
                               '--regid=postgres', '--init-groups'] + argv,
                              capture_output=True, text=True, check=True)

    def start(self):
        if not os.path.isdir(self.data):
            os.makedirs(self.base, exist_ok=True)
            shutil.chown(self.base, 'postgres', 'postgres')
            self._as_postgres([PG_BIN + '/initdb', '-D', self.data, '-A',
                               'trust', '-U', 'postgres'])
        self._ctl('start', '-w', '-l', os.path.join(self.base, 'pg.log'),
                  '-o', '-p %d -k %s -c listen_addresses=127.0.0.1 '
                        '-c fsync=off' % (self.port, self.base))
        conn = self.connect('postgres')
        with conn.cursor() as cur:
            cur.execute('select 1 from pg_database where datname = %s',
                        (self.dbname,))
            if not cur.fetchone():
                cur.execute('CREATE DATABASE %s' % self.dbname)
        conn.close()

    def _ctl(self, *args):
        return self._as_postgres([PG_BIN + '/pg_ctl', '-D', self.data]
                                 + list(args))

    def connect(self, dbname=None):
        conn = psycopg2.connect(host='127.0.0.1', port=self.port,
                                user='postgres',
                                dbname=dbname or self.dbname,
                                connect_timeout=5)
        conn.autocommit = True
        return conn

    def restart(self):
        self._ctl('restart', '-w', '-m', 'fast', '-l',
                  os.path.join(self.base, 'pg.log'))

    def terminate_backends(self):
        conn = self.connect('postgres')
        with conn.cursor() as cur:
            cur.execute('SELECT count(pg_terminate_backend(pid)) FROM '
                        'pg_stat_activity WHERE datname = %s AND '
                        'pid <> pg_backend_pid()', (self.dbname,))
            count = cur.fetchone()[0]
        conn.close()
        return count

    def stop(self):
        try:
            self._ctl('stop', '-m', 'immediate')
        except subprocess.CalledProcessError:
            pass


class PrivateRabbit:
    """A RabbitMQ node of the campaign's own, on other ports."""

    def __init__(self, base, port):
        self.base, self.port = base, port
        self.node = 'campaign%d@localhost' % port
        self.url = 'rabbit://guest:guest@127.0.0.1:%d/' % port
        self.proc = None

    def start(self):
        os.makedirs(self.base, exist_ok=True)
        with open(os.path.join(self.base, 'rabbitmq.conf'), 'w') as conf:
            conf.write('listeners.tcp.local = 127.0.0.1:%d\n'
                       'loopback_users = none\n' % self.port)
        with open(os.path.join(self.base, 'enabled_plugins'), 'w') as plug:
            plug.write('[].\n')
        subprocess.run(['chown', '-R', 'rabbitmq', self.base], check=True)
        env = dict(
            HOME='/var/lib/rabbitmq', PATH=os.environ.get('PATH', ''),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_DIST_PORT=str(self.port + 20000),
            RABBITMQ_CONFIG_FILE=os.path.join(self.base, 'rabbitmq.conf'),
            RABBITMQ_CONF_ENV_FILE=os.path.join(self.base, 'env.conf'),
            RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(self.base,
                                                       'enabled_plugins'),
            RABBITMQ_MNESIA_BASE=os.path.join(self.base, 'mnesia'),
            RABBITMQ_LOG_BASE=os.path.join(self.base, 'log'),
            RABBITMQ_PID_FILE=os.path.join(self.base, 'pid'),
            ERL_EPMD_ADDRESS='127.0.0.1')
        out = open(os.path.join(self.base, 'out'), 'ab')
        self.proc = subprocess.Popen(
            ['setpriv', '--reuid=rabbitmq', '--regid=rabbitmq',
             '--init-groups', RABBIT_SERVER], env=env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)
        if not wait_until(lambda: tcp_open(self.port), 60):
            raise RuntimeError('private RabbitMQ did not start; see %s'
                               % self.base)

    def stop(self):
        if self.proc is not None:
            kill_group(self.proc, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                kill_group(self.proc)
                self.proc.wait()
            self.proc = None
        wait_until(lambda: not tcp_open(self.port), 10)

    def restart(self):
        self.stop()
        self.start()


class PrivateGlance:
    """A glance-api (uWSGI) of the campaign's own: the stack's Glance
    configuration, database and image store, another port."""

    def __init__(self, stack, base, port):
        self.stack, self.base, self.port = stack, base, port
        self.url = 'http://127.0.0.1:%d' % port
        self.proc = None
        self.stopped = False

    def _configure(self):
        src = os.path.join(self.stack['STACK_DIR'], 'glance', 'etc')
        etc = os.path.join(self.base, 'etc')
        if os.path.isdir(etc):
            shutil.rmtree(etc)
        shutil.copytree(src, etc)
        conf = configparser.ConfigParser(interpolation=None)
        conf.read(os.path.join(etc, 'glance-api.conf'))
        conf['DEFAULT']['bind_port'] = str(self.port)
        conf['DEFAULT']['log_file'] = os.path.join(self.base, 'glance.log')
        conf['DEFAULT']['worker_self_reference_url'] = self.url
        with open(os.path.join(etc, 'glance-api.conf'), 'w') as out:
            conf.write(out)
        ini = os.path.join(etc, 'glance-uwsgi.ini')
        lines = []
        with open(ini) as handle:
            for line in handle:
                key = line.partition('=')[0].strip()
                if key in ('http-socket', 'pidfile', 'logto', 'env',
                           'pythonpath'):
                    continue
                lines.append(line)
        lines += ['http-socket = 127.0.0.1:%d\n' % self.port,
                  'env = OS_GLANCE_CONFIG_DIR=%s\n' % etc,
                  'pythonpath = %s\n' % etc,
                  'logto = %s\n' % os.path.join(self.base, 'uwsgi.log')]
        with open(ini, 'w') as out:
            out.writelines(lines)
        return ini

    def start(self):
        os.makedirs(self.base, exist_ok=True)
        ini = self._configure()
        uwsgi = os.path.join(self.stack['STACK_DIR'], 'glance-venv', 'bin',
                             'uwsgi')
        out = open(os.path.join(self.base, 'out'), 'ab')
        self.proc = subprocess.Popen([uwsgi, '--ini', ini], stdout=out,
                                     stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.stopped = False
        if not wait_until(self.healthy, 60):
            raise RuntimeError('private Glance did not start; see %s'
                               % self.base)

    def healthy(self):
        try:
            return requests.get(self.url + '/healthcheck',
                                timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def kill(self):
        if self.stopped:
            self.resume()
        kill_group(self.proc)
        self.proc.wait()

    def blackhole(self):
        """The listening socket stays open and the kernel completes every
        connection; nobody reads or answers."""
        kill_group(self.proc, signal.SIGSTOP)
        self.stopped = True

    def resume(self):
        kill_group(self.proc, signal.SIGCONT)
        self.stopped = False

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.kill()


class PrivateCinderApi:
    """A cinder-api of the campaign's own on the stack's Cinder (database,
    broker vhost, scheduler and volume service)."""

    def __init__(self, stack, base, port):
        self.stack, self.base, self.port = stack, base, port
        self.url = 'http://127.0.0.1:%d/v3' % port
        self.proc = None

    def start(self):
        os.makedirs(os.path.join(self.base, 'log'), exist_ok=True)
        src = os.path.join(self.stack['STACK_DIR'], 'cinder', 'etc',
                           'cinder.conf')
        conf = configparser.ConfigParser(interpolation=None, strict=False)
        conf.read(src)
        conf['DEFAULT']['osapi_volume_listen_port'] = str(self.port)
        conf['DEFAULT']['osapi_volume_workers'] = '1'
        conf['DEFAULT']['log_dir'] = os.path.join(self.base, 'log')
        path = os.path.join(self.base, 'cinder.conf')
        with open(path, 'w') as out:
            conf.write(out)
        binary = os.path.join(self.stack['STACK_DIR'], 'cinder-venv', 'bin',
                              'cinder-api')
        out = open(os.path.join(self.base, 'out'), 'ab')
        self.proc = subprocess.Popen([binary, '--config-file', path],
                                     stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        if not wait_until(self.healthy, 120, 0.5):
            raise RuntimeError('private cinder-api did not start; see %s'
                               % self.base)

    def healthy(self):
        try:
            return requests.get(self.url.rsplit('/v3', 1)[0] + '/',
                                timeout=2).status_code < 500
        except requests.RequestException:
            return False

    def kill(self):
        kill_group(self.proc)
        self.proc.wait()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.kill()


def restart_libvirtd(uri):
    """Restart the machine's libvirtd (SIGTERM by its pid, start again);
    QEMU processes keep running, as on a real host."""
    pidfile = '/run/libvirtd.pid'
    with open(pidfile) as handle:
        pid = int(handle.read().split()[0])
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not os.path.exists('/proc/%d' % pid), 30, 0.1)
    subprocess.run(['libvirtd', '-d'], check=True)
    if not wait_until(lambda: subprocess.run(
            ['virsh', '-c', uri, 'version'], capture_output=True,
            timeout=5).returncode == 0, 60):
        raise RuntimeError('libvirtd did not come back')


# -- the API client that records every answer ------------------------------

class RecordingClient(client_fixture.ComputeClient):
    """ComputeClient that keeps (time, method, path, status, fault_ok) of
    every answer, for the 5xx and fault-body invariants."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.answers = []
        self.lock = threading.Lock()

    def request(self, method, path, microversion=None, **kwargs):
        kwargs.setdefault('timeout', 300)
        started = time.monotonic()
        try:
            resp = self._send(method, path, microversion, **kwargs)
        except requests.RequestException as exc:
            with self.lock:
                self.answers.append((started, time.monotonic(), method,
                                     path, None, 'no answer: %s' % exc))
            raise
        with self.lock:
            self.answers.append((started, time.monotonic(), method, path,
                                 resp.status_code, fault_problem(resp)))
        return resp

    def _send(self, method, path, microversion=None, timeout=300, **kwargs):
        version = microversion or self.microversion
        headers = kwargs.pop('headers', {})
        headers.update({'OpenStack-API-Version': 'compute %s' % version,
                        'X-OpenStack-Nova-API-Version': version})
        return self.session.request(method, self.endpoint + path,
                                    headers=headers, timeout=timeout,
                                    **kwargs)


def fault_problem(resp):
    """Why an error answer is not a Nova fault body, or None."""
    if resp.status_code < 400:
        return None
    try:
        body = resp.json()
    except ValueError:
        return 'not JSON: %r' % resp.text[:120]
    if not (isinstance(body, dict) and len(body) == 1):
        return 'not one fault object: %r' % resp.text[:120]
    fault = next(iter(body.values()))
    if not (isinstance(fault, dict) and 'message' in fault
            and fault.get('code') == resp.status_code):
        return 'fault without message/code: %r' % resp.text[:120]
    return None


# -- servers ---------------------------------------------------------------

class Server:
    """A server the trials use; ``status`` is what the user last asked
    for (ACTIVE, PAUSED, SHUTOFF, SUSPENDED)."""

    def __init__(self, server_id, host, volume_backed, role):
        self.id, self.host = server_id, host
        self.volume_backed, self.role = volume_backed, role
        self.status = 'ACTIVE'
        # Other statuses the last trial's outcome may leave (see
        # ACTION_OUTCOMES); the check settles on the one it finds.
        self.accept = ()

    def __repr__(self):
        return '%s(%s)' % (self.role, self.id[:8])


EXPECTED_POWER = {'ACTIVE': libvirt.VIR_DOMAIN_RUNNING,
                  'PAUSED': libvirt.VIR_DOMAIN_PAUSED,
                  'SHUTOFF': libvirt.VIR_DOMAIN_SHUTOFF,
                  'SUSPENDED': libvirt.VIR_DOMAIN_SHUTOFF,
                  'SHELVED': libvirt.VIR_DOMAIN_SHUTOFF,
                  # no domain at all (checked apart)
                  'SHELVED_OFFLOADED': None,
                  # a killed rebuild's: the guest may or may not be there
                  'ERROR': None}


class Trial:
    def __init__(self, kind, number, path=None, point=None):
        self.kind, self.number = kind, number
        self.path, self.point = path, point
        self.id = '%s#%d' % (kind, number)
        self.action = point_action(point) if point else 'createImage'
        # Images the trial made besides its own (e.g. earlier backups).
        self.extra_images = []
        self.image_name = 'camp-%s-%d-%s' % (kind, number,
                                             uuid.uuid4().hex[:6])
        self.outages = []
        self.violations = []
        self.notes = []
        self.recover_s = None
        self.count_5xx = 0
        self.started = time.monotonic()
        self.boot_checked = False
        self.servers = []
        # True: the fault hit a running request (None: not measured).
        self.in_flight = None
        self.create_answers = []

    def outage(self, start, end=None):
        self.outages.append([start, end])
        return self.outages[-1]

    def violate(self, invariant, detail):
        self.violations.append((invariant, detail))

    def as_dict(self):
        return {'id': self.id, 'kind': self.kind, 'path': self.path,
                'point': self.point, 'action': self.action, 'violations': [
                    {'invariant': i, 'detail': d} for i, d in self.violations],
                'recover_s': self.recover_s, '5xx': self.count_5xx,
                'notes': self.notes, 'boot_checked': self.boot_checked,
                'in_flight': self.in_flight}


# -- the campaign ----------------------------------------------------------

class Campaign:

    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.stack = stack_fixture.read_stack_env()
        self.uri = self.stack.get('LIBVIRT_URI', 'qemu:///system')
        self.base = tempfile.mkdtemp(prefix='nova-snapshot-campaign-')
        # PostgreSQL and RabbitMQ run as their own users, under this.
        os.chmod(self.base, 0o755)
        ports = [stack_fixture.free_port() for _ in range(4)]
        self.pg = PrivatePostgres(os.path.join(self.base, 'pg'), ports[0])
        # RabbitMQ's distribution port is node port + 20000: keep both low.
        self.rabbit = PrivateRabbit(os.path.join(self.base, 'rabbit'),
                                    self.rng.randrange(5700, 5999))
        self.glance = PrivateGlance(self.stack,
                                    os.path.join(self.base, 'glance'),
                                    ports[1])
        self.cinder = PrivateCinderApi(self.stack,
                                       os.path.join(self.base, 'cinder'),
                                       ports[2])
        self.hosts = ['camp-%s-a' % uuid.uuid4().hex[:6],
                      'camp-%s-b' % uuid.uuid4().hex[:6]]
        self.victim, self.bystander = self.hosts
        self.project = uuid.uuid4().hex
        self.deployment = None
        self.compute_state = {}
        self.servers = {}
        self.trials = []
        self.libvirt = None
        self.snap_mount = None
        self.durations = {}

    # -- set-up ----------------------------------------------------------
    def start(self):
        t0 = time.monotonic()
        self.pg.start()
        self.rabbit.start()
        self.glance.start()
        self.cinder.start()
        log('private PostgreSQL :%d, RabbitMQ :%d, Glance :%d, cinder-api '
            ':%d up in %.1fs', self.pg.port, self.rabbit.port,
            self.glance.port, self.cinder.port, time.monotonic() - t0)
        glance = {'api_endpoint': self.glance.url,
                  'auth_mode': 'identity_headers'}
        if self.args.glance_timeout:
            glance['timeout'] = self.args.glance_timeout
        extra = {
            'glance': glance,
            'cinder': {'api_endpoint': self.cinder.url,
                       'auth_mode': 'noauth'},
            'reconciler': {
                'interval': self.args.reconciler_interval,
                'startup_delay': min(2, self.args.reconciler_interval),
                'task_state_grace': self.args.task_state_grace,
                'orphan_grace': self.args.orphan_grace},
            'oslo_messaging_notifications': {'driver': 'noop'},
        }
        self.deployment = deployment_fixture.Deployment(
            stack_env=self.stack, hosts=self.hosts,
            database_url=self.pg.url, transport_url=self.rabbit.url,
            extra_conf=extra)
        self.deployment.start()
        for host in self.hosts:
            self.compute_state[host] = ('live-stream', None, None)
        self.client = RecordingClient(self.deployment.endpoint, 'admin',
                                      self.project)
        self.ctx = ns_context.RequestContext(
            user_id='admin', project_id=self.project,
            roles=['admin', 'member', 'reader'])
        conf = ns_conf.new_conf([])
        conf.set_override('api_endpoint', self.stack['GLANCE_URL'],
                          group='glance')
        conf.set_override('auth_mode', 'identity_headers', group='glance')
        conf.set_override('api_endpoint', self.stack['CINDER_URL'],
                          group='cinder')
        conf.set_override('auth_mode', 'noauth', group='cinder')
        # The checks read through the stack's own Glance and cinder-api:
        # the campaign's may be down or black-holed.
        self.images = ns_glance.GlanceAPI(conf)
        self.volumes = ns_cinder.CinderAPI(conf)
        self.libvirt = libvirt.open(self.uri)
        guest_dir = self.stack['GUEST_DIR']
        self.base_image = guest_fixture.upload_tiny_guest(
            self.images, self.ctx, guest_dir, name='camp-guest',
            command_line=GUEST_COMMAND_LINE)
        image = self.images.create(self.ctx, dict(
            name='camp-ext4', disk_format='qcow2', container_format='bare',
            visibility='private', kernel_id=self.base_image['kernel_id'],
            ramdisk_id=self.base_image['ramdisk_id'],
            os_command_line=GUEST_COMMAND_LINE, hw_qemu_guest_agent='yes'))
        path = os.path.join(guest_dir, 'disk-ext4.qcow2')
        with open(path, 'rb') as data:
            self.images.upload(self.ctx, image['id'], data,
                               size=os.path.getsize(path))
        self.vol_image = self.images.get(self.ctx, image['id'])
        self.base_images = {self.base_image['id'],
                            self.base_image['kernel_id'],
                            self.base_image['ramdisk_id'],
                            self.vol_image['id']}
        log('deployment up (%s) in %.1fs; state in %s', ', '.join(
            self.hosts), time.monotonic() - t0, self.base)

    def stop(self):
        try:
            self._delete_everything()
        except Exception as exc:
            log('clean-up: %s', exc)
        if self.deployment is not None:
            self.deployment.stop(remove_state=not self.args.keep)
        if self.snap_mount:
            subprocess.run(['umount', '-l', self.snap_mount],
                           capture_output=True)
        for service in (self.cinder, self.glance, self.rabbit, self.pg):
            try:
                service.stop()
            except Exception as exc:
                log('stopping %s: %s', type(service).__name__, exc)
        if self.libvirt is not None:
            try:
                self.libvirt.close()
            except libvirt.libvirtError:
                pass
        if not self.args.keep:
            shutil.rmtree(self.base, ignore_errors=True)

    def _delete_everything(self):
        for server in list(self.servers.values()):
            self.client.delete_server(server.id)
        for server in list(self.servers.values()):
            try:
                self.client.wait_for_server_gone(server.id, timeout=60)
            except Exception:
                pass
        for image in self.images.list(self.ctx):
            if image.get('owner') != self.project:
                continue
            for snap in self._image_snapshot_ids(image):
                try:
                    self.volumes.delete_snapshot(self.ctx, snap)
                except Exception:
                    pass
            try:
                self.images.delete(self.ctx, image['id'])
            except Exception:
                pass
        client = self.volumes._client(self.ctx)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            left = list(client.volume_snapshots.list())
            left += list(client.volumes.list())
            if not left:
                break
            for item in left:
                if item.status in ('available', 'error'):
                    try:
                        item.delete()
                    except Exception:
                        pass
            time.sleep(1)

    # -- computes --------------------------------------------------------
    def ensure_compute(self, host, path='live-stream', point=None,
                       snapshots_dir=None):
        """The compute of ``host`` runs with the options of ``path``, the
        armed kill point ``point`` and ``snapshots_dir`` (restarted if
        not, or if it died)."""
        want = (path, point, snapshots_dir)
        proc = self.deployment.processes.get('compute-%s' % host)
        alive = proc is not None and proc.poll() is None
        if alive and self.compute_state.get(host) == want:
            return
        if alive:
            self.deployment.stop_compute(host, sig=signal.SIGTERM)
        libvirt_opts = dict(PATHS.get(path, {}))
        if snapshots_dir:
            libvirt_opts['snapshots_directory'] = snapshots_dir
        if point:
            os.environ[fault_injection.ENV_VAR] = point
        try:
            self.deployment.start_compute(
                host, extra_conf={'libvirt': libvirt_opts})
        finally:
            os.environ.pop(fault_injection.ENV_VAR, None)
        self.deployment.wait_for_compute(host, timeout=90)
        # The service reports before its start-up repairs have run; a
        # createImage sent in between is taken for an interrupted one and
        # cancelled (seen in the campaign: 'point not reached').
        time.sleep(self.args.startup_settle)
        self.compute_state[host] = want

    def compute_alive(self, host):
        proc = self.deployment.processes.get('compute-%s' % host)
        return proc is not None and proc.poll() is None

    def kill_compute(self, host):
        proc = self.deployment.processes.get('compute-%s' % host)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    # -- servers ---------------------------------------------------------
    def boot(self, role, host, volume_backed=False, image_id=None):
        body = {'name': 'camp-%s' % role, 'flavorRef': '2',
                'networks': 'none',
                'availability_zone': 'nova:%s' % host}
        if volume_backed:
            body['imageRef'] = ''
            body['block_device_mapping_v2'] = [
                {'source_type': 'image', 'destination_type': 'volume',
                 'uuid': image_id or self.vol_image['id'], 'boot_index': 0,
                 'volume_size': 1, 'delete_on_termination': True},
                {'source_type': 'blank', 'destination_type': 'volume',
                 'volume_size': 1, 'boot_index': -1,
                 'delete_on_termination': True}]
        else:
            body['imageRef'] = image_id or self.base_image['id']
        resp = self.client.request('POST', '/servers',
                                   json={'server': body})
        if resp.status_code != 202:
            raise RuntimeError('boot %s: %s %s' % (role, resp.status_code,
                                                   resp.text[:300]))
        server = Server(resp.json()['server']['id'], host, volume_backed,
                        role)
        self.client.wait_for_server(server.id, timeout=240)
        self.wait_console(server.id, r'nova-snapshot-guest: tick \d+', 120)
        if volume_backed and image_id is None:
            self.wait_console(server.id, 'qemu-ga started', 120)
            guest_fixture.wait_for_guest_agent(self.domain(server.id), 60)
        return server

    def server(self, role):
        """The server of ``role``, booted (again) when missing."""
        if role not in self.servers:
            host = self.bystander if role == 'bystander' else self.victim
            self.servers[role] = self.boot(role, host,
                                           volume_backed=role == 'volume')
        return self.servers[role]

    def drop_server(self, role):
        server = self.servers.pop(role, None)
        if server is None:
            return
        self.client.delete_server(server.id)
        try:
            self.client.wait_for_server_gone(server.id, timeout=90)
        except Exception as exc:
            log('%s not gone: %s', server, exc)

    def wait_console(self, server_id, pattern, timeout):
        def seen():
            resp = self.client.action(server_id, {
                'os-getConsoleOutput': {'length': None}})
            if resp.status_code == 200:
                return re.search(pattern, resp.json()['output'])
            return None
        match = wait_until(seen, timeout, 0.5)
        if not match:
            raise RuntimeError('console of %s never showed %r'
                               % (server_id, pattern))
        return match

    def domain(self, server_id):
        try:
            return self.libvirt.lookupByName('instance-%s' % server_id)
        except libvirt.libvirtError:
            # libvirtd was restarted: a new connection.
            try:
                self.libvirt.close()
            except libvirt.libvirtError:
                pass
            self.libvirt = libvirt.open(self.uri)
            return self.libvirt.lookupByName('instance-%s' % server_id)

    def freeze_status(self, server_id):
        return json.loads(libvirt_qemu.qemuAgentCommand(
            self.domain(server_id), '{"execute": "guest-fsfreeze-status"}',
            5, 0))['return']

    def task_state(self, server_id):
        conn = self.pg.connect()
        try:
            with conn.cursor() as cur:
                cur.execute('select task_state from instances where uuid = %s',
                            (server_id,))
                row = cur.fetchone()
            return row[0] if row else None
        finally:
            conn.close()

    def wait_task(self, server_id, states, timeout=60, interval=0.05):
        return wait_until(lambda: self.task_state(server_id) in states,
                          timeout, interval)

    # -- createImage -----------------------------------------------------
    def create_image(self, trial, server):
        """createImage; its answer is kept on the trial (None: none)."""
        return self.send_action(trial, server, 'createImage')

    def action_body(self, trial, server, action):
        """(body, microversion) of the trial's ``action`` on ``server``."""
        if action == 'createImage':
            return {'createImage': {'name': trial.image_name}}, None
        if action == 'createBackup':
            # A type of the trial's own: the rotation counts only its
            # backups (rotation 1: the earlier ones of the trial go).
            return {'createBackup': {
                'name': trial.image_name, 'rotation': 1,
                'backup_type': backup_type(trial)}}, None
        if action == 'shelve':
            return {'shelve': None}, None
        if action == 'unshelve':
            # Back on the server's own host (2.91, admin): the kill points
            # are armed there.
            return {'unshelve': {'host': server.host}}, '2.91'
        if action == 'rebuild':
            # A volume-backed server only with its root volume's image;
            # from 2.93 that re-images the root volume (Cinder's
            # os-reimage), which the re-image points need.
            image = self.vol_image if server.volume_backed \
                else self.base_image
            version = '2.93' if (trial.point or '').startswith(
                REIMAGE_POINT_PREFIX) else None
            return {'rebuild': {'imageRef': image['id']}}, version
        if action == 'reboot':
            # HARD: the tiny guest ignores ACPI, so a soft reboot waits
            # for [libvirt] wait_soft_reboot_seconds and then does this.
            return {'reboot': {'type': 'HARD'}}, None
        raise ValueError('unknown action %s' % action)

    def send_action(self, trial, server, action):
        """The trial's ``action``; its answer is kept on the trial."""
        body, version = self.action_body(trial, server, action)
        resp = None
        try:
            resp = self.client.action(server.id, body, microversion=version)
            return resp
        finally:
            trial.create_answers.append(
                resp.status_code if resp is not None else None)

    def create_image_async(self, trial, server, action='createImage'):
        pool = concurrent.futures.ThreadPoolExecutor(1)
        future = pool.submit(self.send_action, trial, server, action)
        pool.shutdown(wait=False)
        return future

    def settle(self, future, timeout=300):
        """The createImage answer (None if it never came)."""
        try:
            resp = future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            return None
        except requests.RequestException as exc:
            return exc
        return resp

    # -- trial kinds -----------------------------------------------------
    def _path_server(self, path):
        return self.server('volume' if path == 'volume-backed' else 'image')

    def trial_kill_point(self, trial):
        server = self._path_server(trial.path)
        # What the action needs first, on an unarmed compute (a backup
        # made now would reach backup.* itself).
        prepare = {'createBackup': self._earlier_backups,
                   'unshelve': self._shelved}.get(trial.action)
        if prepare:
            self.ensure_compute(self.victim, trial.path)
            prepare(trial, server)
        self.ensure_compute(self.victim, trial.path, trial.point)
        outage = trial.outage(time.monotonic())
        server.accept = tuple(s for s in ACTION_OUTCOMES.get(trial.action,
                                                             ())
                              if s != server.status)
        future = self.create_image_async(trial, server, trial.action)
        died = wait_until(lambda: not self.compute_alive(self.victim),
                          self.args.point_timeout, 0.1)
        trial.in_flight = bool(died)
        if not died:
            trial.notes.append('point %s not reached' % trial.point)
        self.settle(future, 120 if died else 300)
        self.ensure_compute(self.victim, trial.path)
        outage[1] = time.monotonic()

    def _earlier_backups(self, trial, server, count=2):
        """Two backups of the trial's type, so that its rotation (1) has
        two to delete: backup.mid_rotation falls between them."""
        for n in range(count):
            resp = self.client.action(server.id, {'createBackup': {
                'name': '%s-earlier%d' % (trial.image_name, n),
                'backup_type': backup_type(trial), 'rotation': 99}})
            if resp.status_code != 202:
                raise RuntimeError('earlier backup: %s %s' % (
                    resp.status_code, resp.text[:200]))
            image_id = resp.json()['image_id']
            trial.extra_images.append(image_id)
            if not wait_until(lambda: self.task_state(server.id) is None and
                              self.images.get(self.ctx, image_id)['status']
                              == 'active', 120, 0.5):
                raise RuntimeError('earlier backup %s never finished'
                                   % image_id)
            # Glance orders by created_at (seconds on some backends).
            time.sleep(1.1)

    def _shelved(self, trial, server):
        """The server shelved and offloaded, as an unshelve needs."""
        resp = self.client.action(server.id, {'shelve': None})
        if resp.status_code != 202:
            raise RuntimeError('shelve before unshelve: %s %s' % (
                resp.status_code, resp.text[:200]))
        self.client.wait_for_server(server.id, 'SHELVED_OFFLOADED',
                                    timeout=180)
        server.status = 'SHELVED_OFFLOADED'

    def duration(self, path):
        """How long an undisturbed createImage of ``path`` takes here
        (measured once, on the path's server): random faults fall within
        it. The tiny guest's snapshot takes well under a second on the
        live paths, so a fixed window would mostly miss."""
        if path not in self.durations:
            server = self._path_server(path)
            self.ensure_compute(self.victim, path)
            trial = Trial('calibrate', len(self.durations) + 1, path)
            started = time.monotonic()
            resp = self.settle(self.create_image_async(trial, server))
            if server.volume_backed:
                ended = time.monotonic()
            else:
                wait_until(lambda: self.task_state(server.id) is None, 120,
                           0.02)
                ended = time.monotonic()
            self.durations[path] = max(ended - started, 0.2)
            log('calibration: an undisturbed createImage (%s) took %.2fs '
                '(answer %s)', path, self.durations[path],
                getattr(resp, 'status_code', resp))
            for image in self._trial_images(trial):
                for snap in self._image_snapshot_ids(image):
                    self.volumes.delete_snapshot(self.ctx, snap)
                self.images.delete(self.ctx, image['id'])
        return self.durations[path]

    def trial_kill_random(self, trial):
        server = self._path_server(trial.path)
        self.ensure_compute(self.victim, trial.path)
        window = self.args.random_kill_window or self.duration(trial.path)
        delay = self.rng.uniform(0, window)
        trial.notes.append('kill after %.2fs' % delay)
        future = self.create_image_async(trial, server)
        time.sleep(delay)
        outage = trial.outage(time.monotonic())
        self._in_flight(trial, server, future)
        self.kill_compute(self.victim)
        self.settle(future, 120)
        self.ensure_compute(self.victim, trial.path)
        outage[1] = time.monotonic()

    def _in_flight(self, trial, server, future):
        """Whether the fault lands while the request is still running
        (its answer pending or the server in an image_* task state); a
        fault after the snapshot finished tests only the recovery."""
        try:
            trial.in_flight = (not future.done() or
                               self.task_state(server.id) in IMAGE_STATES)
        except Exception:
            trial.in_flight = not future.done()
        if not trial.in_flight:
            trial.notes.append('fault after the request finished')

    def _at_random_phase(self, trial, server):
        """A random moment of the request: uniform over the time an
        undisturbed createImage of the path takes."""
        delay = self.rng.uniform(0, self.duration(trial.path))
        trial.notes.append('fault after %.2fs' % delay)
        time.sleep(delay)

    def _restart_mid_request(self, trial, restart):
        """createImage on the trial's path, then ``restart()`` a service
        at a random moment of it; the restart is the outage."""
        server = self._path_server(trial.path)
        self.ensure_compute(self.victim, trial.path)
        future = self.create_image_async(trial, server)
        self._at_random_phase(trial, server)
        outage = trial.outage(time.monotonic())
        self._in_flight(trial, server, future)
        restart()
        outage[1] = time.monotonic()
        self.settle(future)

    def trial_rabbit_restart(self, trial):
        self._restart_mid_request(trial, self.rabbit.restart)

    def trial_pg_restart(self, trial):
        self._restart_mid_request(trial, self.pg.restart)

    def trial_pg_terminate(self, trial):
        server = self._path_server(trial.path)
        self.ensure_compute(self.victim, trial.path)
        future = self.create_image_async(trial, server)
        self._at_random_phase(trial, server)
        start = time.monotonic()
        self._in_flight(trial, server, future)
        count = self.pg.terminate_backends()
        trial.notes.append('%d backends terminated' % count)
        # The connections die at once; a request that was using one
        # fails then: count that instant (plus a second) as the outage.
        trial.outage(start, time.monotonic() + 1.0)
        self.settle(future)

    def trial_glance_kill(self, trial):
        server = self.server('image')
        self.ensure_compute(self.victim, trial.path)
        future = self.create_image_async(trial, server)
        if not self.wait_task(server.id, ('image_uploading',), 30, 0.02):
            trial.notes.append('image_uploading not seen')
        outage = trial.outage(time.monotonic())
        self._in_flight(trial, server, future)
        self.glance.kill()
        time.sleep(self.rng.uniform(0.5, 3))
        self.glance.start()
        outage[1] = time.monotonic()
        self.settle(future)

    def trial_glance_blackhole(self, trial):
        server = self.server('image')
        self.ensure_compute(self.victim, trial.path)
        # The first (and the quick pass's) trial: a silent Glance at the
        # API's first call; then alternately mid-upload.
        mid_upload = trial.number % 2 == 0
        if mid_upload:
            future = self.create_image_async(trial, server)
            self.wait_task(server.id, ('image_uploading',), 30, 0.02)
        outage = trial.outage(time.monotonic())
        self.glance.blackhole()
        trial.notes.append('black hole %s' % (
            'mid-upload' if mid_upload else 'before the request'))
        if not mid_upload:
            future = self.create_image_async(trial, server)
        self._in_flight(trial, server, future)
        answered = wait_until(future.done, self.args.blackhole_seconds, 0.2)
        if not mid_upload and not answered:
            trial.violate('bounded-wait', 'createImage had no answer after '
                          '%ss of a silent Glance' % self.args.blackhole_seconds)
        self.glance.resume()
        outage[1] = time.monotonic()
        self.settle(future)

    def trial_cinder_api_kill(self, trial):
        server = self.server('volume')
        future = self.create_image_async(trial, server)
        frozen = wait_until(lambda: self.freeze_status(server.id) == 'frozen',
                            20, 0.02)
        if not frozen:
            trial.notes.append('freeze not seen')
        outage = trial.outage(time.monotonic())
        self._in_flight(trial, server, future)
        self.cinder.kill()
        time.sleep(self.rng.uniform(0.5, 3))
        self.cinder.start()
        outage[1] = time.monotonic()
        self.settle(future)

    def _libvirtd_trial(self, trial, server, when):
        future = self.create_image_async(trial, server)
        if not wait_until(when, 30, 0.01):
            trial.notes.append('phase not seen')
        outage = trial.outage(time.monotonic())
        self._in_flight(trial, server, future)
        restart_libvirtd(self.uri)
        outage[1] = time.monotonic()
        self.settle(future)

    def trial_libvirtd_backup(self, trial):
        server = self.server('image')
        self.ensure_compute(self.victim, trial.path)

        def backup_running():
            # The push job of the tiny disk lasts milliseconds: the task
            # state set just before it starts is the earliest sign.
            return (self.task_state(server.id) == 'image_pending_upload'
                    or self.domain(server.id).jobInfo()[0] != 0)
        self._libvirtd_trial(trial, server, backup_running)

    def trial_libvirtd_managedsave(self, trial):
        server = self.server('image')
        self.ensure_compute(self.victim, 'suspend')

        def saving():
            return self.domain(server.id).state()[0] != \
                libvirt.VIR_DOMAIN_RUNNING
        self._libvirtd_trial(trial, server, saving)

    def trial_libvirtd_freeze(self, trial):
        server = self.server('volume')
        self._libvirtd_trial(
            trial, server, lambda: self.freeze_status(server.id) == 'frozen')

    def trial_snapshots_full(self, trial):
        server = self.server('image')
        if self.snap_mount is None:
            self.snap_mount = os.path.join(self.base, 'full-snapshots')
            os.makedirs(self.snap_mount, exist_ok=True)
            subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m',
                            'campaign-full', self.snap_mount], check=True)
        self.ensure_compute(self.victim, trial.path,
                            snapshots_dir=self.snap_mount)
        future = self.create_image_async(trial, server)
        resp = self.settle(future)
        wait_until(lambda: self.task_state(server.id) is None, 120, 0.5)
        image = self._trial_images(trial)
        if any(i['status'] == 'active' for i in image):
            trial.notes.append('image finished despite the full directory')
        self.ensure_compute(self.victim, trial.path)
        trial.notes.append('createImage answered %s' % getattr(
            resp, 'status_code', resp))

    def _race(self, trial, action, target_status, body=None,
              first_action='createImage', accept=()):
        """``first_action`` (the trial's) and ``action`` sent together;
        ``accept``: other statuses the accepted action may end in."""
        server = self.server(trial.path_role)
        status_before = server.status
        offset = self.rng.uniform(-0.2, 0.4)
        trial.notes.append('%s offset %.2fs' % (action, offset))
        body = body or {action: None}
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            first = pool.submit(self.send_action, trial, server,
                                first_action)
            time.sleep(max(offset, 0))
            other = pool.submit(self.client.action, server.id, body)
            create_resp, other_resp = first.result(), other.result()
        trial.notes.append('%s %s, %s %s' % (
            first_action, create_resp.status_code, action,
            other_resp.status_code))
        if other_resp.status_code == 202:
            server.status = target_status
            server.accept = tuple(accept)
        else:
            server.status = status_before

    def trial_race_suspend(self, trial):
        self._race(trial, 'suspend', 'SUSPENDED')

    def trial_race_pause(self, trial):
        self._race(trial, 'pause', 'PAUSED')

    def trial_race_stop(self, trial):
        self._race(trial, 'os-stop', 'SHUTOFF')

    def trial_race_shelve(self, trial):
        # With shelved_offload_time 0 a shelve ends offloaded; SHELVED
        # (offload still to come) is allowed too; either must unshelve.
        self._race(trial, 'shelve', 'SHELVED_OFFLOADED',
                   accept=('SHELVED',))

    def trial_race_reboot(self, trial):
        self._race(trial, 'reboot', 'ACTIVE',
                   body={'reboot': {'type': 'HARD'}})

    def trial_race_backup(self, trial):
        trial.action = 'createBackup'
        self._race(trial, 'os-stop', 'SHUTOFF', first_action='createBackup')

    def trial_race_delete(self, trial):
        server = self.server(trial.path_role)
        resp = [None]

        def create():
            resp[0] = self.create_image(trial, server)
        thread = threading.Thread(target=create)
        thread.start()
        time.sleep(max(self.rng.uniform(-0.2, 0.4), 0))
        deleted = self.client.delete_server(server.id)
        thread.join()
        trial.notes.append('createImage %s, delete %s' % (
            resp[0].status_code if resp[0] is not None else None,
            deleted.status_code))
        if deleted.status_code == 204:
            server.status = 'DELETED'

    # -- invariants ------------------------------------------------------
    def _trial_images(self, trial):
        return [i for i in self.images.list(self.ctx, name=trial.image_name)]

    @staticmethod
    def _image_snapshot_ids(image):
        try:
            mapping = json.loads(image.get('block_device_mapping') or '[]')
        except ValueError:
            return []
        return [b['snapshot_id'] for b in mapping if b.get('snapshot_id')]

    def _server_problems(self, server):
        problems = []
        if server.status == 'DELETED':
            resp = self.client.request('GET', '/servers/%s' % server.id)
            if resp.status_code != 404:
                problems.append(('task-state', 'deleted server still %s' %
                                 resp.status_code))
            try:
                self.domain(server.id)
                problems.append(('power-state', 'domain of deleted server '
                                 'still defined'))
            except libvirt.libvirtError:
                pass
            return problems
        task = self.task_state(server.id)
        if task is not None:
            problems.append(('task-state', '%s task_state %s'
                             % (server, task)))
        got = self.client.get_server(server.id)
        status = got['status']
        allowed = (server.status,) + tuple(server.accept)
        if status not in allowed:
            problems.append(('power-state', '%s is %s, expected %s'
                             % (server, status, ' or '.join(allowed))))
            status = server.status
        if status in ('SHELVED', 'SHELVED_OFFLOADED'):
            problems += self._shelved_problems(server, status)
        if status == 'SHELVED_OFFLOADED':
            try:
                self.domain(server.id)
                problems.append(('domain-without-row', '%s is offloaded '
                                 'but its domain is defined' % server))
            except libvirt.libvirtError:
                pass
            return problems
        if status == 'ERROR':
            # Nova's end of an interrupted rebuild: the check's
            # rebuild-recovers step judges it (see check()).
            return problems
        try:
            state = self.domain(server.id).state()[0]
        except libvirt.libvirtError as exc:
            problems.append(('power-state', '%s: no domain (%s)'
                             % (server, exc)))
            return problems
        if state != EXPECTED_POWER[status]:
            problems.append(('power-state', '%s domain state %s, expected '
                             '%s' % (server, state,
                                     EXPECTED_POWER[status])))
        if (server.volume_backed and state == libvirt.VIR_DOMAIN_RUNNING):
            try:
                frozen = self.freeze_status(server.id)
            except libvirt.libvirtError as exc:
                frozen = 'unknown (%s)' % exc
            if frozen != 'thawed':
                problems.append(('thawed', '%s filesystems %s'
                                 % (server, frozen)))
        return problems

    def _row(self, server_id):
        """(vm_state, host, claimed_memory_mb, system_metadata) of the
        server's row."""
        conn = self.pg.connect()
        try:
            with conn.cursor() as cur:
                cur.execute('select vm_state, host, claimed_memory_mb, '
                            'system_metadata from instances where uuid = %s',
                            (server_id,))
                row = cur.fetchone()
        finally:
            conn.close()
        if row is None:
            return None
        return row[:3] + (json.loads(row[3] or '{}'),)

    def _shelved_problems(self, server, status):
        """A shelved server can come back: an image-backed one's shelved
        image is active; an offloaded one holds no host and no claim."""
        problems = []
        row = self._row(server.id)
        if row is None:
            return [('task-state', '%s has no row' % server)]
        _vm_state, host, claimed, sysmeta = row
        if not server.volume_backed:
            image_id = sysmeta.get('shelved_image_id')
            status_of = None
            if image_id:
                try:
                    status_of = self.images.get(self.ctx, image_id)['status']
                except Exception as exc:
                    status_of = 'missing (%s)' % type(exc).__name__
            if status_of != 'active':
                problems.append(('shelved-image', '%s is %s but its shelved '
                                 'image %s is %s' % (server, status, image_id,
                                                     status_of)))
        if status == 'SHELVED_OFFLOADED' and (host or claimed):
            problems.append(('claim', '%s is offloaded but holds host %s, '
                             '%s MiB claimed' % (server, host, claimed)))
        return problems

    def _shelve_leftovers(self, images):
        """``*-shelved`` images that no server row holds: a failed or
        finished shelve's (an unshelve deletes its image)."""
        shelved = [i for i in images if i['name'].endswith('-shelved')]
        if not shelved:
            return []
        conn = self.pg.connect()
        try:
            with conn.cursor() as cur:
                cur.execute('select system_metadata from instances where '
                            'deleted = 0')
                held = set()
                for (text,) in cur.fetchall():
                    meta = json.loads(text or '{}')
                    held.update(v for k, v in meta.items()
                                if k in ('shelved_image_id',
                                         'shelving_image_id') and v)
        finally:
            conn.close()
        return [('failed-image', 'shelve image %s (%s) %s is held by no '
                 'server' % (i['name'], i['id'][:8], i['status']))
                for i in shelved if i['id'] not in held]

    def _global_problems(self, trial):
        problems = []
        images = [i for i in self.images.list(self.ctx, owner=self.project)
                  if i.get('owner') == self.project]
        for image in images:
            if image['id'] in self.base_images:
                continue
            if image['status'] != 'active':
                problems.append(('failed-image', '%s (%s) is %s' % (
                    image['name'], image['id'][:8], image['status'])))
        problems += self._shelve_leftovers(images)
        tracked = set()
        for image in images:
            tracked.update(self._image_snapshot_ids(image))
        client = self.volumes._client(self.ctx)
        for snap in client.volume_snapshots.list():
            if snap.id not in tracked:
                problems.append(('untracked-snapshot', '%s %s (%s)' % (
                    snap.id[:8], snap.status, snap.name)))
        conn = self.pg.connect()
        try:
            with conn.cursor() as cur:
                cur.execute('select uuid, deleted from instances')
                rows = {u: d for u, d in cur.fetchall()}
                cur.execute(
                    'select a.instance_uuid, e.event from '
                    'instance_actions_events e join instance_actions a '
                    'on e.action_id = a.id where e.finish_time is null')
                for instance_uuid, event in cur.fetchall():
                    problems.append(('events-finished', '%s of %s still '
                                     'running' % (event, instance_uuid[:8])))
        finally:
            conn.close()
        instances_dir = os.path.join(self.deployment.state_dir, 'instances')
        for domain in self._all_domains():
            name = domain.name()
            if not name.startswith('instance-'):
                continue
            server_id = name[len('instance-'):]
            if not os.path.isdir(os.path.join(instances_dir, server_id)):
                continue   # another deployment's guest
            if rows.get(server_id, 1) != 0:
                problems.append(('domain-without-row', '%s (%s)' % (
                    name, 'deleted row' if server_id in rows else 'no row')))
        for started, ended, method, path, status, fault in list(
                self.client.answers):
            if started < trial.started:
                continue
            if status is not None and fault is not None:
                problems.append(('fault-body', '%s %s %s: %s' % (
                    method, path, status, fault)))
        return problems

    def _all_domains(self):
        try:
            return self.libvirt.listAllDomains()
        except libvirt.libvirtError:
            self.libvirt = libvirt.open(self.uri)
            return self.libvirt.listAllDomains()

    def check(self, trial):
        """Poll the invariants until they hold or ``--grace`` runs out."""
        recovered_at = max([o[1] or time.monotonic() for o in trial.outages]
                           or [time.monotonic()])
        deadline = time.monotonic() + self.args.grace
        servers = [s for s in self.servers.values()]
        problems = []
        while True:
            problems = []
            try:
                for server in servers:
                    problems += self._server_problems(server)
                problems += self._global_problems(trial)
            except Exception as exc:
                problems.append(('checker', 'check failed: %r' % exc))
            if not problems:
                trial.recover_s = round(max(time.monotonic() - recovered_at,
                                            0.0), 2)
                break
            if time.monotonic() > deadline:
                break
            time.sleep(1.0)
        for invariant, detail in problems:
            trial.violate(invariant, detail)
        if not problems:
            self._comes_back(trial, servers)
        # 5xx answers: counted; outside an injected outage a violation.
        for started, ended, method, path, status, fault in list(
                self.client.answers):
            if started < trial.started:
                continue
            if status is None or status >= 500:
                trial.count_5xx += 1
                if not any(o[0] - 1 <= ended and started <= (
                        o[1] or ended) + 1 for o in trial.outages):
                    trial.violate('no-5xx', '%s %s answered %s outside an '
                                  'injected outage' % (method, path, status))
        actions = ['%s in %.1fs' % (status, ended - started)
                   for started, ended, method, path, status, _ in list(
                       self.client.answers)
                   if started >= trial.started and method == 'POST'
                   and path.endswith('/action') and status != 200]
        if actions:
            trial.notes.append('actions answered %s' % ', '.join(actions))
        images = [i for i in self._trial_images(trial)
                  if i['status'] == 'active']
        trial.notes.append('image %s' % ('active' if images else 'none'))
        if trial.action == 'createBackup':
            # Not an invariant: a rotation cut short is finished by the
            # next backup of the type (Nova's too), so only reported.
            kept = [i for i in self.images.list(
                self.ctx, backup_type=backup_type(trial))
                if i.get('owner') == self.project]
            trial.notes.append('%d backups of its type left (rotation 1)'
                               % len(kept))
        failed = [a for a in trial.create_answers if a is None or a >= 400]
        if images and failed and len(failed) == len(trial.create_answers):
            # The user was told the request failed, yet its image (and,
            # volume-backed, its Cinder snapshots) stays.
            trial.violate('failed-image', 'createImage answered %s but '
                          'image %s is active' % (failed[0],
                                                  images[0]['id'][:8]))
        if images and self._boot_sampled(trial):
            try:
                self.boot_check(trial, images[0])
            except Exception as exc:
                trial.violate('image-boots', '%s: %s' % (images[0]['id'][:8],
                                                         exc))
        return trial

    def _comes_back(self, trial, servers):
        """A server a trial left shelved must unshelve, one it left in
        ERROR (a killed rebuild, as Nova) must rebuild: both back to a
        guest that boots (the user's way out, so part of the check)."""
        for server in servers:
            if server.status == 'DELETED':
                continue
            server.accept = ()
            status = self.client.get_server(server.id)['status']
            if status != server.status:
                trial.notes.append('%s ended %s' % (server, status))
            server.status = status
            if status in ('SHELVED', 'SHELVED_OFFLOADED'):
                invariant, action = 'unshelve-boots', 'unshelve'
            elif status == 'ERROR':
                invariant, action = 'rebuild-recovers', 'rebuild'
            else:
                continue
            try:
                self._bring_back(trial, server, action)
            except Exception as exc:
                trial.violate(invariant, '%s: %s' % (server, exc))

    def _bring_back(self, trial, server, action):
        """``action`` (unshelve or rebuild) on ``server``: it must end
        ACTIVE with a freshly booted guest; an image-backed unshelve's
        guest must find its tick (the shelved image holds it)."""
        # A fresh guest: a new QEMU process (domain id), and a boot line
        # more on the console; only an unshelve in place (SHELVED) keeps
        # the old console, destroy + spawn start a new one.
        old_id = self._domain_id(server.id)
        row = self._row(server.id)
        shelved_image = (row[3] if row else {}).get('shelved_image_id')
        boots = self._console_count(server.id) \
            if server.status == 'SHELVED' else 0
        body, version = self.action_body(trial, server, action)
        resp = self.client.action(server.id, body, microversion=version)
        if resp.status_code != 202:
            raise RuntimeError('%s answered %s %s' % (
                action, resp.status_code, resp.text[:200]))
        self.client.wait_for_server(server.id, timeout=240)
        server.status = 'ACTIVE'
        if not wait_until(lambda: self._domain_id(server.id) not in (
                old_id, None, -1) and self._console_count(server.id) > boots,
                120, 1):
            raise RuntimeError('no guest boot after %s' % action)
        last = self._console_ticks(server.id)[-1]
        if action == 'unshelve' and not server.volume_backed and \
                last == 'none':
            raise RuntimeError('unshelved guest found no tick')
        self.wait_console(server.id, r'nova-snapshot-guest: tick \d+', 60)
        if server.volume_backed:
            self.wait_console(server.id, 'qemu-ga started', 120)
            guest_fixture.wait_for_guest_agent(self.domain(server.id), 60)
        if action == 'unshelve' and shelved_image:
            try:
                left = self.images.get(self.ctx, shelved_image)['status']
            except Exception:
                left = 'deleted'
            if left != 'deleted':
                raise RuntimeError('unshelved, but its shelved image %s is '
                                   'still %s' % (shelved_image[:8], left))
        trial.notes.append('%s %s: ACTIVE, last tick %s' % (
            server, action, last))

    def _domain_id(self, server_id):
        try:
            return self.domain(server_id).ID()
        except libvirt.libvirtError:
            return None

    def _console_ticks(self, server_id):
        resp = self.client.action(server_id, {
            'os-getConsoleOutput': {'length': None}})
        if resp.status_code != 200:
            return []
        return re.findall(r'nova-snapshot-guest: last tick (\d+|none)\b',
                          resp.json()['output'])

    def _console_count(self, server_id):
        return len(self._console_ticks(server_id))

    def _boot_sampled(self, trial):
        key = 'volume' if trial.path == 'volume-backed' else 'image'
        if key not in self.boot_checked_paths:
            return True
        return self.rng.random() < self.args.boot_sample

    def boot_check(self, trial, image):
        """Boot the image on the other host: the guest must find the tick
        the image holds and count on."""
        trial.boot_checked = True
        volume_backed = bool(self._image_snapshot_ids(image))
        self.boot_checked_paths.add('volume' if volume_backed else 'image')
        expected = None
        if not volume_backed:
            expected = self._image_tick(image)
        restored = self.boot('restored', self.bystander,
                             volume_backed=False, image_id=image['id']) \
            if not volume_backed else self._boot_volume_image(image)
        try:
            match = self.wait_console(
                restored.id, r'nova-snapshot-guest: last tick (\d+|none)', 60)
            got = match.group(1)
            if got == 'none':
                raise RuntimeError('restored guest found no tick')
            if expected is not None and int(got) != expected:
                raise RuntimeError('restored guest found tick %s, the image '
                                   'holds %s' % (got, expected))
            self.wait_console(restored.id, r'nova-snapshot-guest: tick \d+',
                              60)
            trial.notes.append('restored guest found tick %s' % got)
        finally:
            self.client.delete_server(restored.id)
            try:
                self.client.wait_for_server_gone(restored.id, 120)
            except Exception:
                pass

    def _boot_volume_image(self, image):
        resp = self.client.request('POST', '/servers', json={'server': {
            'name': 'camp-restored', 'imageRef': image['id'],
            'flavorRef': '2', 'networks': 'none',
            'availability_zone': 'nova:%s' % self.bystander}})
        if resp.status_code != 202:
            raise RuntimeError('boot from %s: %s %s' % (
                image['id'][:8], resp.status_code, resp.text[:200]))
        server = Server(resp.json()['server']['id'], self.bystander, True,
                        'restored')
        self.client.wait_for_server(server.id, timeout=240)
        return server

    def _image_tick(self, image):
        workdir = os.path.join(self.base, 'downloads')
        os.makedirs(workdir, exist_ok=True)
        qcow = os.path.join(workdir, image['id'])
        raw = qcow + '.raw'
        self.images.download(self.ctx, image['id'], qcow)
        try:
            subprocess.run(['qemu-img', 'convert', '-f', image['disk_format'],
                            '-O', 'raw', qcow, raw], check=True,
                           capture_output=True)
            with open(raw, 'rb') as data:
                head = data.read(1024)
        finally:
            for path in (qcow, raw):
                if os.path.exists(path):
                    os.unlink(path)
        match = re.match(rb'tick (\d+)', head[512:1024])
        if not match:
            raise RuntimeError('the image holds no tick in sector 1')
        return int(match.group(1))

    # -- after a trial ---------------------------------------------------
    def restore(self, trial):
        """Servers back to ACTIVE for the next trial; a server a trial
        broke (or deleted) is replaced; the trial's images go."""
        for role, server in list(self.servers.items()):
            server.accept = ()
            if server.status in ('DELETED', 'ERROR') or any(
                    server.id[:8] in detail for _, detail in trial.violations):
                self.drop_server(role)
                continue
            undo = {'SUSPENDED': 'resume', 'PAUSED': 'unpause',
                    'SHUTOFF': 'os-start', 'SHELVED': 'unshelve',
                    'SHELVED_OFFLOADED': 'unshelve'}.get(server.status)
            if undo:
                body = {undo: None}
                version = None
                if server.status == 'SHELVED_OFFLOADED':
                    # back to its host (the victim's points are there)
                    body, version = {'unshelve': {'host': server.host}}, '2.91'
                resp = self.client.action(server.id, body,
                                          microversion=version)
                try:
                    if resp.status_code != 202:
                        raise RuntimeError(resp.text[:200])
                    self.client.wait_for_server(server.id, timeout=120)
                    server.status = 'ACTIVE'
                    if server.volume_backed:
                        self.wait_console(server.id, 'qemu-ga started', 120)
                        guest_fixture.wait_for_guest_agent(
                            self.domain(server.id), 60)
                except Exception as exc:
                    log('%s could not be restored (%s): replaced', server,
                        exc)
                    self.drop_server(role)
        for image_id in trial.extra_images:
            try:
                self.images.delete(self.ctx, image_id)
            except Exception:
                pass   # e.g. the rotation deleted it
        for image in self.images.list(self.ctx, name=trial.image_name):
            for snap in self._image_snapshot_ids(image):
                try:
                    self.volumes.delete_snapshot(self.ctx, snap)
                except Exception:
                    pass
            try:
                self.images.delete(self.ctx, image['id'])
            except Exception:
                pass
        # A trial's violation must not be counted again by the next one:
        # what it left behind goes now (images, snapshots of this project
        # that are not the base images).
        if trial.violations:
            for image in self.images.list(self.ctx, owner=self.project):
                if (image['id'] not in self.base_images
                        and image['status'] != 'active'):
                    try:
                        self.images.delete(self.ctx, image['id'])
                    except Exception:
                        pass
            client = self.volumes._client(self.ctx)
            for snap in client.volume_snapshots.list():
                try:
                    if snap.status not in ('available', 'error'):
                        # e.g. 'creating' for ever: the cinder-api that
                        # took the request died before it cast it.
                        client.volume_snapshots.reset_state(snap, 'error')
                    snap.delete()
                except Exception as exc:
                    log('could not delete snapshot %s: %s', snap.id, exc)
        wait_until(self._no_deleting_snapshots, 60, 1)

    def _no_deleting_snapshots(self):
        client = self.volumes._client(self.ctx)
        return not [s for s in client.volume_snapshots.list()
                    if s.status == 'deleting']

    # -- the plan --------------------------------------------------------
    def plan(self):
        kinds = self.args.kinds
        points = {name: where for name, where in find_points().items()
                  if name.startswith(tuple(self.args.points)) and
                  not name.startswith(NO_TRIAL_PREFIXES)}
        trials = []
        for kind in kinds:
            count = 1 if self.args.quick else self.args.counts.get(
                kind, self.args.trials or FULL_COUNTS[kind])
            if kind == 'kill-point':
                if not points:
                    log('kill-point: no fault_injection.point() in the '
                        'code; kind skipped')
                    continue
                if self.args.quick:
                    trials += self._quick_points(kind, points)
                    continue
                # Trial n of every point before trial n + 1 of any: a run
                # cut short by --max-minutes has reached every point.
                for n in range(count):
                    for name in sorted(points):
                        paths = point_paths(name)
                        trials.append((kind, paths[n % len(paths)], name))
                continue
            for n in range(count):
                trials.append((kind, self._path_for(kind, n), None))
        # Round robin over the kinds: a run cut short by --max-minutes
        # still has a sample of every kind.
        by_kind = collections.OrderedDict()
        for trial in trials:
            by_kind.setdefault(trial[0], []).append(trial)
        ordered = []
        while any(by_kind.values()):
            for queue in by_kind.values():
                if queue:
                    ordered.append(queue.pop(0))
        return ordered

    def _quick_points(self, kind, points):
        """The CI pass's kill points: one createImage point and one point
        of another action, drawn by the seed, so that successive CI runs
        (each with a seed of its own) go round every path and action
        while each stays two trials long."""
        create_image, other = [], []
        for name in sorted(points):
            bucket = (create_image if point_action(name) == 'createImage'
                      else other)
            bucket.extend((path, name) for path in point_paths(name))
        return [(kind,) + self.rng.choice(choices)
                for choices in (create_image, other) if choices]

    def _path_for(self, kind, n):
        if kind in ('kill-random', 'rabbit-restart', 'pg-restart',
                    'pg-terminate'):
            return (IMAGE_PATHS + ('volume-backed',))[n % 4]
        if kind in ('glance-kill', 'glance-blackhole'):
            return IMAGE_PATHS[n % 3]
        if kind == 'libvirtd-backup':
            return ('live-stream', 'live-push')[n % 2]
        if kind == 'libvirtd-managedsave':
            return 'suspend'
        if kind == 'snapshots-full':
            return ('live-push', 'suspend')[n % 2]
        if kind in ('cinder-api-kill', 'libvirtd-freeze'):
            return 'volume-backed'
        if kind == 'race-backup':
            return 'live-stream'   # a volume-backed backup is a 400
        if kind.startswith('race-'):
            # the volume-backed cut first (issue 7's item 4), then both
            return ('volume-backed', 'live-stream')[n % 2]
        return 'live-stream'

    def run(self):
        self.boot_checked_paths = set()
        plan = self.plan()
        log('%d trials planned', len(plan))
        counters = collections.Counter()
        deadline = (time.monotonic() + self.args.max_minutes * 60
                    if self.args.max_minutes else None)
        for kind, path, point in plan:
            if deadline and time.monotonic() > deadline:
                log('--max-minutes reached: %d trials not run',
                    len(plan) - len(self.trials))
                break
            counters[kind] += 1
            trial = Trial(kind, counters[kind], path, point)
            trial.path_role = 'volume' if path == 'volume-backed' else 'image'
            self.trials.append(trial)
            try:
                # Servers first: their boot is not part of the trial.
                self.server('bystander')
                self._path_server(path or 'live-stream')
                if self.compute_state.get(self.victim, (None,))[0] != path \
                        and path in IMAGE_PATHS:
                    self.ensure_compute(self.victim, path)
                if kind in ('kill-random', 'rabbit-restart', 'pg-restart',
                            'pg-terminate'):
                    self.duration(path)
                trial.started = time.monotonic()
                getattr(self, 'trial_' + kind.replace('-', '_'))(trial)
            except Exception as exc:
                trial.violate('trial', 'the trial itself failed: %r' % exc)
                log('%s: %r', trial.id, exc)
                self._recover_services()
            self.check(trial)
            log('%s %s%s: %s, recovered in %s, %d 5xx%s', trial.id, path,
                ' @' + point if point else '',
                'OK' if not trial.violations else '%d violations: %s' % (
                    len(trial.violations), '; '.join(
                        '%s: %s' % v for v in trial.violations[:4])),
                '%.2fs' % trial.recover_s if trial.recover_s is not None
                else '-', trial.count_5xx,
                ' (%s)' % ', '.join(trial.notes) if trial.notes else '')
            try:
                self.restore(trial)
            except Exception as exc:
                log('restore after %s: %r', trial.id, exc)
        return self.trials

    def _recover_services(self):
        """After a trial that failed half-way: every private service and
        both computes up again."""
        if self.glance.stopped:
            self.glance.resume()
        if self.glance.proc.poll() is not None:
            self.glance.start()
        if self.cinder.proc.poll() is not None:
            self.cinder.start()
        if self.rabbit.proc is None or not tcp_open(self.rabbit.port):
            self.rabbit.restart()
        for host in self.hosts:
            if not self.compute_alive(host):
                self.ensure_compute(host, self.compute_state.get(
                    host, ('live-stream',))[0])


# -- reporting -------------------------------------------------------------

def summarise(trials):
    rows = collections.OrderedDict()
    for trial in trials:
        key = trial.kind
        if trial.kind == 'kill-point':
            key = 'kill-point %s' % trial.path
            if trial.action != 'createImage':
                key = 'kill-point %s %s' % (trial.action, trial.path)
        rows.setdefault(key, []).append(trial)
    return rows


def print_table(trials, out=sys.stdout):
    header = '%-36s %6s %9s %10s %12s %12s %5s' % (
        'fault kind', 'trials', 'in flight', 'violations', 'recover p50',
        'recover max', '5xx')
    out.write('\n' + header + '\n' + '-' * len(header) + '\n')
    for key, group in summarise(trials).items():
        times = [t.recover_s for t in group if t.recover_s is not None]
        measured = [t.in_flight for t in group if t.in_flight is not None]
        out.write('%-36s %6d %9s %10d %12s %12s %5d\n' % (
            key, len(group), '%d' % sum(measured) if measured else '-',
            sum(1 for t in group if t.violations),
            '%.1fs' % statistics.median(times) if times else '-',
            '%.1fs' % max(times) if times else '-',
            sum(t.count_5xx for t in group)))
    broken = [t for t in trials if t.violations]
    if broken:
        out.write('\nviolations:\n')
        for trial in broken:
            for invariant, detail in trial.violations:
                out.write('  %-26s %-20s %s\n' % (
                    trial.id + (' @' + trial.point if trial.point else ''),
                    invariant, detail))
    out.write('\n%d trials, %d with violations\n' % (
        len(trials), len(broken)))


def code_version():
    """The commit the services ran, and the files changed from it."""
    def git(*argv):
        return subprocess.run(['git'] + list(argv), cwd=REPO,
                              capture_output=True, text=True).stdout.strip()
    return {'commit': git('rev-parse', 'HEAD'),
            'changed': git('status', '--porcelain', '--untracked-files=no',
                           'nova_snapshot').splitlines()}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--kinds', default=','.join(ALL_KINDS),
                        help='comma-separated fault kinds (default all): '
                             + ', '.join(ALL_KINDS))
    parser.add_argument('--skip-kinds', default='',
                        help='comma-separated kinds to leave out')
    parser.add_argument('--trials', type=int, default=None,
                        help='trials per kind (per point for kill-point); '
                             'default the issue\'s counts')
    parser.add_argument('--count', action='append', default=[],
                        metavar='KIND=N',
                        help='trials of one kind (repeatable), e.g. '
                             'libvirtd-freeze=3')
    parser.add_argument('--quick', action='store_true',
                        help='one trial per kind (kill-point: one point '
                             'per path): the CI pass')
    parser.add_argument('--seed', type=int, default=None)
    parser.add_argument('--json', help='write every trial to this file')
    parser.add_argument('--grace', type=float, default=180.0,
                        help='seconds after recovery for the invariants to '
                             'hold (the issue: 3 minutes)')
    parser.add_argument('--reconciler-interval', type=int, default=10)
    parser.add_argument('--task-state-grace', type=int, default=20)
    parser.add_argument('--orphan-grace', type=int, default=30)
    parser.add_argument('--boot-sample', type=float, default=0.1,
                        help='share of finished images booted and checked '
                             '(the first of each path always is)')
    parser.add_argument('--points', action='append', default=[],
                        metavar='PREFIX',
                        help='only the kill points whose names start with '
                             'this (repeatable), e.g. image. or volume.')
    parser.add_argument('--point-timeout', type=float, default=60.0)
    parser.add_argument('--startup-settle', type=float, default=3.0,
                        help='seconds to wait after a compute reported up '
                             'before a trial uses it')
    parser.add_argument('--random-kill-window', type=float, default=None,
                        help='random kills fall in [0, this] seconds after '
                             'the createImage request (default: the time '
                             'an undisturbed createImage of the path takes, '
                             'measured at the first trial)')
    parser.add_argument('--blackhole-seconds', type=float, default=None,
                        help='how long Glance stays silent, and the bound '
                             'on the createImage answer meanwhile (default '
                             '90; 30 with --quick)')
    parser.add_argument('--glance-timeout', type=float, default=None,
                        help="the deployment's [glance] timeout (default "
                             "the service's 60 s; 20 with --quick, so the "
                             "black hole is answered sooner)")
    parser.add_argument('--max-minutes', type=float, default=None,
                        help='stop starting trials after this long')
    parser.add_argument('--keep', action='store_true',
                        help='keep the state directory and logs')
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    kinds = [k.strip() for k in args.kinds.split(',') if k.strip()]
    skip = {k.strip() for k in args.skip_kinds.split(',') if k.strip()}
    unknown = [k for k in kinds + list(skip) if k not in ALL_KINDS]
    if unknown:
        parser.error('unknown kinds: %s' % ', '.join(unknown))
    args.kinds = [k for k in kinds if k not in skip]
    args.points = args.points or ['']
    if args.glance_timeout is None and args.quick:
        args.glance_timeout = 20.0
    if args.blackhole_seconds is None:
        args.blackhole_seconds = 30.0 if args.quick else 90.0
    args.counts = {}
    for item in args.count:
        kind, _, number = item.partition('=')
        if kind not in ALL_KINDS or not number.isdigit():
            parser.error('--count wants KIND=N, got %r' % item)
        args.counts[kind] = int(number)
    return args


def main(argv=None):
    args = parse_args(argv)
    log('fault campaign: seed %d, kinds %s%s', args.seed,
        ','.join(args.kinds), ' (quick)' if args.quick else '')
    campaign = Campaign(args)
    started = time.monotonic()
    try:
        campaign.start()
        campaign.run()
    finally:
        campaign.stop()
    print_table(campaign.trials)
    log('campaign took %.0fs', time.monotonic() - started)
    if args.json:
        with open(args.json, 'w') as out:
            json.dump({'seed': args.seed, 'quick': args.quick,
                       'code': code_version(),
                       'kinds': args.kinds,
                       'points': find_points(),
                       'seconds': round(time.monotonic() - started),
                       'trials': [t.as_dict() for t in campaign.trials]},
                      out, indent=1)
    return 1 if any(t.violations for t in campaign.trials) else 0


if __name__ == '__main__':
    sys.exit(main())
