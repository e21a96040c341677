"""Soft delete, restore, forceDelete and the reclaim through ComputeAPI
and the manager over fake:/ RPC (FakeDriver, SQLite, a fake Glance)."""

import datetime
from unittest import mock

from oslo_utils import timeutils

from nova_snapshot.compute import power_state
from nova_snapshot.compute import reconciler as compute_reconciler
from nova_snapshot.compute import soft_delete
from nova_snapshot.compute import task_states
from nova_snapshot.compute import vm_states
from nova_snapshot import exception
from tests.unit.compute import fakes


def _unavailable():
    return exception.ComputeServiceUnavailable(host='host-a',
                                               reason='broker down')


class SoftDeleteTestCase(fakes.ComputeTestCase):

    def setUp(self):
        super().setUp()
        self.conf.set_override('reclaim_instance_interval', 3600)

    def soft_deleted(self, instance=None):
        instance = instance or self.boot()
        self.api.soft_delete(self.ctx, instance)
        return self.wait_idle(instance['uuid'])

    def _age(self, uuid, seconds, column='deleted_at'):
        self.db.instance_update(uuid, {
            column: timeutils.utcnow() - datetime.timedelta(seconds=seconds)})


class SoftDeleteTest(SoftDeleteTestCase):

    def test_soft_delete_powers_off_and_keeps_the_guest(self):
        instance = self.boot()
        accepted = self.api.soft_delete(self.ctx, instance)
        self.assertEqual(task_states.SOFT_DELETING, accepted['task_state'])
        self.assertIsNotNone(accepted['deleted_at'])
        after = self.wait_idle(instance['uuid'])
        self.assertEqual((vm_states.SOFT_DELETED, power_state.SHUTDOWN),
                         (after['vm_state'], after['power_state']))
        self.assertIsNotNone(after['deleted_at'])
        # The guest is kept (powered off), the row is live.
        self.assertIn(instance['uuid'], self.driver.instances)
        self.assertIn('soft-deleting', self.db.task_states_of(
            instance['uuid']))
        actions = [a['action'] for a in
                   self.api.get_instance_actions(self.ctx, instance)]
        self.assertEqual(['delete', 'create'], actions)
        event = self.wait_for_event(instance['uuid'],
                                    soft_delete.EVENT_SOFT_DELETE)
        self.assertEqual('Success', event['result'])

    def test_restore_powers_on(self):
        instance = self.soft_deleted()
        accepted = self.api.restore(self.ctx, instance)
        self.assertEqual(task_states.RESTORING, accepted['task_state'])
        self.assertIsNone(accepted['deleted_at'])
        after = self.wait_idle(instance['uuid'])
        self.assertEqual((vm_states.ACTIVE, power_state.RUNNING),
                         (after['vm_state'], after['power_state']))
        actions = [a['action'] for a in
                   self.api.get_instance_actions(self.ctx, instance)]
        self.assertEqual(['restore', 'delete', 'create'], actions)
        event = self.wait_for_event(instance['uuid'],
                                    soft_delete.EVENT_RESTORE)
        self.assertEqual('Success', event['result'])

    def test_restore_of_a_live_server_is_a_conflict(self):
        instance = self.boot()
        exc = self.raises(exception.InstanceInvalidState, self.api.restore,
                          self.ctx, instance)
        self.assertEqual(('vm_state', 'active', 'restore'),
                         (exc.kwargs['attr'], exc.kwargs['state'],
                          exc.kwargs['method']))

    def test_other_actions_on_a_soft_deleted_server_are_conflicts(self):
        instance = self.soft_deleted()
        for call in (lambda: self.api.stop(self.ctx, instance),
                     lambda: self.api.start(self.ctx, instance),
                     lambda: self.api.pause(self.ctx, instance),
                     lambda: self.api.suspend(self.ctx, instance),
                     lambda: self.api.resume(self.ctx, instance),
                     lambda: self.api.reboot(self.ctx, instance, 'HARD'),
                     lambda: self.api.reboot(self.ctx, instance, 'SOFT'),
                     lambda: self.api.shelve(self.ctx, instance),
                     lambda: self.api.unshelve(self.ctx, instance),
                     lambda: self.api.snapshot(self.ctx, instance, 's'),
                     lambda: self.api.rebuild(self.ctx, instance,
                                              self.base_image['id'])):
            self.assertRaises(exception.InstanceInvalidState, call)
        after = self.db.instance_get(instance['uuid'])
        self.assertEqual((vm_states.SOFT_DELETED, None),
                         (after['vm_state'], after['task_state']))

    def test_lock_is_checked_for_non_admins(self):
        instance = self.boot()
        self.db.instance_lock(instance['uuid'], 'owner')
        locked = self.db.instance_get(instance['uuid'])
        for method in (self.api.soft_delete, self.api.force_delete):
            self.assertRaises(exception.InstanceIsLocked, method, self.ctx,
                              locked)
        admin = self.user_context(admin=True)
        self.api.soft_delete(admin, locked)
        soft = self.wait_idle(instance['uuid'])
        self.assertRaises(exception.InstanceIsLocked, self.api.restore,
                          self.ctx, soft)
        self.api.restore(admin, soft)
        self.assertEqual(vm_states.ACTIVE,
                         self.wait_idle(instance['uuid'])['vm_state'])

    def test_force_delete_of_a_soft_deleted_server_deletes_it(self):
        instance = self.soft_deleted()
        self.api.force_delete(self.ctx, instance)
        fakes.wait_for(lambda: not self.db.instance_list(
            {'uuid': instance['uuid']}), message='row deleted')
        self.assertNotIn(instance['uuid'], self.driver.instances)

    def test_force_delete_of_an_active_server_deletes_it_as_nova(self):
        instance = self.boot()
        self.api.force_delete(self.ctx, instance)
        fakes.wait_for(lambda: instance['uuid'] not in
                       self.driver.instances, message='guest destroyed')

    def test_force_delete_needs_task_state_none(self):
        instance = self.boot()
        self.db.instance_update(instance['uuid'],
                                {'task_state': task_states.POWERING_OFF})
        busy = self.db.instance_get(instance['uuid'])
        exc = self.raises(exception.InstanceInvalidState,
                          self.api.force_delete, self.ctx, busy)
        self.assertEqual('task_state', exc.kwargs['attr'])

    def test_not_soft_deletable_servers(self):
        instance = self.boot()
        # A task in progress (Nova's check): the caller deletes normally.
        self.db.instance_update(instance['uuid'],
                                {'task_state': task_states.POWERING_OFF})
        self.assertRaises(soft_delete.NotSoftDeletable, self.api.soft_delete,
                          self.ctx, self.db.instance_get(instance['uuid']))
        # Shelved, or no host: nothing would reclaim or restore it.
        for values in ({'vm_state': vm_states.SHELVED_OFFLOADED,
                        'task_state': None, 'host': None},
                       {'vm_state': vm_states.SHELVED, 'task_state': None},
                       {'vm_state': vm_states.ACTIVE, 'host': None}):
            self.db.instance_update(instance['uuid'], values)
            self.assertRaises(soft_delete.NotSoftDeletable,
                              self.api.soft_delete, self.ctx,
                              self.db.instance_get(instance['uuid']))
        self.assertIsNone(self.db.instance_get(instance['uuid'])[
            'deleted_at'])

    def test_unsent_cast_gives_everything_back(self):
        instance = self.boot()
        with mock.patch.object(self.rpcapi, 'soft_delete_instance',
                               side_effect=_unavailable()):
            self.assertRaises(exception.ComputeServiceUnavailable,
                              self.api.soft_delete, self.ctx, instance)
        after = self.db.instance_get(instance['uuid'])
        self.assertEqual((vm_states.ACTIVE, None, None),
                         (after['vm_state'], after['task_state'],
                          after['deleted_at']))
        soft = self.soft_deleted(after)
        with mock.patch.object(self.rpcapi, 'restore_instance',
                               side_effect=_unavailable()):
            self.assertRaises(exception.ComputeServiceUnavailable,
                              self.api.restore, self.ctx, soft)
        after = self.db.instance_get(instance['uuid'])
        self.assertEqual((vm_states.SOFT_DELETED, None),
                         (after['vm_state'], after['task_state']))
        # Still reclaimable.
        self.assertIsNotNone(after['deleted_at'])

    def test_failed_restore_stays_soft_deleted_with_a_fault(self):
        instance = self.soft_deleted()
        with mock.patch.object(self.driver, 'power_on',
                               side_effect=RuntimeError('no start')):
            self.api.restore(self.ctx, instance)
            after = self.wait_idle(instance['uuid'])
        self.assertEqual(vm_states.SOFT_DELETED, after['vm_state'])
        self.assertIsNotNone(after['deleted_at'])
        self.assertIn('no start',
                      self.db.fault_get_latest(instance['uuid'])['message'])

    def test_failed_soft_delete_gives_the_server_back(self):
        instance = self.boot()
        with mock.patch.object(self.driver, 'power_off',
                               side_effect=RuntimeError('no stop')):
            self.api.soft_delete(self.ctx, instance)
            after = self.wait_idle(instance['uuid'])
            self.assertEqual((vm_states.ACTIVE, None),
                             (after['vm_state'], after['deleted_at']))
            # A second DELETE of a SOFT_DELETED server that fails keeps
            # it reclaimable.
            soft = self.db.instance_update(instance['uuid'], {
                'vm_state': vm_states.SOFT_DELETED,
                'power_state': power_state.RUNNING})
            self.api.soft_delete(self.ctx, soft)
            after = self.wait_idle(instance['uuid'])
        self.assertEqual(vm_states.SOFT_DELETED, after['vm_state'])
        self.assertIsNotNone(after['deleted_at'])
        self.assertIn('no stop',
                      self.db.fault_get_latest(instance['uuid'])['message'])

    def test_late_cast_backs_off(self):
        instance = self.soft_deleted()
        calls = len(self.driver.calls)
        # The same cast again: the task state is not the API's any more.
        self.manager.soft_delete_instance(self.ctx, instance['uuid'])
        self.manager.restore_instance(self.ctx, instance['uuid'])
        self.assertEqual(calls, len(self.driver.calls))
        self.assertEqual(vm_states.SOFT_DELETED, self.db.instance_get(
            instance['uuid'])['vm_state'])

    def test_delete_while_soft_deleting_wins(self):
        instance = self.boot()
        with mock.patch.object(self.rpcapi, 'soft_delete_instance'):
            self.api.soft_delete(self.ctx, instance)
        self.api.delete(self.ctx, self.db.instance_get(instance['uuid']))
        fakes.wait_for(lambda: not self.db.instance_list(
            {'uuid': instance['uuid']}), message='row deleted')
        # The lost soft delete's replay finds nothing to do.
        self.manager.soft_delete_instance(self.ctx, instance['uuid'])
        self.assertRaises(exception.InstanceNotFound, self.db.instance_get,
                          instance['uuid'])


class ReclaimTest(SoftDeleteTestCase):

    def test_reclaims_only_the_expired(self):
        old = self.soft_deleted()
        young = self.soft_deleted()
        live = self.boot()
        self._age(old['uuid'], 3601)
        self._age(young['uuid'], 3000)
        self.assertEqual([old['uuid']], self.manager._reclaim_queued_deletes())
        self.assertRaises(exception.InstanceNotFound, self.db.instance_get,
                          old['uuid'])
        self.assertNotIn(old['uuid'], self.driver.instances)
        for kept in (young, live):
            self.assertIn(kept['uuid'], self.driver.instances)
            self.db.instance_get(kept['uuid'])
        # The deleted row stays (marked deleted), with its actions.
        rows = self.db.instance_list({'uuid': old['uuid'], 'deleted': True})
        self.assertEqual(1, len(rows))
        self.assertEqual(['delete', 'create'], [
            a['action'] for a in self.db.actions_get(old['uuid'])])

    def test_reclaim_releases_the_claim_and_volumes_path(self):
        instance = self.soft_deleted()
        self._age(instance['uuid'], 7200)
        with mock.patch.object(self.manager.volumes, 'cleanup') as cleanup:
            self.manager._reclaim_queued_deletes()
        cleanup.assert_called_once()
        node = self.db.compute_node_get(self.HOST)
        self.assertEqual(0, node.get('memory_mb_used', 0) or 0)

    def test_interval_zero_reclaims_nothing(self):
        instance = self.soft_deleted()
        self._age(instance['uuid'], 10 ** 6)
        self.conf.set_override('reclaim_instance_interval', 0)
        self.assertEqual([], self.manager._reclaim_queued_deletes())

    def test_a_restoring_server_is_not_reclaimed(self):
        instance = self.soft_deleted()
        self._age(instance['uuid'], 7200)
        self.db.instance_update(instance['uuid'],
                                {'task_state': task_states.RESTORING})
        self.assertEqual([], self.manager._reclaim_queued_deletes())


class RepairTest(SoftDeleteTestCase):

    def _reconciler(self):
        self.conf.set_override('task_state_grace', 1, group='reconciler')
        return compute_reconciler.Reconciler(
            self.conf, self.HOST, self.db, self.driver, self.image_api,
            manager=self.manager)

    def test_lost_casts_are_replayed(self):
        instance = self.boot()
        with mock.patch.object(self.rpcapi, 'soft_delete_instance'):
            self.api.soft_delete(self.ctx, instance)
        reconciler = self._reconciler()
        # Within the grace nothing happens.
        self.assertEqual(0, reconciler.run_pass()['lost_soft_delete_casts'])
        self._age(instance['uuid'], 30, column='updated_at')
        self.assertEqual(1, reconciler.run_pass()['lost_soft_delete_casts'])
        soft = self.db.instance_get(instance['uuid'])
        self.assertEqual((vm_states.SOFT_DELETED, None),
                         (soft['vm_state'], soft['task_state']))
        # Under the request's action.
        event = self.wait_for_event(instance['uuid'],
                                    soft_delete.EVENT_SOFT_DELETE)
        self.assertEqual('Success', event['result'])
        with mock.patch.object(self.rpcapi, 'restore_instance'):
            self.api.restore(self.ctx, soft)
        self._age(instance['uuid'], 30, column='updated_at')
        self.assertEqual(1, reconciler.run_pass()['lost_soft_delete_casts'])
        after = self.db.instance_get(instance['uuid'])
        self.assertEqual((vm_states.ACTIVE, None, power_state.RUNNING),
                         (after['vm_state'], after['task_state'],
                          after['power_state']))

    def test_start_up_finishes_an_interrupted_soft_delete(self):
        instance = self.boot()
        with mock.patch.object(self.rpcapi, 'soft_delete_instance'):
            self.api.soft_delete(self.ctx, instance)
        self.manager.init_host()
        after = self.db.instance_get(instance['uuid'])
        self.assertEqual((vm_states.SOFT_DELETED, None, power_state.SHUTDOWN),
                         (after['vm_state'], after['task_state'],
                          after['power_state']))

    def test_start_up_finishes_an_interrupted_restore(self):
        instance = self.soft_deleted()
        with mock.patch.object(self.rpcapi, 'restore_instance'):
            self.api.restore(self.ctx, instance)
        self.manager.init_host()
        after = self.db.instance_get(instance['uuid'])
        self.assertEqual((vm_states.ACTIVE, None, power_state.RUNNING),
                         (after['vm_state'], after['task_state'],
                          after['power_state']))


class ListTest(SoftDeleteTestCase):

    def test_soft_deleted_servers_are_not_live_in_lists(self):
        soft = self.soft_deleted()
        live = self.boot()
        listed = [i['uuid'] for i in self.db.instance_list(
            {'soft_deleted': False})]
        self.assertEqual([live['uuid']], listed)
        deleted = [i['uuid'] for i in self.db.instance_list(
            {'deleted': True, 'soft_deleted': True})]
        self.assertEqual([soft['uuid']], deleted)
        # Without the filter (the reconciler's lists), as before.
        self.assertEqual(2, len(self.db.instance_list({})))

    def test_2_21_get_reads_a_deleted_server_of_the_project_only(self):
        instance = self.boot()
        self.api.delete(self.ctx, instance)
        fakes.wait_for(lambda: not self.db.instance_list(
            {'uuid': instance['uuid']}), message='row deleted')
        self.assertRaises(exception.InstanceNotFound, self.api.get,
                          self.ctx, instance['uuid'])
        found = self.api.get(self.ctx, instance['uuid'], read_deleted=True)
        self.assertEqual(instance['uuid'], found['uuid'])
        other = self.user_context(user='u2', project='project-2')
        self.assertRaises(exception.InstanceNotFound, self.api.get, other,
                          instance['uuid'], read_deleted=True)
        admin = self.user_context(admin=True)
        self.api.get(admin, instance['uuid'], read_deleted=True)
