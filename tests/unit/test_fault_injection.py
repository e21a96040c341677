"""The campaign's kill points: inert unless armed, SIGKILL when reached."""

import os
import signal
import subprocess
import sys
import unittest

from nova_snapshot import fault_injection

_CHILD = '''
import sys
from nova_snapshot import fault_injection
for n in range(3):
    fault_injection.point('other.point')
    fault_injection.point('campaign.test')
    print('passed %d' % n, flush=True)
'''


def _run(armed):
    env = dict(os.environ)
    env.pop(fault_injection.ENV_VAR, None)
    if armed is not None:
        env[fault_injection.ENV_VAR] = armed
    return subprocess.run([sys.executable, '-c', _CHILD], env=env,
                          capture_output=True, text=True, timeout=60)


class FaultInjectionTest(unittest.TestCase):

    def tearDown(self):
        fault_injection._rearm_for_tests(None)
        super().tearDown()

    def test_unarmed_point_does_nothing(self):
        proc = _run(None)
        self.assertEqual(0, proc.returncode, proc.stderr)
        self.assertEqual(['passed 0', 'passed 1', 'passed 2'],
                         proc.stdout.splitlines())

    def test_armed_point_kills_with_sigkill_and_says_where(self):
        proc = _run('campaign.test')
        self.assertEqual(-signal.SIGKILL, proc.returncode)
        self.assertEqual('', proc.stdout)
        self.assertIn('SIGKILL at campaign.test (hit 1)', proc.stderr)

    def test_nth_hit(self):
        proc = _run('campaign.test@3')
        self.assertEqual(-signal.SIGKILL, proc.returncode)
        self.assertEqual(['passed', '0', 'passed', '1'], proc.stdout.split())

    def test_another_point_armed_is_inert_here(self):
        proc = _run('volume.somewhere_else')
        self.assertEqual(0, proc.returncode, proc.stderr)

    def test_parse(self):
        fault_injection._rearm_for_tests('a.b@2')
        self.assertEqual('a.b', fault_injection.armed())
        fault_injection._rearm_for_tests('')
        self.assertIsNone(fault_injection.armed())
        fault_injection.point('a.b')    # not armed: returns
