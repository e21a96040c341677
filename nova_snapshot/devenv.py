"""A whole nova-snapshot deployment on this machine, for the demo and tests.

It writes a config file, creates the schema, and starts ``nova-snapshot-api``
and one ``nova-snapshot-compute`` per host name as child processes, exactly
as an operator would run them; it stops them by PID. The real services it
points at (Glance, RabbitMQ, PostgreSQL, libvirtd) are started beforehand by
``tools/stack/start.sh``, which records their addresses in ``.stack/env``.
"""

import configparser
import contextlib
import datetime
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import libvirt
import libvirt_qemu
import requests

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STACK_ENV = os.path.join(REPO_ROOT, '.stack', 'env')


def read_stack_env(path=STACK_ENV):
    """Return the KEY=value pairs that tools/stack/start.sh wrote."""
    if not os.path.exists(path):
        raise RuntimeError('%s is missing: run tools/stack/start.sh first' % path)
    env = {}
    with open(path) as env_file:
        for line in env_file:
            line = line.strip()
            if line and not line.startswith('#') and '=' in line:
                key, value = line.split('=', 1)
                if key.startswith('export '):
                    key = key[len('export '):]
                env[key.strip()] = value.strip().strip('"\'')
    return env


def free_port():
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _bin(name):
    return os.path.join(os.path.dirname(sys.executable), name)


OWNER_FILE = 'owner.pid'
STATE_PREFIX = 'nova-snapshot-'


def destroy_guests(libvirt_uri, state_dir):
    """Destroy and undefine the guests whose instance directories are in
    ``state_dir`` (a deployment's)."""
    instances = os.path.join(state_dir, 'instances')
    if not os.path.isdir(instances):
        return
    conn = libvirt.open(libvirt_uri)
    try:
        for name in os.listdir(instances):
            try:
                uuid.UUID(name)
            except ValueError:
                continue  # e.g. the snapshots scratch directory
            try:
                domain = conn.lookupByName('instance-%s' % name)
            except libvirt.libvirtError:
                continue
            try:
                if domain.isActive():
                    domain.destroy()
                domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
            except libvirt.libvirtError:
                pass
    finally:
        conn.close()


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _processes_of(state_dir):
    """Pids whose command line names a config file in ``state_dir``: the
    services a deployment started there (a reused pid never matches)."""
    marker = '--config-file\0%s%s' % (state_dir, os.sep)
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % entry) as cmdline:
                if marker in cmdline.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def sweep_abandoned(libvirt_uri, tmp_dir=None):
    """Stop what deployments whose owning process died left running.

    Services run in sessions of their own so that a test can kill them one
    by one; when the test process itself is killed (SIGKILL, a CI timeout)
    they and their guests would run on and load every later run. Their
    state directories (and logs) are kept. Returns the directories swept.
    """
    swept = []
    pattern = os.path.join(tmp_dir or tempfile.gettempdir(),
                           STATE_PREFIX + '*')
    for state_dir in glob.glob(pattern):
        owner_file = os.path.join(state_dir, OWNER_FILE)
        try:
            with open(owner_file) as owner:
                pid = int(owner.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if _pid_alive(pid):
            continue
        for service in _processes_of(state_dir):
            try:
                os.kill(service, signal.SIGKILL)
            except ProcessLookupError:
                pass
        destroy_guests(libvirt_uri, state_dir)
        os.unlink(owner_file)
        swept.append(state_dir)
    return swept


class Deployment:
    """API + compute services of one deployment, each in its own process.

    :param hosts: compute host names; each gets its own compute service.
    :param database_url: SQL URL; default a SQLite file in the state dir.
    :param transport_url: RabbitMQ URL; default the stack's test vhost.
    :param extra_conf: {section: {option: value}} merged into the config.
    :param all_in_one: run ``nova-snapshot-all`` (API and compute in one
        process, in-memory RPC) instead of separate services; one host.
    """

    def __init__(self, stack_env=None, hosts=None, database_url=None,
                 transport_url=None, extra_conf=None, state_dir=None,
                 all_in_one=False):
        self.stack = stack_env or read_stack_env()
        # A unique default host name: two deployments on one broker whose
        # compute services share a name would consume each other's casts.
        self.hosts = list(hosts or ['compute-%s' % uuid.uuid4().hex[:8]])
        self.state_dir = state_dir or tempfile.mkdtemp(prefix=STATE_PREFIX)
        self.database_url = database_url or 'sqlite:///%s' % os.path.join(
            self.state_dir, 'nova_snapshot.sqlite')
        self.all_in_one = all_in_one
        self.transport_url = None if all_in_one else (
            transport_url or self.stack['TRANSPORT_URL'])
        self.extra_conf = extra_conf or {}
        self.api_port = free_port()
        self.endpoint = 'http://127.0.0.1:%d' % self.api_port
        self.processes = {}
        self.config_files = {}
        self._compute_started = {}
        self._libvirt = None
        # Whose services these are: a later Deployment stops them if this
        # process dies without stop() (see sweep_abandoned).
        with open(os.path.join(self.state_dir, OWNER_FILE), 'w') as owner:
            owner.write('%d\n' % os.getpid())

    # -- configuration ---------------------------------------------------
    def _write_config(self, name, host=None, extra_conf=None):
        conf = configparser.ConfigParser(interpolation=None)
        conf['DEFAULT'] = {
            'state_path': self.state_dir,
            'instances_path': os.path.join(self.state_dir, 'instances'),
            'log_file': os.path.join(self.state_dir, '%s.log' % name),
            'debug': 'true',
        }
        if self.transport_url:
            conf['DEFAULT']['transport_url'] = self.transport_url
        if host:
            conf['DEFAULT']['host'] = host
        conf['database'] = {'connection': self.database_url}
        conf['glance'] = {'api_endpoint': self.stack['GLANCE_URL']}
        if self.stack.get('CINDER_URL'):
            conf['cinder'] = {'api_endpoint': self.stack['CINDER_URL']}
        conf['api'] = {'auth_strategy': 'noauth', 'bind_host': '127.0.0.1',
                       'bind_port': str(self.api_port),
                       'response_validation': 'error'}
        conf['libvirt'] = {'connection_uri': self.stack.get(
            'LIBVIRT_URI', 'qemu:///system')}
        conf['oslo_messaging_notifications'] = {'driver': 'messagingv2'}
        for overrides in (self.extra_conf, extra_conf or {}):
            for section, values in overrides.items():
                if section not in conf:
                    conf[section] = {}
                for key, value in values.items():
                    conf[section][key] = str(value)
        path = os.path.join(self.state_dir, '%s.conf' % name)
        with open(path, 'w') as conf_file:
            conf.write(conf_file)
        self.config_files[name] = path
        return path

    # -- processes -------------------------------------------------------
    def _spawn(self, name, argv):
        out = open(os.path.join(self.state_dir, '%s.out' % name), 'ab')
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.processes[name] = proc
        return proc

    def start(self, timeout=60):
        sweep_abandoned(self.stack.get('LIBVIRT_URI', 'qemu:///system'))
        if self.all_in_one:
            conf = self._write_config('all', host=self.hosts[0])
            self._spawn('all', [_bin('nova-snapshot-all'), '--config-file', conf])
            self.processes['api'] = self.processes['compute-%s' % self.hosts[0]] = (
                self.processes['all'])
            self._wait_for_api(timeout)
            self.wait_for_compute(self.hosts[0], timeout)
            return self
        api_conf = self._write_config('api')
        subprocess.run([_bin('nova-snapshot-manage'), '--config-file', api_conf,
                        'db', 'sync'], check=True, capture_output=True)
        for host in self.hosts:
            self.start_compute(host)
        self._spawn('api', [_bin('nova-snapshot-api'), '--config-file', api_conf])
        self._wait_for_api(timeout)
        for host in self.hosts:
            self.wait_for_compute(host, timeout)
        return self

    def start_compute(self, host, extra_conf=None):
        """Start (or start again) the compute service of ``host``.

        ``extra_conf`` overrides options for this host only, e.g.
        ``{'libvirt': {'live_snapshot': False}}``.
        """
        # Naive UTC, as the services table stores it: a heartbeat after
        # this moment comes from the process started here.
        self._compute_started[host] = datetime.datetime.utcnow().replace(
            microsecond=0)
        conf = self._write_config('compute-%s' % host, host=host,
                                  extra_conf=extra_conf)
        return self._spawn('compute-%s' % host,
                           [_bin('nova-snapshot-compute'), '--config-file', conf])

    def stop_compute(self, host, sig=signal.SIGTERM):
        self._stop('compute-%s' % host, sig)

    def _wait_for_api(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive('api')
            try:
                if requests.get(self.endpoint + '/', timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise RuntimeError('nova-snapshot-api did not answer in %ss; see %s'
                           % (timeout, self.state_dir))

    def wait_for_compute(self, host, timeout=60):
        """Wait for a heartbeat from the compute process started last."""
        from nova_snapshot.db import api as db_api
        db = db_api.Database(self.database_url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive('compute-%s' % host)
            started = self._compute_started.get(host)
            if any(s['host'] == host and (started is None or (
                    s['last_seen_up'] and s['last_seen_up'] >= started))
                   for s in db.service_get_all('nova-snapshot-compute')):
                return
            time.sleep(0.2)
        raise RuntimeError('compute %s did not report in %ss' % (host, timeout))

    def _check_alive(self, name):
        proc = self.processes[name]
        if proc.poll() is not None:
            tail = self.log_tail(name)
            raise RuntimeError('%s exited with %s:\n%s' % (name, proc.returncode, tail))

    def log_tail(self, name, lines=40):
        path = os.path.join(self.state_dir, '%s.out' % name)
        log = os.path.join(self.state_dir, '%s.log' % name)
        text = ''
        for candidate in (path, log):
            if os.path.exists(candidate):
                with open(candidate, errors='replace') as handle:
                    text += ''.join(handle.readlines()[-lines:])
        return text

    def _stop(self, name, sig=signal.SIGTERM, timeout=20):
        proc = self.processes.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop(self, remove_state=True):
        for name in list(self.processes):
            self._stop(name)
        self._destroy_leftover_guests()
        if self._libvirt is not None:
            self._libvirt.close()
            self._libvirt = None
        if remove_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def _destroy_leftover_guests(self):
        """Remove guests this deployment's services left behind.

        A test that failed half-way, or a service killed on purpose, may
        leave domains running; they would eat the CPU of every later test.
        """
        destroy_guests(self.stack.get('LIBVIRT_URI', 'qemu:///system'),
                       self.state_dir)

    def domain(self, server_id):
        """The libvirt domain of a server this deployment booted."""
        if self._libvirt is None:
            self._libvirt = libvirt.open(
                self.stack.get('LIBVIRT_URI', 'qemu:///system'))
        return self._libvirt.lookupByName('instance-%s' % server_id)

    def client(self, user='demo', project=None):
        return ComputeClient(self.endpoint, user,
                             project or uuid.uuid4().hex)


class ComputeClient:
    """Just enough of a compute API client: what novaclient would send."""

    def __init__(self, endpoint, user, project, microversion='2.45'):
        self.endpoint = endpoint.rstrip('/') + '/v2.1'
        self.user = user
        self.project = project
        self.session = requests.Session()
        self.session.headers.update({
            'X-Auth-Token': '%s:%s' % (user, project),
            'Content-Type': 'application/json',
        })
        self.microversion = microversion

    def request(self, method, path, microversion=None, **kwargs):
        version = microversion or self.microversion
        headers = kwargs.pop('headers', {})
        headers.update({'OpenStack-API-Version': 'compute %s' % version,
                        'X-OpenStack-Nova-API-Version': version})
        return self.session.request(method, self.endpoint + path,
                                    headers=headers, timeout=120, **kwargs)

    def create_server(self, name, image_ref, flavor_ref='1', **extra):
        body = {'server': dict(name=name, imageRef=image_ref,
                               flavorRef=flavor_ref, networks='none', **extra)}
        resp = self.request('POST', '/servers', json=body)
        resp.raise_for_status()
        return resp.json()['server']

    def get_server(self, server_id):
        resp = self.request('GET', '/servers/%s' % server_id)
        resp.raise_for_status()
        return resp.json()['server']

    def action(self, server_id, body, microversion=None):
        return self.request('POST', '/servers/%s/action' % server_id,
                            microversion=microversion, json=body)

    def create_image(self, server_id, name, metadata=None, microversion=None):
        body = {'createImage': {'name': name, 'metadata': metadata or {}}}
        resp = self.action(server_id, body, microversion)
        resp.raise_for_status()
        if resp.content and 'image_id' in resp.json():
            return resp.json()['image_id']
        return resp.headers['Location'].rsplit('/', 1)[-1]

    def console(self, server_id, length=None):
        resp = self.action(server_id, {'os-getConsoleOutput': {'length': length}})
        resp.raise_for_status()
        return resp.json()['output']

    def delete_server(self, server_id):
        return self.request('DELETE', '/servers/%s' % server_id)

    def wait_for_server(self, server_id, status='ACTIVE', task_state=None,
                        timeout=120, interval=0.2):
        deadline = time.monotonic() + timeout
        while True:
            server = self.get_server(server_id)
            if (server['status'] == status
                    and server.get('OS-EXT-STS:task_state') == task_state):
                return server
            if server['status'] == 'ERROR' and status != 'ERROR':
                raise RuntimeError('server %s went to ERROR: %s'
                                   % (server_id, server.get('fault')))
            if time.monotonic() > deadline:
                raise RuntimeError('server %s is %s/%s after %ss, wanted %s/%s'
                                   % (server_id, server['status'],
                                      server.get('OS-EXT-STS:task_state'),
                                      timeout, status, task_state))
            time.sleep(interval)

    def wait_for_server_gone(self, server_id, timeout=60):
        deadline = time.monotonic() + timeout
        while self.request('GET', '/servers/%s' % server_id).status_code != 404:
            if time.monotonic() > deadline:
                raise RuntimeError('server %s still there after %ss'
                                   % (server_id, timeout))
            time.sleep(0.2)


def user_context(user, project, roles=('member', 'reader')):
    """A request context for talking to Glance as a tenant would."""
    from nova_snapshot import context
    return context.RequestContext(user_id=user, project_id=project,
                                  roles=list(roles))


def upload_tiny_guest(image_api, ctx, guest_dir, name='tiny-guest',
                      disk_path=None, command_line='console=ttyS0'):
    """Upload the test guest as Nova's AMI-style trio; return the disk image.

    The kernel and initramfs become ``aki``/``ari`` images and the root disk
    a qcow2 image whose ``kernel_id``/``ramdisk_id`` point at them, so the
    driver boots it by direct kernel boot.
    """
    def upload(image_name, path, disk_format, container_format, **props):
        image = image_api.create(ctx, dict(
            name=image_name, disk_format=disk_format,
            container_format=container_format, visibility='private', **props))
        with open(path, 'rb') as data:
            image_api.upload(ctx, image['id'], data,
                             size=os.path.getsize(path))
        return image_api.get(ctx, image['id'])

    kernel = upload(name + '-kernel', os.path.join(guest_dir, 'kernel'),
                    'aki', 'aki')
    ramdisk = upload(name + '-initramfs',
                     os.path.join(guest_dir, 'initramfs.gz'), 'ari', 'ari')
    return upload(name, disk_path or os.path.join(guest_dir, 'disk.qcow2'),
                  'qcow2', 'bare', kernel_id=kernel['id'],
                  ramdisk_id=ramdisk['id'], os_command_line=command_line)


def wait_for_image(image_api, ctx, image_id, status='active', timeout=300):
    deadline = time.monotonic() + timeout
    while True:
        image = image_api.get(ctx, image_id)
        if image['status'] == status:
            return image
        if image['status'] in ('killed', 'deleted', 'error'):
            raise RuntimeError('image %s is %s' % (image_id, image['status']))
        if time.monotonic() > deadline:
            raise RuntimeError('image %s is %s after %ss'
                               % (image_id, image['status'], timeout))
        time.sleep(0.2)


def wait_for_guest_agent(domain, timeout=60):
    """Return once the guest agent in ``domain`` answers a ping.

    The guest prints "qemu-ga started" before libvirt has seen it open the
    virtio-serial port; until then libvirt says the agent is not connected
    and a freeze would fall back to a pause. Under TCG on a busy machine
    that gap can be seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return libvirt_qemu.qemuAgentCommand(
                domain, '{"execute": "guest-ping"}', 10, 0)
        except libvirt.libvirtError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class BackgroundWatcher:
    """Runs ``self._run`` in a daemon thread for the ``with`` block."""

    def __init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        raise NotImplementedError

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class DomainStateWatcher(BackgroundWatcher):
    """Polls a libvirt domain's state every few ms in a thread.

    Records for how long the domain was not running (paused, or shut off
    by a managed save), which is what the guest experiences as a pause.
    """

    def __init__(self, domain, interval=0.002):
        self.domain = domain
        self.interval = interval
        self.not_running_seconds = 0.0
        self.states_seen = set()
        super().__init__()

    def _run(self):
        last = time.monotonic()
        while not self._stop.is_set():
            try:
                state = self.domain.state()[0]
            except libvirt.libvirtError:
                state = libvirt.VIR_DOMAIN_SHUTOFF
            now = time.monotonic()
            self.states_seen.add(state)
            if state != libvirt.VIR_DOMAIN_RUNNING:
                self.not_running_seconds += now - last
            last = now
            time.sleep(self.interval)


DOMAIN_STATE_NAMES = {
    libvirt.VIR_DOMAIN_RUNNING: 'running',
    libvirt.VIR_DOMAIN_PAUSED: 'paused',
    libvirt.VIR_DOMAIN_SHUTOFF: 'shut off',
    libvirt.VIR_DOMAIN_SHUTDOWN: 'shutting down',
    libvirt.VIR_DOMAIN_BLOCKED: 'blocked',
}


def console_log_path(domain):
    """Path of the file a domain's serial console writes to."""
    import xml.etree.ElementTree as ElementTree
    root = ElementTree.fromstring(domain.XMLDesc(0))
    source = root.find("./devices/serial[@type='file']/source")
    if source is None:
        raise RuntimeError('domain %s has no file-backed serial console'
                           % domain.name())
    return source.get('path')


class ConsoleTickWatcher(BackgroundWatcher):
    """Timestamps, on the host clock, each tick the guest prints.

    The guest prints ``nova-snapshot-guest: tick N`` (every tick when booted
    with ``nsguest.print_every=1``). The longest interval between two
    printed ticks is the longest time the guest could not make progress,
    which is what a guest experiences as a pause.
    """

    _TICK = re.compile(rb'nova-snapshot-guest: tick (\d+)')

    def __init__(self, log_path, interval=0.002):
        self.log_path = log_path
        self.interval = interval
        self.ticks = []
        super().__init__()

    def _run(self):
        with open(self.log_path, 'rb') as log:
            log.seek(0, os.SEEK_END)
            pending = b''
            while not self._stop.is_set():
                chunk = log.read()
                now = time.monotonic()
                if chunk:
                    pending += chunk
                    *lines, pending = pending.split(b'\n')
                    for line in lines:
                        match = self._TICK.search(line)
                        if match:
                            self.ticks.append((now, int(match.group(1))))
                else:
                    time.sleep(self.interval)

    def mark(self):
        return time.monotonic()

    def max_gap(self, start=None, end=None):
        """Longest host-time interval between consecutive printed ticks."""
        points = [t for t, _ in self.ticks
                  if (start is None or t >= start) and (end is None or t <= end)]
        gaps = [b - a for a, b in zip(points, points[1:])]
        return max(gaps) if gaps else None
