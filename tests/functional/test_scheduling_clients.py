"""The unmodified ``openstack`` client, from the stack's clouds.yaml, drives
os-services, forced hosts and multiple create (``--min``/``--max``) on a
Keystone deployment of two fake-driver compute hosts.

The deployment listens on a free port, so the clouds are copied with
openstacksdk's ``compute_endpoint_override`` naming it (the catalog's
compute port may be another test's deployment).
"""

import json
import os
import shutil
import subprocess
import tempfile
import unittest
import uuid

import yaml

from tests.functional.fixtures import deployment
from tests.functional.fixtures import stack as stack_fixture

BINARY = 'nova-snapshot-compute'


def _clouds_pointing_at(source, compute_url, directory):
    """A copy of ``source`` (clouds.yaml) whose clouds use ``compute_url``
    for the compute service; readable by this user only."""
    with open(source) as original:
        clouds = yaml.safe_load(original)
    for cloud in clouds['clouds'].values():
        cloud['compute_endpoint_override'] = compute_url
    path = os.path.join(directory, 'clouds.yaml')
    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), 'w') as copy:
        yaml.safe_dump(clouds, copy)
    return path


class OpenStackClientSchedulingTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.stack = stack_fixture.read_stack_env()
        suffix = uuid.uuid4().hex[:6]
        cls.hosts = ['osc-a-%s' % suffix, 'osc-b-%s' % suffix]
        cls.deployment = deployment.Deployment(
            stack_env=cls.stack, hosts=cls.hosts, keystone=True,
            extra_conf={'compute': {'compute_driver': 'fake'}})
        try:
            cls.deployment.start()
        except Exception:
            cls.deployment.stop()
            raise
        cls.tmp = tempfile.mkdtemp(prefix='nova-snapshot-osc-')
        cls.clouds = _clouds_pointing_at(
            cls.stack['CLOUDS_YAML'], cls.deployment.endpoint + '/v2.1',
            cls.tmp)
        cls.image_name = 'sched-osc-%s' % suffix
        with tempfile.NamedTemporaryFile(suffix='.raw') as data:
            data.write(b'\0' * 4096)
            data.flush()
            cls.openstack('image', 'create', '--file', data.name,
                          '--disk-format', 'raw', '--container-format',
                          'bare', '--public', cls.image_name)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.openstack('image', 'delete', cls.image_name)
        finally:
            cls.deployment.stop()
            shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    @classmethod
    def openstack(cls, *args, cloud='admin', check=True):
        env = dict(os.environ, OS_CLIENT_CONFIG_FILE=cls.clouds)
        for key in list(env):
            if key.startswith('OS_') and key != 'OS_CLIENT_CONFIG_FILE':
                del env[key]
        cmd = [os.path.join(cls.stack['CLIENTS_VENV'], 'bin', 'openstack'),
               '--os-cloud', cloud, '--os-compute-api-version', '2.45']
        proc = subprocess.run(cmd + list(args), env=env, capture_output=True,
                              text=True, timeout=180)
        if check and proc.returncode != 0:
            raise AssertionError('openstack %s: %s' % (' '.join(args),
                                                       proc.stderr))
        return proc

    def _services(self):
        out = self.openstack('compute', 'service', 'list', '--long',
                             '-f', 'json').stdout
        return {s['Host']: s for s in json.loads(out)
                if s['Host'] in self.hosts}

    def test_service_list_disable_enable(self):
        services = self._services()
        self.assertEqual(set(self.hosts), set(services))
        for service in services.values():
            self.assertEqual((BINARY, 'nova', 'enabled', 'up'), (
                service['Binary'], service['Zone'], service['Status'],
                service['State']))
        self.openstack('compute', 'service', 'set', '--disable',
                       '--disable-reason', 'client test', self.hosts[0],
                       BINARY)
        service = self._services()[self.hosts[0]]
        self.assertEqual(('disabled', 'client test'), (
            service['Status'], service['Disabled Reason']))
        self.openstack('compute', 'service', 'set', '--enable',
                       self.hosts[0], BINARY)
        self.assertEqual('enabled', self._services()[self.hosts[0]]['Status'])
        # A member may not look.
        denied = self.openstack('compute', 'service', 'list', cloud='demo',
                                check=False)
        self.assertNotEqual(0, denied.returncode)
        self.assertIn('403', denied.stderr)

    def test_admin_forces_a_host(self):
        for host in self.hosts:
            name = 'forced-%s' % host
            out = self.openstack(
                'server', 'create', '--image', self.image_name, '--flavor',
                '1', '--nic', 'none', '--availability-zone', 'nova:' + host,
                '--wait', '-f', 'json', name).stdout
            self.addCleanup(self.openstack, 'server', 'delete', '--wait',
                            name)
            server = json.loads(out)
            self.assertEqual(('ACTIVE', host), (
                server['status'], server['OS-EXT-SRV-ATTR:host']))
        denied = self.openstack(
            'server', 'create', '--image', self.image_name, '--flavor', '1',
            '--nic', 'none', '--availability-zone', 'nova:' + self.hosts[0],
            'not-allowed', cloud='demo', check=False)
        self.assertNotEqual(0, denied.returncode)
        self.assertIn('403', denied.stderr)

    def test_multiple_create(self):
        # openstack server create --min/--max: Nova's min_count/max_count;
        # the servers are named -1, -2 and listed by the client.
        name = 'multi-%s' % uuid.uuid4().hex[:6]
        out = self.openstack(
            'server', 'create', '--image', self.image_name, '--flavor', '1',
            '--nic', 'none', '--min', '2', '--max', '3', '--wait', '-f',
            'json', name, cloud='demo').stdout
        first = json.loads(out)
        listed = json.loads(self.openstack(
            'server', 'list', '--name', '^%s-' % name, '-f', 'json',
            cloud='demo').stdout)
        for server in listed:
            self.addCleanup(self.openstack, 'server', 'delete', '--wait',
                            server['ID'], cloud='demo')
        self.assertEqual(['%s-%d' % (name, n) for n in (1, 2, 3)],
                         sorted(s['Name'] for s in listed))
        self.assertIn(first['id'], [s['ID'] for s in listed])
        self.assertEqual('ACTIVE', first['status'])
        # min above max is the client's or Nova's 400; nothing is made.
        refused = self.openstack(
            'server', 'create', '--image', self.image_name, '--flavor', '1',
            '--nic', 'none', '--min', '3', '--max', '2', name + 'x',
            cloud='demo', check=False)
        self.assertNotEqual(0, refused.returncode)
        self.assertEqual([], json.loads(self.openstack(
            'server', 'list', '--name', '^%sx' % name, '-f', 'json',
            cloud='demo').stdout))
