"""ActionRecord: the order of one action's records, and outcomes."""

import logging
import unittest

from nova_snapshot.compute import action_record
from nova_snapshot import exception


class Recorder(object):

    def __init__(self):
        self.log = []

    def _event_start(self, context, uuid, event):
        self.log.append(('event_start', event))

    def _event_finish(self, context, uuid, event, exc=None, tb=None,
                      details=None):
        self.log.append(('event_finish', type(exc).__name__ if exc else None,
                         bool(tb), details))

    def _fault(self, uuid, exc):
        self.log.append(('fault', type(exc).__name__))

    def _revert_task_state(self, uuid, expected):
        self.log.append(('revert', expected))
        return {'uuid': uuid, 'task_state': None}


class ActionRecordTest(unittest.TestCase):

    def setUp(self):
        self.recorder = Recorder()
        self.log = self.recorder.log

    def record(self, **kwargs):
        def notify(instance, phase, exc=None, **extra):
            self.log.append(('notify', phase, extra))
        return action_record.ActionRecord(self.recorder, None, 'u-1', 'ev',
                                          notify=notify, **kwargs)

    def test_success(self):
        with self.record() as record:
            record.start({'uuid': 'u-1'})
            record.extra['volume_id'] = 'v'
            record.details = 'facts'
        self.assertEqual([('event_start', 'ev'),
                          ('notify', 'start', {}),
                          ('notify', 'end', {'volume_id': 'v'}),
                          ('event_finish', None, False, 'facts')], self.log)

    def test_failure_records_first_and_releases_last(self):
        record = self.record(revert_task_state='pausing')
        record.on_failure(lambda exc, outcome: self.log.append(
            ('undo', outcome.name)))
        record.on_release(lambda exc: self.log.append(('release',)))
        record.finally_(lambda: self.log.append(('finally',)))
        with self.assertLogs(action_record.LOG, logging.ERROR):
            with record:
                record.start({'uuid': 'u-1'})
                raise exception.HypervisorError(reason='boom')
        self.assertEqual([('event_start', 'ev'), ('notify', 'start', {}),
                          ('undo', 'failed'), ('fault', 'HypervisorError'),
                          ('event_finish', 'HypervisorError', True, None),
                          ('release',), ('revert', 'pausing'),
                          ('notify', 'error', {}), ('finally',)], self.log)

    def test_gone_and_preempted_record_only_the_event(self):
        for error in (exception.InstanceNotFound(instance_id='u-1'),
                      exception.UnexpectedTaskStateError(
                          instance_uuid='u-1', expected='a', actual='b')):
            del self.log[:]
            record = self.record(revert_task_state='pausing')
            with record:
                record.start({'uuid': 'u-1'})
                raise error
            self.assertEqual([('event_start', 'ev'), ('notify', 'start', {}),
                              ('event_finish', type(error).__name__, False,
                               None)], self.log)

    def test_reraise_and_no_error_notification_before_start(self):
        record = self.record(reraise=True)
        with self.assertLogs(action_record.LOG, logging.ERROR):
            with self.assertRaises(exception.HypervisorError):
                with record:
                    raise exception.HypervisorError(reason='early')
        self.assertEqual(['event_start', 'fault', 'event_finish'],
                         [entry[0] for entry in self.log])

    def test_a_failing_hook_does_not_stop_the_records(self):
        record = self.record()
        record.on_failure(lambda exc, outcome: 1 / 0)
        with self.assertLogs(action_record.LOG, logging.WARNING):
            with record:
                raise exception.HypervisorError(reason='boom')
        self.assertIn(('fault', 'HypervisorError'), self.log)


class BoundedExecutorTest(unittest.TestCase):

    def test_at_most_workers_threads_and_every_call_runs(self):
        import threading
        import time

        from nova_snapshot.compute import snapshot_work
        pool = snapshot_work.BoundedExecutor(2, 'test')
        running, peak = [0], [0]
        lock = threading.Lock()

        def job(n):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.05)
            with lock:
                running[0] -= 1
            return n
        futures = [pool.submit(job, n) for n in range(6)]
        self.assertEqual(list(range(6)),
                         [f.result(timeout=10) for f in futures])
        self.assertEqual(2, peak[0])
        self.assertEqual(2, pool._threads)
        self.assertTrue(all(t.daemon for t in threading.enumerate()
                            if t.name.startswith('test-')))
        # Exceptions reach the future.
        self.assertRaises(ZeroDivisionError,
                          pool.submit(lambda: 1 / 0).result, 10)
