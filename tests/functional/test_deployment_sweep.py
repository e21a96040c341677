"""A test run killed with SIGKILL leaves its services and guests running
(they run in sessions of their own); the next Deployment stops them.

Real libvirt/QEMU, Glance and RabbitMQ: a child process starts a
deployment, boots the tiny guest and is then killed.
"""

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import libvirt

from nova_snapshot.image import glance
from tests.functional import base
from tests.functional import e2e_base
from tests.functional.fixtures import deployment
from tests.functional.fixtures import guest
from tests.functional.fixtures import stack

_CHILD = r'''
import json, sys, tempfile, uuid
from nova_snapshot import conf as ns_conf
from nova_snapshot.image import glance
from tests.functional.fixtures import deployment, guest, stack
stack_env = stack.read_stack_env()
conf = ns_conf.new_conf([])
conf.set_override('api_endpoint', stack_env['GLANCE_URL'], group='glance')
conf.set_override('auth_mode', 'identity_headers', group='glance')
image_api = glance.GlanceAPI(conf)
project = uuid.uuid4().hex
ctx = guest.user_context('sweep', project)
image = guest.upload_tiny_guest(image_api, ctx, stack_env['GUEST_DIR'],
                                 'sweep-guest')
# A state directory under the test's own parent directory: deployments
# of tests running at the same time sweep the shared temporary directory.
dep = deployment.Deployment(
    stack_env=stack_env,
    state_dir=tempfile.mkdtemp(prefix=deployment.STATE_PREFIX,
                               dir=sys.argv[1])).start()
client = dep.client('sweep', project)
server = client.create_server('sweep', image['id'], flavor_ref='2')
client.wait_for_server(server['id'], timeout=120)
print(json.dumps({'state_dir': dep.state_dir,
                  'server': server['id'], 'project': project,
                  'images': [image['id'], image['kernel_id'],
                             image['ramdisk_id']]}), flush=True)
sys.stdin.read()   # until killed
'''


class SweepAbandonedDeploymentTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.stack = base.read_env()

    def test_killed_owner_services_and_guest_are_stopped(self):
        parent = tempfile.mkdtemp(prefix='sweep-test-')
        self.addCleanup(shutil.rmtree, parent, True)
        child = subprocess.Popen([sys.executable, '-c', _CHILD, parent],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 cwd=stack.REPO_ROOT, text=True)
        self.addCleanup(self._reap, child)
        line = child.stdout.readline()
        self.assertTrue(line, 'the child deployment did not start')
        started = json.loads(line)
        state_dir = started['state_dir']
        self.addCleanup(self._delete_images, started)
        services = deployment._processes_of(state_dir)
        self.assertEqual(2, len(services), 'api and compute')
        conn = libvirt.open(self.stack.get('LIBVIRT_URI', 'qemu:///system'))
        self.addCleanup(conn.close)
        domain = conn.lookupByName('instance-%s' % started['server'])
        self.assertTrue(domain.isActive())

        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        # Nothing stopped them: they run on without their owner.
        time.sleep(1)
        self.assertEqual(sorted(services),
                         sorted(deployment._processes_of(state_dir)))
        self.assertTrue(domain.isActive())

        swept = deployment.sweep_abandoned(
            self.stack.get('LIBVIRT_URI', 'qemu:///system'), parent)
        self.assertIn(state_dir, swept)
        deadline = time.monotonic() + 10
        while deployment._processes_of(state_dir):
            self.assertLess(time.monotonic(), deadline, 'services still run')
            time.sleep(0.1)
        self.assertRaises(libvirt.libvirtError, conn.lookupByName,
                          'instance-%s' % started['server'])

    def _reap(self, child):
        if child.poll() is None:
            child.kill()
        child.wait()
        child.stdout.close()
        child.stdin.close()

    def _delete_images(self, started):
        image_api = glance.GlanceAPI(
            e2e_base._glance_conf(self.stack['GLANCE_URL']))
        ctx = guest.user_context('sweep', started['project'])
        for image_id in started['images']:
            try:
                image_api.delete(ctx, image_id)
            except Exception:
                pass
        subprocess.run(['rm', '-rf', started['state_dir']])
