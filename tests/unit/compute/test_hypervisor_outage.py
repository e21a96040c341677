"""What the compute side does while its hypervisor cannot be reached
(libvirtd restarting or down), and the repairs of what a failure leaves
with no owner: a delete that gave up, an unshelve never scheduled.

The manager runs over fake:/ RPC with the FakeDriver; the outage is the
driver raising HypervisorUnavailable, as the libvirt driver does when its
connection is refused or lost (tests/unit/virt/test_libvirt_host.py; the
real libvirtd restart is tests/functional/test_libvirtd_restart_e2e.py).
"""

import datetime
from unittest import mock

from oslo_db import exception as db_exc

from nova_snapshot.compute import manager as compute_manager
from nova_snapshot.compute import reconciler
from nova_snapshot.compute import scheduler
from nova_snapshot.compute import shelve
from nova_snapshot.compute import task_states
from nova_snapshot.compute import vm_states
from nova_snapshot import exception
from tests.unit.compute import fakes
from tests.unit.compute import test_reconciler

DELETE_EVENT = 'compute_terminate_instance'


def _unavailable():
    return exception.HypervisorUnavailable(
        reason='cannot connect to qemu:///system: Connection refused')


class _Outage(object):
    """Wrap a driver method: the first ``failures`` calls raise
    HypervisorUnavailable (None: every call until ``end()``)."""

    def __init__(self, driver, method, failures=None):
        self.real = getattr(driver, method)
        self.failures = failures
        self.calls = 0
        self.over = False

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if not self.over and (self.failures is None or
                              self.calls <= self.failures):
            raise _unavailable()
        return self.real(*args, **kwargs)

    def end(self):
        self.over = True


class _OutageTestCase(fakes.ComputeTestCase):

    def setUp(self):
        super().setUp()
        for name, value in (('HYPERVISOR_RETRY_FIRST_DELAY', 0.02),
                            ('HYPERVISOR_RETRY_MAX_DELAY', 0.05)):
            patcher = mock.patch.object(compute_manager, name, value)
            patcher.start()
            self.addCleanup(patcher.stop)

    def outage(self, method, failures=None):
        outage = _Outage(self.driver, method, failures)
        patcher = mock.patch.object(self.driver, method, outage)
        patcher.start()
        self.addCleanup(patcher.stop)
        return outage

    def gone(self, uuid):
        try:
            self.db.instance_get(uuid)
        except exception.InstanceNotFound:
            return True
        return False


class ConsoleOutputTest(_OutageTestCase):

    def test_a_libvirtd_restart_is_waited_out(self):
        instance = self.boot()
        self.driver.consoles[instance['uuid']] = 'booted\n'
        outage = self.outage('get_console_output', failures=2)
        self.assertEqual('booted\n', self.api.get_console_output(
            self.ctx, instance))
        self.assertEqual(3, outage.calls)

    def test_a_hypervisor_that_stays_down_is_unavailable_not_an_error(self):
        instance = self.boot()
        self.outage('get_console_output')
        with mock.patch.object(compute_manager, 'CONSOLE_HYPERVISOR_RETRY',
                               0.2):
            exc = self.raises(exception.HypervisorUnavailable,
                              self.api.get_console_output, self.ctx,
                              instance)
        # The API's 503 (faults.from_exception), never its 500.
        self.assertEqual(503, exc.code)

    def test_no_guest_yet_is_instance_not_found(self):
        instance = self.boot()
        del self.driver.instances[instance['uuid']]
        self.raises(exception.InstanceNotFound, self.api.get_console_output,
                    self.ctx, instance)


class DeleteTest(_OutageTestCase):

    def setUp(self):
        super().setUp()
        self.conf.set_override('hypervisor_retry_timeout', 1,
                               group='compute')

    def test_a_libvirtd_restart_during_a_delete_is_retried(self):
        instance = self.boot()
        outage = self.outage('destroy', failures=2)
        self.api.delete(self.ctx, instance)
        fakes.wait_for(lambda: self.gone(instance['uuid']),
                       message='instance deleted')
        self.assertEqual(3, outage.calls)
        self.assertNotIn(instance['uuid'], self.driver.instances)
        event = self.wait_for_event(instance['uuid'], DELETE_EVENT)
        self.assertEqual('Success', event['result'])

    def test_a_delete_that_cannot_reach_the_hypervisor_is_finished_later(
            self):
        instance = self.boot()
        outage = self.outage('destroy')
        self.api.delete(self.ctx, instance)
        event = self.wait_for_event(instance['uuid'], DELETE_EVENT)
        self.assertEqual('Error', event['result'])
        # Not ERROR (Nova's answer, which needs the user to delete again):
        # still deleting, for the reconciler.
        left = self.wait_for_instance(
            instance['uuid'], lambda i: i['task_state'] == 'deleting')
        self.assertEqual(vm_states.ACTIVE, left['vm_state'])
        self.assertEqual(503, self.db.fault_get_latest(
            instance['uuid'])['code'])
        self.assertGreater(outage.calls, 1)
        # A second DELETE by the user changes nothing: it is deleting.
        self.api.delete(self.ctx, left)

        reconcile = self.service.reconciler
        grace = self.conf.reconciler.task_state_grace
        reconcile._now = lambda: (datetime.datetime.utcnow() +
                                  datetime.timedelta(seconds=grace + 1))
        # Still down: the reconciler's try fails the same way.
        self.assertEqual(1, reconcile.run_pass()['deletes'])
        self.assertFalse(self.gone(instance['uuid']))
        self.assertEqual('deleting', self.db.instance_get(
            instance['uuid'])['task_state'])
        # Back: the next pass deletes it, domain and row.
        outage.end()
        self.assertEqual(1, reconcile.run_pass()['deletes'])
        self.assertTrue(self.gone(instance['uuid']))
        self.assertNotIn(instance['uuid'], self.driver.instances)
        action = self.db.action_get_by_request_id(instance['uuid'],
                                                  self.ctx.request_id)
        self.assertEqual('Success', action['events'][0]['result'])

    def test_the_reconciler_leaves_a_running_delete_alone(self):
        instance = self.boot()
        self.db.instance_update(instance['uuid'],
                                {'task_state': task_states.DELETING})
        reconcile = self.service.reconciler
        reconcile._now = lambda: (datetime.datetime.utcnow() +
                                  datetime.timedelta(hours=1))
        with self.manager._work.busy(instance['uuid']):
            self.assertEqual(0, reconcile.run_pass()['deletes'])
        self.assertFalse(self.gone(instance['uuid']))
        # Nor does it act within the grace.
        reconcile._now = datetime.datetime.utcnow
        self.assertEqual(0, reconcile.run_pass()['deletes'])

    def test_any_other_failure_is_nova_error(self):
        instance = self.boot()
        self.driver.fail_destroy_with = exception.HypervisorError(
            reason='undefine refused')
        self.api.delete(self.ctx, instance)
        failed = self.wait_for_instance(
            instance['uuid'], lambda i: i['vm_state'] == vm_states.ERROR)
        self.assertIsNone(failed['task_state'])


class UnscheduledUnshelveTest(fakes.ComputeTestCase):
    """The API's scheduling step of an unshelve fails with the database."""

    def test_the_server_is_given_back_when_the_database_answers(self):
        instance = self.boot()
        self.api.shelve(self.ctx, instance)
        offloaded = self.wait_for_instance(
            instance['uuid'], lambda i: i['vm_state'] ==
            vm_states.SHELVED_OFFLOADED and i['task_state'] is None)
        with mock.patch.object(scheduler, 'schedule_existing',
                               side_effect=db_exc.DBConnectionError()):
            self.raises(db_exc.DBConnectionError, self.api.unshelve,
                        self.ctx, offloaded)
        after = self.db.instance_get(instance['uuid'])
        self.assertEqual((vm_states.SHELVED_OFFLOADED, None, None),
                         (after['vm_state'], after['task_state'],
                          after['host']))


class RetryDeleteTest(test_reconciler.ReconcilerTestCase):

    def test_no_retry_while_the_hypervisor_is_still_unavailable(self):
        instance = self.instance(task_state=task_states.DELETING)
        ctx = self.start_action(instance, 'delete')
        self.manager.terminate_instance = mock.Mock()
        self.later(3600)
        with mock.patch.object(self.driver, 'get_power_state',
                               side_effect=_unavailable()):
            self.assertFalse(self.reconciler.retry_delete(instance, set()))
        self.manager.terminate_instance.assert_not_called()
        self.assertTrue(self.reconciler.retry_delete(instance, set()))
        self.assertEqual(1, self.manager.terminate_instance.call_count)
        context, uuid = self.manager.terminate_instance.call_args[0]
        self.assertEqual((ctx.request_id, instance['uuid']),
                         (context.request_id, uuid))


class HostlessUnshelveTest(test_reconciler.ReconcilerTestCase):
    """An offloaded server left unshelving with no host: no host owns it,
    every host's reconciler looks, one compare-and-swap wins."""

    def stuck(self):
        instance = self.instance(
            host=None, vm_state=vm_states.SHELVED_OFFLOADED,
            task_state=task_states.UNSHELVING)
        return instance, self.start_action(instance, shelve.ACTION_UNSHELVE)

    def test_given_back_after_the_grace_with_an_error_event(self):
        instance, ctx = self.stuck()
        self.later(119)
        self.assertEqual(0, self.reconciler.run_pass()['hostless_unshelves'])
        self.assertEqual(task_states.UNSHELVING, self.db.instance_get(
            instance['uuid'])['task_state'])
        self.later(121)
        self.assertEqual(1, self.reconciler.run_pass()['hostless_unshelves'])
        after = self.db.instance_get(instance['uuid'])
        self.assertEqual((vm_states.SHELVED_OFFLOADED, None, None),
                         (after['vm_state'], after['task_state'],
                          after['host']))
        self.assertIn('never scheduled',
                      self.db.fault_get_latest(instance['uuid'])['message'])
        action = self.db.action_get_by_request_id(instance['uuid'],
                                                  ctx.request_id)
        self.assertEqual('Error', action['message'])
        [event] = action['events']
        self.assertEqual((reconciler.EVENT, 'Error'),
                         (event['event'], event['result']))
        self.assertIsNotNone(event['finish_time'])
        # Nothing left for the next pass.
        self.assertEqual(0, self.reconciler.run_pass()['hostless_unshelves'])

    def test_one_with_a_host_is_that_hosts_lost_cast(self):
        instance = self.instance(
            host='host-b', vm_state=vm_states.SHELVED_OFFLOADED,
            task_state=task_states.UNSHELVING)
        self.later(3600)
        self.assertEqual(0, self.reconciler.run_pass()['hostless_unshelves'])
        self.assertEqual(task_states.UNSHELVING, self.db.instance_get(
            instance['uuid'])['task_state'])

    def test_scheduled_meanwhile_is_left_alone(self):
        instance, _ctx = self.stuck()
        self.later(3600)
        stale = self.db.instance_get(instance['uuid'])
        # The API's claim lands between the read and the write.
        self.db.instance_update(instance['uuid'], {'host': 'host-b'})
        self.assertFalse(self.reconciler.give_back_hostless_unshelve(stale))
        after = self.db.instance_get(instance['uuid'])
        self.assertEqual((task_states.UNSHELVING, 'host-b'),
                         (after['task_state'], after['host']))
        self.assertIsNone(self.db.fault_get_latest(instance['uuid']))
