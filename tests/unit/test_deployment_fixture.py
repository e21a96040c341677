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
