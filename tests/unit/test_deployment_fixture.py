"""deployment.sweep_abandoned: what a killed test run leaves is stopped later."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

from tests.functional.fixtures import deployment


class SweepAbandonedTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='ns-sweep-test-')
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def state_dir(self, owner_pid):
        path = tempfile.mkdtemp(prefix=deployment.STATE_PREFIX, dir=self.tmp)
        with open(os.path.join(path, deployment.OWNER_FILE), 'w') as owner:
            owner.write('%d\n' % owner_pid)
        return path

    def service(self, state_dir):
        """A stand-in for a service: its argv names a config in the dir."""
        proc = subprocess.Popen(
            [sys.executable, '-c', 'import time; time.sleep(120)',
             '--config-file', os.path.join(state_dir, 'compute-x.conf')],
            start_new_session=True)
        self.addCleanup(self._kill, proc)
        return proc

    def _kill(self, proc):
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def dead_pid(self):
        proc = subprocess.Popen(['true'])
        proc.wait()
        return proc.pid

    def test_services_of_a_dead_owner_are_stopped_once(self):
        abandoned = self.state_dir(self.dead_pid())
        orphan = self.service(abandoned)
        alive = self.state_dir(os.getpid())
        kept = self.service(alive)
        not_ours = self.service(self.tmp)   # no owner file around it

        swept = deployment.sweep_abandoned('test:///default', tmp_dir=self.tmp)

        self.assertEqual([abandoned], swept)
        self.assertEqual(-signal.SIGKILL, orphan.wait(timeout=10))
        self.assertIsNone(kept.poll())
        self.assertIsNone(not_ours.poll())
        # The logs stay; the owner file goes, so the next sweep skips it.
        self.assertTrue(os.path.isdir(abandoned))
        self.assertFalse(os.path.exists(
            os.path.join(abandoned, deployment.OWNER_FILE)))
        self.assertEqual([], deployment.sweep_abandoned('test:///default',
                                                        tmp_dir=self.tmp))


STACK = {
    'GLANCE_URL': 'http://127.0.0.1:9292', 'CINDER_URL': 'http://c:8776/v3',
    'TRANSPORT_URL': 'rabbit://x', 'KEYSTONE_URL': 'http://k:5000/v3',
    'KEYSTONE_REGION': 'RegionOne', 'NOVA_SNAPSHOT_SERVICE_USER': 'svc',
    'NOVA_SNAPSHOT_SERVICE_PASSWORD': 'svc-pass',
}


class DeploymentConfigTest(unittest.TestCase):
    """The config files a Deployment writes load into our options."""

    def load(self, **kwargs):
        from keystoneauth1 import loading as ks_loading

        from nova_snapshot import conf as ns_conf
        state = tempfile.mkdtemp(prefix='ns-deploy-conf-')
        self.addCleanup(shutil.rmtree, state, True)
        dep = deployment.Deployment(stack_env=STACK, state_dir=state,
                                    **kwargs)
        path = dep._write_config('api')
        conf = ns_conf.new_conf(['--config-file', path])
        return dep, conf, ks_loading

    def test_development_modes_are_explicit(self):
        dep, conf, _ = self.load()
        self.assertEqual('noauth', conf.api.auth_strategy)
        self.assertEqual('identity_headers', conf.glance.auth_mode)
        self.assertEqual('http://127.0.0.1:9292', conf.glance.api_endpoint)
        self.assertEqual('noauth', conf.cinder.auth_mode)
        self.assertNotEqual(8774, dep.api_port)

    def test_keystone_mode(self):
        dep, conf, ks_loading = self.load(keystone=True, api_port=8774)
        self.assertEqual(8774, dep.api_port)
        self.assertEqual(str(8774), str(conf.api.bind_port))
        self.assertEqual('keystone', conf.api.auth_strategy)
        for group in ('glance', 'cinder'):
            self.assertEqual('keystone', conf[group].auth_mode)
            self.assertIsNone(conf[group].api_endpoint)   # the catalog's
            self.assertEqual(['public'], conf[group].valid_interfaces)
        self.assertTrue(conf.service_user.send_service_user_token)
        auth = ks_loading.load_auth_from_conf_options(conf, 'service_user')
        self.assertEqual('http://k:5000/v3', auth.auth_url)
        self.assertEqual('svc', conf.service_user.username)


class UwsgiIniTest(unittest.TestCase):
    """A uWSGI deployment serves the shipped ini, with only the address,
    config file, log and virtualenv of its own."""

    def test_shipped_ini_with_local_paths(self):
        tmp = tempfile.mkdtemp(prefix='ns-uwsgi-ini-')
        self.addCleanup(shutil.rmtree, tmp, True)
        path = deployment.write_uwsgi_ini(
            os.path.join(tmp, 'api.ini'), 18774, '/x/api.conf', '/x/api.log')
        with open(path) as ini:
            lines = [line.strip() for line in ini]
        with open(deployment.SHIPPED_UWSGI_INI) as shipped:
            shipped_lines = [line.strip() for line in shipped]

        def values(key, among):
            return [line.split('=', 1)[1].strip() for line in among
                    if line.split('=', 1)[0].strip() == key]

        self.assertEqual(['127.0.0.1:18774'], values('http-socket', lines))
        self.assertEqual(['NOVA_SNAPSHOT_CONFIG_FILE=/x/api.conf'],
                         values('env', lines))
        self.assertEqual(['/x/api.log'], values('logto', lines))
        self.assertEqual([sys.prefix], values('virtualenv', lines))
        # The sizing and behaviour the operator gets are kept as shipped.
        for key in ('processes', 'threads', 'listen', 'lazy-apps',
                    'die-on-term', 'buffer-size', 'add-header', 'module'):
            self.assertEqual(values(key, shipped_lines), values(key, lines),
                             key)
            self.assertTrue(values(key, lines), key)
