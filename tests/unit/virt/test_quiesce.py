"""Freeze/pause error mapping, tokens and the watchdog's logic."""

import json
import os
import shutil
import sys
import tempfile
import unittest
from unittest import mock

import libvirt

from nova_snapshot import exception
from nova_snapshot.virt.libvirt import quiesce as vquiesce
from nova_snapshot.virt.libvirt import thaw_watchdog

UUID = '11111111-2222-3333-4444-555555555555'


def libvirt_error(code, message='boom'):
    exc = libvirt.libvirtError(message)
    exc.get_error_code = lambda: code
    exc.get_error_message = lambda: message
    return exc


class FakeClock:
    def __init__(self, now=1000.0):
        self.now = now
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


class QuiesceTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='ns-quiesce-')
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.domain = mock.Mock()
        self.domain.UUIDString.return_value = UUID
        self.domain.state.return_value = (libvirt.VIR_DOMAIN_RUNNING, 1)
        popen = mock.patch('subprocess.Popen')
        self.popen = popen.start()
        self.addCleanup(popen.stop)
        self.popen.return_value.pid = 4242

    def token(self, kind=vquiesce.FREEZE):
        return vquiesce.read_token(vquiesce.token_path(self.dir, kind))

    def test_quiesce_arms_the_watchdog_before_freezing(self):
        def freeze(_mountpoints, _flags):
            # The watchdog exists by the time the guest is frozen.
            self.assertTrue(self.popen.called)
            self.assertIsNotNone(self.token())
            return 2
        self.domain.fsFreeze.side_effect = freeze
        facts = vquiesce.quiesce('qemu:///system', self.domain, UUID,
                                 self.dir, 7)
        self.assertEqual(2, facts['frozen_filesystems'])
        self.assertEqual(4242, facts['watchdog_pid'])
        argv = self.popen.call_args[0][0]
        kwargs = self.popen.call_args[1]
        self.assertEqual([sys.executable, '-m', vquiesce.WATCHDOG_MODULE],
                         argv[:3])
        self.assertTrue(kwargs['start_new_session'])
        self.assertNotIn('shell', kwargs)
        token = self.token()
        self.assertEqual('thaw', token['action'])
        self.assertEqual(4242, token['pid'])
        self.assertIn(token['nonce'], argv)
        self.assertEqual(token['at'], float(argv[argv.index('--at') + 1]))

        self.domain.fsThaw.return_value = 2
        vquiesce.unquiesce(self.domain, UUID, self.dir)
        self.domain.fsThaw.assert_called_once_with(None, 0)
        self.assertIsNone(self.token())
        # Idempotent.
        vquiesce.unquiesce(self.domain, UUID, self.dir)

    def test_no_agent_configured_is_not_supported_and_disarms(self):
        self.domain.fsFreeze.side_effect = libvirt_error(
            libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED,
            'argument unsupported: QEMU guest agent is not configured')
        with self.assertRaises(exception.InstanceQuiesceNotSupported) as cm:
            vquiesce.quiesce('uri', self.domain, UUID, self.dir, 5)
        self.assertIn('not configured', str(cm.exception))
        self.assertIsNone(self.token())

    def test_unresponsive_agent_fails_and_keeps_the_watchdog(self):
        self.domain.fsFreeze.side_effect = libvirt_error(
            libvirt.VIR_ERR_AGENT_UNRESPONSIVE,
            'Guest agent is not responding: QEMU guest agent is not '
            'connected')
        self.assertRaises(exception.InstanceQuiesceFailed,
                          vquiesce.quiesce, 'uri', self.domain, UUID,
                          self.dir, 5)
        # The guest may still freeze later: the watchdog stays armed.
        self.assertIsNotNone(self.token())
        # A thaw that fails too keeps it armed and says so.
        self.domain.fsThaw.side_effect = self.domain.fsFreeze.side_effect
        self.assertRaises(exception.InstanceQuiesceFailed,
                          vquiesce.unquiesce, self.domain, UUID, self.dir)
        self.assertIsNotNone(self.token())

    def test_error_mapping(self):
        cases = [
            (libvirt.VIR_ERR_NO_DOMAIN, exception.InstanceNotFound),
            (libvirt.VIR_ERR_OPERATION_INVALID, exception.InstanceNotRunning),
            (libvirt.VIR_ERR_OPERATION_UNSUPPORTED,
             exception.InstanceQuiesceNotSupported),
            (libvirt.VIR_ERR_INTERNAL_ERROR, exception.InstanceQuiesceFailed),
        ]
        for code, exc_class in cases:
            self.domain.fsFreeze.side_effect = libvirt_error(code)
            self.assertRaises(exc_class, vquiesce.freeze, self.domain, UUID)

    def test_deadline_is_required(self):
        for deadline in (None, 0, -1):
            self.assertRaises(ValueError, vquiesce.quiesce, 'uri',
                              self.domain, UUID, self.dir, deadline)
        self.domain.fsFreeze.assert_not_called()

    def test_pause_and_resume_vcpus(self):
        self.assertTrue(vquiesce.pause_vcpus('uri', self.domain, UUID,
                                             self.dir, 3))
        self.domain.suspend.assert_called_once_with()
        self.assertEqual('resume', self.token(vquiesce.PAUSE)['action'])
        self.domain.state.return_value = (libvirt.VIR_DOMAIN_PAUSED, 1)
        self.assertTrue(vquiesce.resume_vcpus(self.domain, UUID, self.dir))
        self.domain.resume.assert_called_once_with()
        self.assertIsNone(self.token(vquiesce.PAUSE))
        self.assertFalse(vquiesce.resume_vcpus(self.domain, UUID, self.dir))

    def test_a_guest_paused_by_its_user_is_left_alone(self):
        self.domain.state.return_value = (libvirt.VIR_DOMAIN_PAUSED, 1)
        self.assertFalse(vquiesce.pause_vcpus('uri', self.domain, UUID,
                                              self.dir, 3))
        self.assertFalse(vquiesce.resume_vcpus(self.domain, UUID, self.dir))
        self.domain.suspend.assert_not_called()
        self.domain.resume.assert_not_called()
        self.popen.assert_not_called()

    def test_failed_pause_disarms(self):
        self.domain.suspend.side_effect = libvirt_error(
            libvirt.VIR_ERR_OPERATION_INVALID)
        self.assertRaises(exception.InstanceNotRunning, vquiesce.pause_vcpus,
                          'uri', self.domain, UUID, self.dir, 3)
        self.assertIsNone(self.token(vquiesce.PAUSE))

    def test_thaw_if_frozen_acts_only_on_tokens(self):
        self.assertEqual([], vquiesce.thaw_if_frozen(self.domain, UUID,
                                                     self.dir))
        self.domain.fsThaw.assert_not_called()
        vquiesce.arm('uri', UUID, self.dir, vquiesce.FREEZE, 5)
        vquiesce.arm('uri', UUID, self.dir, vquiesce.PAUSE, 5)
        self.domain.state.return_value = (libvirt.VIR_DOMAIN_PAUSED, 1)
        self.assertEqual(['thawed filesystems', 'resumed vcpus'],
                         vquiesce.thaw_if_frozen(self.domain, UUID,
                                                 self.dir))
        self.assertIsNone(self.token())
        self.assertIsNone(self.token(vquiesce.PAUSE))
        # The domain is gone: the tokens still go.
        vquiesce.arm('uri', UUID, self.dir, vquiesce.FREEZE, 5)
        self.assertEqual([], vquiesce.thaw_if_frozen(None, UUID, self.dir))
        self.assertIsNone(self.token())

    def test_disarm_with_a_stale_nonce_keeps_the_newer_token(self):
        old = vquiesce.arm('uri', UUID, self.dir, vquiesce.FREEZE, 5)
        new = vquiesce.arm('uri', UUID, self.dir, vquiesce.FREEZE, 5)
        self.assertFalse(vquiesce.disarm(self.dir, vquiesce.FREEZE,
                                         old['nonce']))
        self.assertEqual(new['nonce'], self.token()['nonce'])
        self.assertTrue(vquiesce.disarm(self.dir, vquiesce.FREEZE,
                                        new['nonce']))


class WatchdogTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='ns-watchdog-')
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.token = os.path.join(self.dir, 'freeze.watchdog')
        self.write('n1')
        self.clock = FakeClock()

    def write(self, nonce):
        with open(self.token, 'w') as f:
            json.dump({'nonce': nonce}, f)

    def test_waits_until_the_deadline(self):
        self.assertTrue(thaw_watchdog.wait(self.token, 'n1', 1002.0,
                                           clock=self.clock,
                                           sleep=self.clock.sleep))
        self.assertGreaterEqual(self.clock.now, 1002.0)
        self.assertLess(self.clock.now, 1002.1)

    def test_stands_down_when_the_token_goes_or_changes(self):
        def remove_later(seconds):
            self.clock.sleep(seconds)
            if self.clock.now > 1001.0:
                os.unlink(self.token)
        self.assertFalse(thaw_watchdog.wait(self.token, 'n1', 1010.0,
                                            clock=self.clock,
                                            sleep=remove_later))
        self.assertLess(self.clock.now, 1001.2)
        self.write('n2')
        self.assertFalse(thaw_watchdog.wait(self.token, 'n1', 1010.0,
                                            clock=self.clock,
                                            sleep=self.clock.sleep))
        with open(self.token, 'w') as f:
            f.write('{half')
        self.assertFalse(thaw_watchdog.still_armed(self.token, 'n1'))

    def test_retries_until_the_action_works(self):
        act = mock.Mock(side_effect=[RuntimeError('agent'),
                                     RuntimeError('agent'), 'thawed'])
        self.assertTrue(thaw_watchdog.act_with_retries(
            act, self.token, 'n1', clock=self.clock, sleep=self.clock.sleep,
            retry_seconds=10, interval=0.5))
        self.assertEqual(3, act.call_count)

    def test_gives_up_after_the_retry_time_or_when_stood_down(self):
        act = mock.Mock(side_effect=RuntimeError('agent'))
        self.assertFalse(thaw_watchdog.act_with_retries(
            act, self.token, 'n1', clock=self.clock, sleep=self.clock.sleep,
            retry_seconds=2, interval=0.5))
        self.assertEqual(5, act.call_count)
        act.reset_mock()
        os.unlink(self.token)
        self.assertFalse(thaw_watchdog.act_with_retries(
            act, self.token, 'n1', clock=self.clock, sleep=self.clock.sleep))
        self.assertEqual(1, act.call_count)

    def test_main_acts_and_removes_its_token(self):
        act = mock.Mock(return_value='thawed 1 filesystem(s)')
        with mock.patch.object(thaw_watchdog, 'libvirt_action',
                               return_value=act):
            rc = thaw_watchdog.main([
                '--uri', 'qemu:///system', '--domain', UUID,
                '--token', self.token, '--nonce', 'n1', '--at', '0',
                '--action', 'thaw'])
        self.assertEqual(0, rc)
        act.assert_called_once_with()
        self.assertFalse(os.path.exists(self.token))

    def test_main_stood_down_does_nothing(self):
        os.unlink(self.token)
        act = mock.Mock()
        with mock.patch.object(thaw_watchdog, 'libvirt_action',
                               return_value=act):
            rc = thaw_watchdog.main([
                '--uri', 'u', '--domain', UUID, '--token', self.token,
                '--nonce', 'n1', '--at', '0', '--action', 'resume'])
        self.assertEqual(0, rc)
        act.assert_not_called()


if __name__ == '__main__':
    unittest.main()
