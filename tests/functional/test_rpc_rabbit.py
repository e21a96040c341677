"""Compute RPC over the real RabbitMQ: routing by host, casts and a call.

Two compute services with different host names run in this process (fake
driver, SQLite, in-memory Glance); the API side talks to them through its
own connection. Fails, never skips, when RabbitMQ is not reachable.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import unittest
import uuid

from nova_snapshot.compute import api as compute_api
from nova_snapshot.compute import rpcapi as compute_rpcapi
from nova_snapshot import exception
from nova_snapshot import rpc
from nova_snapshot import service
from nova_snapshot.virt import fake as fake_virt
from tests.unit.compute import fakes

VHOST = 'nova_snapshot_test'
TRANSPORT_URL = os.environ.get(
    'NOVA_SNAPSHOT_TEST_TRANSPORT_URL',
    'rabbit://guest:guest@127.0.0.1:5672/%s' % VHOST)


def ensure_vhost(vhost=VHOST):
    """Create the test vhost (and guest's rights) if it is missing."""
    try:
        listing = subprocess.run(['rabbitmqctl', '-q', 'list_vhosts'],
                                 capture_output=True, text=True, timeout=60,
                                 check=True).stdout.split()
    except (OSError, subprocess.SubprocessError) as exc:
        raise AssertionError('rabbitmqctl failed (is RabbitMQ running? '
                             'rabbitmq-server -detached): %s' % exc)
    if vhost in listing:
        return
    subprocess.run(['rabbitmqctl', 'add_vhost', vhost], check=True,
                   capture_output=True, timeout=60)
    subprocess.run(['rabbitmqctl', 'set_permissions', '-p', vhost, 'guest',
                    '.*', '.*', '.*'], check=True, capture_output=True,
                   timeout=60)


def check_broker(host='127.0.0.1', port=5672):
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        raise AssertionError('RabbitMQ is not listening on %s:%d: %s'
                             % (host, port, exc))


class TwoHostsOverRabbitTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        check_broker()
        ensure_vhost()

    def setUp(self):
        super().setUp()
        # Unique host names: queues on a shared vhost never collide with
        # another run or with a deployment using the same broker.
        suffix = uuid.uuid4().hex[:8]
        self.host_a, self.host_b = 'func-a-' + suffix, 'func-b-' + suffix
        self.conf = fakes.make_conf()
        self.conf.set_override('transport_url', TRANSPORT_URL)
        # Notifications are not under test here; do not pile them up in a
        # queue nobody reads.
        self.conf.set_override('driver', ['noop'],
                               group='oslo_messaging_notifications')
        tmpdir = tempfile.mkdtemp(prefix='nova-snapshot-rpc-')
        self.addCleanup(shutil.rmtree, tmpdir, True)
        self.db = fakes.RecordingDatabase(
            'sqlite:///%s' % os.path.join(tmpdir, 'state.sqlite'))
        self.db.create_schema()
        self.addCleanup(self.db.dispose)
        self.image_api = fakes.FakeImageAPI()
        self.base = self.image_api.add_image(name='base', min_ram=0)

        self.drivers = {}
        self.services = {}
        for host in (self.host_a, self.host_b):
            driver = fake_virt.FakeDriver(self.conf, self.image_api)
            # Each service opens its own connection (transport=None), as
            # separate processes would.
            svc = service.ComputeService(
                self.conf, host=host, db=self.db, image_api=self.image_api,
                driver=driver, heartbeat_interval=1)
            svc.start()
            self.addCleanup(svc.stop)
            self.drivers[host] = driver
            self.services[host] = svc

        transport = rpc.get_transport(self.conf)
        self.addCleanup(transport.cleanup)
        self.api = compute_api.ComputeAPI(
            self.conf, self.db, self.image_api,
            compute_rpcapi.ComputeRPCAPI(transport))
        self.ctx = fakes.ComputeTestCase.user_context()

    def _boot_on(self, host):
        self.conf.set_override('default_schedule_host', host, 'compute')
        instance = self.api.create(self.ctx, 'vm-' + host, self.base['id'],
                                   '1')
        self.assertEqual(host, instance['host'])
        return self._wait_idle(instance['uuid'], 'active')

    def _wait_idle(self, uuid_, vm_state):
        def check():
            instance = self.db.instance_get(uuid_)
            if instance['task_state'] is None and \
                    instance['vm_state'] == vm_state:
                return instance
            return None
        return fakes.wait_for(check, timeout=30,
                              message='%s %s' % (uuid_, vm_state))

    def _calls(self, host):
        return list(self.drivers[host].calls)

    def test_casts_reach_only_the_instance_host(self):
        a = self._boot_on(self.host_a)
        b = self._boot_on(self.host_b)
        self.assertEqual([('spawn', a['uuid'])], self._calls(self.host_a))
        self.assertEqual([('spawn', b['uuid'])], self._calls(self.host_b))

        self.api.stop(self.ctx, a)
        self._wait_idle(a['uuid'], 'stopped')
        image = self.api.snapshot(self.ctx, b, 'snap-b', {})
        self._wait_idle(b['uuid'], 'active')
        for svc in self.services.values():
            self.assertTrue(svc.manager.wait_for_tasks(30))

        self.assertEqual([('spawn', a['uuid']), ('power_off', a['uuid'])],
                         self._calls(self.host_a))
        self.assertEqual([('spawn', b['uuid']), ('snapshot', b['uuid'])],
                         self._calls(self.host_b))
        self.assertEqual('active',
                         self.image_api.get(self.ctx, image['id'])['status'])

    def test_console_call_round_trip(self):
        a = self._boot_on(self.host_a)
        b = self._boot_on(self.host_b)
        self.drivers[self.host_a].consoles[a['uuid']] = 'A1\nA2\nA3'
        self.drivers[self.host_b].consoles[b['uuid']] = 'B1\nB2'
        self.assertEqual('A2\nA3', self.api.get_console_output(
            self.ctx, a, length=2))
        self.assertEqual('B1\nB2', self.api.get_console_output(self.ctx, b))
        # A business error comes back as itself, not as a RemoteError.
        self.drivers[self.host_b].instances.pop(b['uuid'])
        with self.assertRaises(exception.InstanceNotFound):
            self.api.get_console_output(self.ctx, b)

    def test_heartbeats_registered(self):
        hosts = {s['host'] for s in self.db.service_get_all(
            compute_rpcapi.TOPIC)}
        self.assertLessEqual({self.host_a, self.host_b}, hosts)
