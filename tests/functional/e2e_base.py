"""Shared set-up for the end-to-end createImage tests.

Every test here goes through the real path: HTTP to ``nova-snapshot-api``,
RabbitMQ to ``nova-snapshot-compute``, libvirtd + QEMU running the tiny
guest, and the real Glance. State is in a PostgreSQL database of its own.

By default a class runs as a cloud does (``keystone = True``): the API
validates the stack's Keystone tokens, the tests act as the Keystone user
``demo`` (its token on every request), and images go through the
Keystone-mode Glance found in demo's catalog. A class that sets
``keystone = False`` runs the development set-up instead (noauth API,
identity headers to the noauth Glance, a random project); a few do, so that
mode keeps working.
"""

import os
import re
import subprocess
import time
import unittest
import uuid

import libvirt
import psycopg2

from nova_snapshot.image import glance
from tests.functional.fixtures import client as client_fixture
from tests.functional.fixtures import deployment
from tests.functional.fixtures import guest
from tests.functional.fixtures import keystone as keystone_fixture
from tests.functional.fixtures import stack

PG_ADMIN_DSN = 'host=127.0.0.1 user=postgres dbname=postgres'
# no_timer_check: on a loaded host a TCG guest's kernel can find its timer
# interrupt "not working" at boot and panic; virtual machines skip that check.
GUEST_COMMAND_LINE = 'console=ttyS0 no_timer_check'
SECTOR = 512


def create_pg_database():
    """Create an empty database for one test class; return (name, url)."""
    name = 'nova_snapshot_e2e_%s' % uuid.uuid4().hex[:12]
    conn = psycopg2.connect(PG_ADMIN_DSN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute('CREATE DATABASE %s' % name)
    conn.close()
    return name, 'postgresql+psycopg2://postgres@127.0.0.1:5432/%s' % name


def drop_pg_database(name):
    conn = psycopg2.connect(PG_ADMIN_DSN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute('DROP DATABASE IF EXISTS %s WITH (FORCE)' % name)
    conn.close()


def read_tick(raw_disk_bytes):
    """The tick the guest stored in sector 1 of its disk, or None."""
    sector = raw_disk_bytes[SECTOR:2 * SECTOR]
    match = re.match(rb'tick (\d+)', sector)
    return int(match.group(1)) if match else None


def qcow2_to_raw(path, raw_path):
    subprocess.run(['qemu-img', 'convert', '-U', '-f', 'qcow2', '-O', 'raw',
                    path, raw_path], check=True)


class EndToEndTestCase(unittest.TestCase):
    """Starts one deployment per test class and the tiny guest image."""

    # Host names are unique per class: two deployments on one broker whose
    # computes share a name would take each other's casts.
    host_count = 1
    # True: one nova-snapshot-all process with in-memory RPC and SQLite.
    all_in_one = False
    extra_conf = {}
    glance_through_proxy = False
    # Keystone tokens at the API and Keystone-mode Glance/Cinder; False:
    # the development noauth set-up.
    keystone = True
    # The stack's Keystone user the tests act as (keystone mode).
    keystone_user = 'demo'
    # True: a Keystone project of the class's own with one member user,
    # made as admin and deleted afterwards, for tests that assert on a
    # whole project's volumes, snapshots or quotas (demo's is shared).
    keystone_own_project = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.stack = stack.read_stack_env()
        cls.guest_dir = cls.stack['GUEST_DIR']
        cls.db_name, db_url = None, None
        if not cls.all_in_one:
            cls.db_name, db_url = create_pg_database()
        extra = {k: dict(v) for k, v in cls.extra_conf.items()}
        # Notifications on a topic of this class's own, so a listener here
        # never competes with another deployment's for the same queue.
        cls.notification_topic = 'notifications-%s' % uuid.uuid4().hex[:8]
        extra.setdefault('oslo_messaging_notifications', {})['topics'] = (
            cls.notification_topic)
        cls.proxy = None
        if cls.glance_through_proxy:
            from tests.functional import glance_proxy
            glance_url = cls.stack[
                'KEYSTONE_GLANCE_URL' if cls.keystone else 'GLANCE_URL']
            cls.proxy = glance_proxy.GlanceProxy(glance_url).start()
            # Keystone mode: the proxy instead of the catalog's Glance.
            extra.setdefault('glance', {})[
                'endpoint_override' if cls.keystone else 'api_endpoint'] = (
                    cls.proxy.url)
        cls.hosts = ['e2e-%s-%d' % (uuid.uuid4().hex[:8], n)
                     for n in range(cls.host_count)]
        cls.deployment = deployment.Deployment(
            stack_env=cls.stack, hosts=cls.hosts, database_url=db_url,
            extra_conf=extra, all_in_one=cls.all_in_one,
            keystone=cls.keystone)
        try:
            cls.deployment.start()
        except Exception:
            cls.deployment.stop(remove_state=False)
            if cls.db_name:
                drop_pg_database(cls.db_name)
            raise
        cls.own_project = None
        if cls.keystone:
            if cls.keystone_own_project:
                cls.own_project = KeystoneProject(cls.stack, 'e2e').create()
                session = cls.own_project.session()
            else:
                session = keystone_fixture.session(cls.stack,
                                                   cls.keystone_user)
            cls.client = client_fixture.ComputeClient(
                cls.deployment.endpoint, auth=session)
            cls.project, cls.user = cls.client.project, cls.client.user
            cls.ctx = context_of(session)
            cls.admin_ctx = keystone_fixture.user_context(cls.stack, 'admin')
            cls.image_api = glance.GlanceAPI(keystone_user_conf(cls.stack))
        else:
            cls.project = uuid.uuid4().hex
            cls.user = 'e2e-user'
            cls.client = cls.deployment.client(cls.user, cls.project)
            cls.ctx = guest.user_context(cls.user, cls.project)
            # Cinder without Keystone takes everybody as an admin.
            cls.admin_ctx = cls.ctx
            cls.image_api = glance.GlanceAPI(
                _glance_conf(cls.stack['GLANCE_URL']))
        cls.base_image = guest.upload_tiny_guest(
            cls.image_api, cls.ctx, cls.guest_dir,
            name='e2e-guest-%s' % uuid.uuid4().hex[:6],
            command_line=GUEST_COMMAND_LINE)
        cls.libvirt = libvirt.open(cls.stack.get('LIBVIRT_URI', 'qemu:///system'))

    @classmethod
    def tearDownClass(cls):
        try:
            for server in cls.client.request('GET', '/servers').json().get(
                    'servers', []):
                cls.client.delete_server(server['id'])
                try:
                    cls.client.wait_for_server_gone(server['id'])
                except RuntimeError:
                    pass
        finally:
            cls.deployment.stop(
                remove_state=not os.environ.get('NOVA_SNAPSHOT_KEEP_STATE'))
            if cls.db_name:
                drop_pg_database(cls.db_name)
            if cls.proxy:
                cls.proxy.stop()
            cls.libvirt.close()
            for image_id in (cls.base_image['id'], cls.base_image['kernel_id'],
                             cls.base_image['ramdisk_id']):
                try:
                    cls.image_api.delete(cls.ctx, image_id)
                except Exception:
                    pass
            cls.release_project()
        super().tearDownClass()

    @classmethod
    def release_project(cls):
        """Delete the class's own Keystone project, if it has one (what it
        still holds in Glance and Cinder is for the class to delete
        first)."""
        if cls.own_project is not None:
            cls.own_project.delete()

    # -- helpers ---------------------------------------------------------
    def admin_client(self):
        """A client of the cloud's admin: the Keystone ``admin`` user, or
        the noauth ``admin`` user in this class's project."""
        if self.keystone:
            return keystone_client(self.deployment, self.stack, 'admin')
        return self.deployment.client('admin', self.project)

    def listen_for_notifications(self):
        """Start a listener on this class's topic; returns the list it fills.

        The queue exists once the listener starts, so start it before the
        action whose notifications the test wants to see.
        """
        from oslo_config import cfg
        import oslo_messaging

        received = []

        class Endpoint:
            def info(self, ctxt, publisher_id, event_type, payload, metadata):
                received.append(('INFO', publisher_id, event_type, payload))

            def error(self, ctxt, publisher_id, event_type, payload, metadata):
                received.append(('ERROR', publisher_id, event_type, payload))

        transport = oslo_messaging.get_notification_transport(
            cfg.ConfigOpts(), url=self.stack['TRANSPORT_URL'])
        listener = oslo_messaging.get_notification_listener(
            transport, [oslo_messaging.Target(topic=self.notification_topic)],
            [Endpoint()], executor='threading')
        listener.start()

        def stop():
            listener.stop()
            listener.wait()
            transport.cleanup()
        self.addCleanup(stop)
        return received

    def boot(self, name='e2e', image_id=None, wait_for_ticks=True):
        server = self.client.create_server(
            name, image_id or self.base_image['id'], flavor_ref='2')
        self.addCleanup(self._delete_server, server['id'])
        server = self.client.wait_for_server(server['id'], timeout=120)
        if wait_for_ticks:
            self.wait_for_console(server['id'], r'nova-snapshot-guest: tick \d+')
        return server

    def latest_tick(self, server_id):
        ticks = re.findall(r'nova-snapshot-guest: tick (\d+)',
                           self.client.console(server_id))
        return max(map(int, ticks)) if ticks else -1

    def assert_still_ticking(self, server_id, timeout=30):
        before = self.latest_tick(server_id)
        deadline = time.monotonic() + timeout
        while self.latest_tick(server_id) <= before:
            self.assertLess(time.monotonic(), deadline,
                            'the guest stopped counting')
            time.sleep(0.3)

    def _delete_server(self, server_id):
        self.client.delete_server(server_id)
        self.client.wait_for_server_gone(server_id, timeout=60)

    def wait_for_console(self, server_id, pattern, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            output = self.client.console(server_id)
            match = re.search(pattern, output)
            if match:
                return match, output
            if time.monotonic() > deadline:
                self.fail('console of %s never showed %r; it has:\n%s'
                          % (server_id, pattern, output[-2000:]))
            time.sleep(0.2)

    def domain(self, server_id):
        return self.libvirt.lookupByName('instance-%s' % server_id)

    def wait_for_agent(self, server_id):
        """The guest agent started and libvirt can talk to it."""
        self.wait_for_console(server_id, 'qemu-ga started', timeout=120)
        guest.wait_for_guest_agent(self.domain(server_id))

    def instance_disk(self, server_id):
        return os.path.join(self.deployment.state_dir, 'instances', server_id,
                            'disk')

    def wait_for_image(self, image_id, timeout=300):
        return guest.wait_for_image(self.image_api, self.ctx, image_id,
                                    timeout=timeout)

    def download_raw(self, image_id):
        """Download an image from Glance and return its raw bytes."""
        workdir = self.deployment.state_dir
        qcow = os.path.join(workdir, '%s.download' % image_id)
        raw = os.path.join(workdir, '%s.raw' % image_id)
        self.image_api.download(self.ctx, image_id, qcow)
        image = self.image_api.get(self.ctx, image_id)
        if image['disk_format'] == 'qcow2':
            qcow2_to_raw(qcow, raw)
        else:
            os.replace(qcow, raw)
        with open(raw, 'rb') as handle:
            data = handle.read()
        for path in (qcow, raw):
            if os.path.exists(path):
                os.unlink(path)
        return data

    def snapshot_and_wait(self, server_id, name='snap', metadata=None):
        image_id = self.client.create_image(server_id, name, metadata)
        self.addCleanup(self._delete_image, image_id)
        image = self.wait_for_image(image_id)
        self.client.wait_for_server(server_id, status=self.client.get_server(
            server_id)['status'], task_state=None, timeout=120)
        return image

    def _delete_image(self, image_id):
        try:
            self.image_api.delete(self.ctx, image_id)
        except Exception:
            pass


class KeystoneProject:
    """A project with one member user, made through Keystone's API by the
    stack's admin: real tokens and roles, nobody else's resources."""

    def __init__(self, stack_env, prefix):
        self.stack = stack_env
        self.name = '%s-%s' % (prefix, uuid.uuid4().hex[:10])
        self.password = uuid.uuid4().hex
        self.admin = keystone_fixture.session(stack_env, 'admin')
        self.url = stack_env['KEYSTONE_URL'].rstrip('/')
        self.project_id = self.user_id = None

    def _call(self, method, path, **kwargs):
        return self.admin.request(self.url + path, method, raise_exc=True,
                                  **kwargs)

    def create(self):
        self.project_id = self._call('POST', '/projects', json={'project': {
            'name': self.name, 'domain_id': 'default',
            'description': 'nova-snapshot functional tests'}}).json()[
                'project']['id']
        self.user_id = self._call('POST', '/users', json={'user': {
            'name': self.name, 'domain_id': 'default',
            'password': self.password,
            'default_project_id': self.project_id}}).json()['user']['id']
        member = self._call('GET', '/roles?name=member').json()['roles'][0]
        self._call('PUT', '/projects/%s/users/%s/roles/%s' % (
            self.project_id, self.user_id, member['id']))
        return self

    def session(self):
        from keystoneauth1.identity import v3
        from keystoneauth1 import session as ksa_session
        return ksa_session.Session(auth=v3.Password(
            auth_url=self.stack['KEYSTONE_URL'], user_id=self.user_id,
            password=self.password, project_id=self.project_id), timeout=30)

    def delete(self):
        for path in ('/users/%s' % self.user_id,
                     '/projects/%s' % self.project_id):
            try:
                self._call('DELETE', path)
            except Exception:
                pass


def context_of(session):
    """A RequestContext as the API builds it from ``session``'s token."""
    from nova_snapshot import context
    access = session.auth.get_access(session)
    return context.RequestContext(
        user_id=access.user_id, project_id=access.project_id,
        roles=list(access.role_names), auth_token=access.auth_token,
        service_catalog=keystone_fixture.v2_catalog(access))


def keystone_client(deployment_, stack_env, who):
    """A ComputeClient of ``deployment_`` acting as the stack's Keystone
    user ``who``; its session renews the token when it expires."""
    return client_fixture.ComputeClient(
        deployment_.endpoint, auth=keystone_fixture.session(stack_env, who))


def keystone_user_conf(stack_env):
    """Glance and Cinder as a user of the cloud reaches them: endpoints
    from the caller's catalog (public, the stack's region), the caller's
    token and nothing else."""
    from nova_snapshot import conf as ns_conf
    conf = ns_conf.new_conf([])
    for group in ('glance', 'cinder'):
        conf.set_override('auth_mode', 'keystone', group=group)
        conf.set_override('region_name', stack_env.get(
            'KEYSTONE_REGION', 'RegionOne'), group=group)
        conf.set_override('valid_interfaces', ['public'], group=group)
    return conf


def _glance_conf(glance_url):
    from nova_snapshot import conf as ns_conf
    conf = ns_conf.new_conf([])
    conf.set_override('api_endpoint', glance_url, group='glance')
    conf.set_override('auth_mode', 'identity_headers', group='glance')
    return conf
