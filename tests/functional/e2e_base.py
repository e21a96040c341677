"""Shared set-up for the end-to-end createImage tests.

Every test here goes through the real path: HTTP to ``nova-snapshot-api``,
RabbitMQ to ``nova-snapshot-compute``, libvirtd + QEMU running the tiny
guest, and the real Glance. State is in a PostgreSQL database of its own.
"""

import os
import re
import subprocess
import time
import unittest
import uuid

import libvirt
import psycopg2

from tests.functional.fixtures import deployment
from tests.functional.fixtures import guest
from tests.functional.fixtures import stack
from nova_snapshot.image import glance

PG_ADMIN_DSN = 'host=127.0.0.1 user=postgres dbname=postgres'
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
            cls.proxy = glance_proxy.GlanceProxy(cls.stack['GLANCE_URL']).start()
            extra.setdefault('glance', {})['api_endpoint'] = cls.proxy.url
        cls.hosts = ['e2e-%s-%d' % (uuid.uuid4().hex[:8], n)
                     for n in range(cls.host_count)]
        cls.deployment = deployment.Deployment(
            stack_env=cls.stack, hosts=cls.hosts, database_url=db_url,
            extra_conf=extra, all_in_one=cls.all_in_one)
        try:
            cls.deployment.start()
        except Exception:
            cls.deployment.stop(remove_state=False)
            if cls.db_name:
                drop_pg_database(cls.db_name)
            raise
        cls.project = uuid.uuid4().hex
        cls.user = 'e2e-user'
        cls.client = cls.deployment.client(cls.user, cls.project)
        cls.ctx = guest.user_context(cls.user, cls.project)
        conf = _glance_conf(cls.stack['GLANCE_URL'])
        cls.image_api = glance.GlanceAPI(conf)
        cls.base_image = guest.upload_tiny_guest(
            cls.image_api, cls.ctx, cls.guest_dir,
            name='e2e-guest-%s' % uuid.uuid4().hex[:6])
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
        super().tearDownClass()

    # -- helpers ---------------------------------------------------------
    def listen_for_notifications(self):
        """Start a listener on this class's topic; returns the list it fills.

        The queue exists once the listener starts, so start it before the
        action whose notifications the test wants to see.
        """
        import oslo_messaging
        from oslo_config import cfg

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


def _glance_conf(glance_url):
    from nova_snapshot import conf as ns_conf
    conf = ns_conf.new_conf([])
    conf.set_override('api_endpoint', glance_url, group='glance')
    conf.set_override('auth_mode', 'identity_headers', group='glance')
    return conf
