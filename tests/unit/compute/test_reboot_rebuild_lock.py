"""Reboot, rebuild and the server lock through ComputeAPI and the manager
over fake:/ RPC (FakeDriver, SQLite, a fake Glance)."""

from unittest import mock

from nova_snapshot.compute import power_state
from nova_snapshot.compute import reboot
from nova_snapshot.compute import rebuild
from nova_snapshot.compute import reconciler as compute_reconciler
from nova_snapshot.compute import task_states
from nova_snapshot import exception
from tests.unit.compute import fakes


def _unavailable():
    return exception.ComputeServiceUnavailable(host='host-a',
                                               reason='broker down')


class RebootTest(fakes.ComputeTestCase):

    def test_soft_and_hard_reboot_of_a_running_server(self):
        instance = self.boot()
        for kind in ('SOFT', 'HARD'):
            accepted = self.api.reboot(self.ctx, instance, kind)
            self.assertEqual(
                task_states.REBOOTING if kind == 'SOFT'
                else task_states.REBOOTING_HARD, accepted['task_state'])
            after = self.wait_idle(instance['uuid'])
            self.assertEqual(('active', power_state.RUNNING),
                             (after['vm_state'], after['power_state']))
        self.assertEqual(['reboot_soft', 'reboot_hard'],
                         [c[0] for c in self.driver.calls
                          if c[0].startswith('reboot')])
        # Every state of the way, by compare-and-swap.
        states = self.db.task_states_of(instance['uuid'])
        for state in ('rebooting', 'reboot_pending', 'reboot_started',
                      'rebooting_hard', 'reboot_pending_hard',
                      'reboot_started_hard'):
            self.assertIn(state, states)
        actions = [a['action'] for a in
                   self.api.get_instance_actions(self.ctx, instance)]
        self.assertEqual(['reboot', 'reboot', 'create'], actions)
        event = self.wait_for_event(instance['uuid'],
                                    reboot.EVENT)
        self.assertEqual('Success', event['result'])
        fakes.wait_for(lambda: self.notifications.of_type(
            'instance.reboot.end'))

    def test_soft_reboot_needs_active_hard_takes_stopped_paused(self):
        instance = self.boot()
        self.api.stop(self.ctx, instance)
        stopped = self.wait_idle(instance['uuid'])
        exc = self.raises(exception.InstanceInvalidState, self.api.reboot,
                          self.ctx, stopped, 'SOFT')
        self.assertEqual(('vm_state', 'stopped', 'reboot'),
                         (exc.kwargs['attr'], exc.kwargs['state'],
                          exc.kwargs['method']))
        self.api.reboot(self.ctx, stopped, 'HARD')
        after = self.wait_idle(instance['uuid'])
        self.assertEqual(('active', power_state.RUNNING),
                         (after['vm_state'], after['power_state']))
        self.api.pause(self.ctx, after)
        paused = self.wait_idle(instance['uuid'])
        self.assertEqual('paused', paused['vm_state'])
        self.api.reboot(self.ctx, paused, 'hard')
        self.assertEqual('active', self.wait_idle(instance['uuid'])
                         ['vm_state'])

    def test_hard_reboot_takes_over_a_stuck_soft_reboot(self):
        instance = self.boot()
        self.db.instance_update(instance['uuid'], {
            'task_state': task_states.REBOOT_STARTED})
        stuck = self.db.instance_get(instance['uuid'])
        self.raises(exception.InstanceInvalidState, self.api.reboot,
                    self.ctx, stuck, 'SOFT')
        self.api.reboot(self.ctx, stuck, 'HARD')
        self.assertEqual('active', self.wait_idle(instance['uuid'])
                         ['vm_state'])

    def test_failed_reboot_of_a_guest_still_running_stays_active(self):
        instance = self.boot()
        self.driver.fail_reboot_with = exception.HypervisorError(
            reason='acpi')
        self.api.reboot(self.ctx, instance, 'SOFT')
        after = self.wait_idle(instance['uuid'])
        self.assertEqual('active', after['vm_state'])
        self.assertIn('acpi', self.api.get(self.ctx, instance['uuid'])
                      ['fault']['message'])

    def test_failed_reboot_of_a_guest_that_is_gone_is_error(self):
        instance = self.boot()

        def gone(inst, kind):
            self.driver.instances.pop(inst['uuid'])
            raise exception.HypervisorError(reason='lost')
        with mock.patch.object(self.driver, 'reboot', side_effect=gone):
            self.api.reboot(self.ctx, instance, 'HARD')
            after = self.wait_idle(instance['uuid'])
        self.assertEqual('error', after['vm_state'])

    def test_unsent_cast_gives_the_task_state_back(self):
        instance = self.boot()
        with mock.patch.object(self.rpcapi, 'reboot_instance',
                               side_effect=_unavailable()):
            self.assertRaises(exception.ComputeServiceUnavailable,
                              self.api.reboot, self.ctx, instance, 'SOFT')
        self.assertIsNone(self.db.instance_get(instance['uuid'])
                          ['task_state'])
        # A hard reboot over another action gives that one's state back.
        self.db.instance_update(instance['uuid'],
                                {'task_state': task_states.PAUSING})
        with mock.patch.object(self.rpcapi, 'reboot_instance',
                               side_effect=_unavailable()):
            self.assertRaises(exception.ComputeServiceUnavailable,
                              self.api.reboot, self.ctx,
                              self.db.instance_get(instance['uuid']), 'HARD')
        self.assertEqual(task_states.PAUSING, self.db.instance_get(
            instance['uuid'])['task_state'])

    def test_replayed_cast_runs_once(self):
        instance = self.boot()
        self.api.reboot(self.ctx, instance, 'HARD')
        self.wait_idle(instance['uuid'])
        before = len([c for c in self.driver.calls if c[0] == 'reboot_hard'])
        # The same cast again (the reconciler's replay, a duplicate): the
        # task state is no longer the API's, nothing runs.
        self.manager.reboot_instance(self.ctx, instance['uuid'], 'HARD')
        self.assertEqual(before, len([c for c in self.driver.calls
                                      if c[0] == 'reboot_hard']))

    def test_start_up_repair_releases_an_interrupted_reboot(self):
        instance = self.boot()
        self.db.instance_update(instance['uuid'], {
            'task_state': task_states.REBOOT_STARTED_HARD})
        self.driver.instances[instance['uuid']] = power_state.SHUTDOWN
        self.manager.init_host()
        after = self.db.instance_get(instance['uuid'])
        self.assertEqual(('active', None, power_state.RUNNING),
                         (after['vm_state'], after['task_state'],
                          after['power_state']))
        self.assertIn('Reboot interrupted',
                      self.db.fault_get_latest(instance['uuid'])['message'])


class RebuildTest(fakes.ComputeTestCase):

    def setUp(self):
        super().setUp()
        self.new_image = self.image_api.add_image(
            name='snap', min_ram=0, hw_disk_bus='scsi', os_distro='fedora')

    def test_rebuild_replaces_the_guest_from_the_image(self):
        instance = self.boot()
        accepted = self.api.rebuild(
            self.ctx, instance, self.new_image['id'], name='renamed',
            metadata={'a': 'b'}, preserve_ephemeral=True)
        self.assertEqual((task_states.REBUILDING, self.new_image['id'],
                          'renamed', {'a': 'b'}),
                         (accepted['task_state'], accepted['image_ref'],
                          accepted['name'], accepted['metadata']))
        sysmeta = accepted['system_metadata']
        self.assertEqual('scsi', sysmeta['image_hw_disk_bus'])
        self.assertEqual('fedora', sysmeta['image_os_distro'])
        # The old image's own properties are gone.
        self.assertNotIn('image_kernel_id', sysmeta)
        after = self.wait_idle(instance['uuid'])
        self.assertEqual(('active', power_state.RUNNING),
                         (after['vm_state'], after['power_state']))
        self.assertEqual(['spawn', 'destroy', 'spawn'],
                         [c[0] for c in self.driver.calls])
        self.assertIn(self.new_image['id'],
                      self.driver.consoles[instance['uuid']])
        states = self.db.task_states_of(instance['uuid'])
        for state in task_states.REBUILD_STATES:
            self.assertIn(state, states)
        event = self.wait_for_event(instance['uuid'], rebuild.EVENT)
        self.assertEqual('Success', event['result'])
        self.assertIn('preserve_ephemeral=True', event['details'])
        self.assertEqual(['rebuild', 'create'], [
            a['action'] for a in
            self.api.get_instance_actions(self.ctx, instance)])

    def test_rebuild_of_a_stopped_server_keeps_it_stopped(self):
        instance = self.boot()
        self.api.stop(self.ctx, instance)
        stopped = self.wait_idle(instance['uuid'])
        self.api.rebuild(self.ctx, stopped, self.new_image['id'])
        after = self.wait_idle(instance['uuid'])
        self.assertEqual(('stopped', power_state.SHUTDOWN),
                         (after['vm_state'], after['power_state']))

    def test_rebuild_of_an_error_server_makes_it_active(self):
        instance = self.boot()
        self.db.instance_update(instance['uuid'], {'vm_state': 'error'})
        self.api.rebuild(self.ctx, self.db.instance_get(instance['uuid']),
                         self.new_image['id'])
        self.assertEqual('active', self.wait_idle(instance['uuid'])
                         ['vm_state'])

    def test_refusals(self):
        instance = self.boot()
        self.raises(exception.ImageNotFound, self.api.rebuild, self.ctx,
                    instance, 'no-such-image')
        queued = self.image_api.add_image(status='queued')
        self.raises(exception.ImageUnacceptable, self.api.rebuild, self.ctx,
                    instance, queued['id'])
        big = self.image_api.add_image(min_ram=4096)
        self.raises(exception.FlavorMemoryTooSmall, self.api.rebuild,
                    self.ctx, instance, big['id'])
        huge = self.image_api.add_image(min_disk=50)
        self.raises(exception.FlavorDiskTooSmall, self.api.rebuild,
                    self.ctx, instance, huge['id'])
        no_auto = self.image_api.add_image(auto_disk_config='Disabled')
        self.raises(exception.Invalid, self.api.rebuild, self.ctx,
                    instance, no_auto['id'], auto_disk_config=True)
        self.api.pause(self.ctx, instance)
        paused = self.wait_idle(instance['uuid'])
        exc = self.raises(exception.InstanceInvalidState, self.api.rebuild,
                          self.ctx, paused, self.new_image['id'])
        self.assertEqual(('vm_state', 'paused', 'rebuild'),
                         (exc.kwargs['attr'], exc.kwargs['state'],
                          exc.kwargs['method']))
        # Nothing was changed by a refused rebuild.
        current = self.db.instance_get(instance['uuid'])
        self.assertEqual(self.base_image['id'], current['image_ref'])

    def test_unsent_cast_puts_everything_back(self):
        instance = self.boot()
        with mock.patch.object(self.rpcapi, 'rebuild_instance',
                               side_effect=_unavailable()):
            self.assertRaises(exception.ComputeServiceUnavailable,
                              self.api.rebuild, self.ctx, instance,
                              self.new_image['id'], name='other',
                              metadata={'x': 'y'})
        current = self.db.instance_get(instance['uuid'])
        self.assertEqual((None, self.base_image['id'], 'vm', {}),
                         (current['task_state'], current['image_ref'],
                          current['name'], current['metadata']))
        self.assertEqual(instance['system_metadata'],
                         current['system_metadata'])

    def test_driver_failure_is_error_with_fault(self):
        instance = self.boot()
        self.driver.fail_spawn_with = exception.HypervisorError(
            reason='no disk')
        self.api.rebuild(self.ctx, instance, self.new_image['id'])
        after = self.wait_idle(instance['uuid'])
        self.assertEqual('error', after['vm_state'])
        self.assertIn('no disk', self.api.get(self.ctx, instance['uuid'])
                      ['fault']['message'])

    def test_start_up_repair_sets_an_interrupted_rebuild_to_error(self):
        instance = self.boot()
        self.db.instance_update(instance['uuid'], {
            'task_state': task_states.REBUILD_SPAWNING})
        self.manager.init_host()
        after = self.db.instance_get(instance['uuid'])
        self.assertEqual(('error', None),
                         (after['vm_state'], after['task_state']))
        self.assertIn('Rebuild interrupted',
                      self.db.fault_get_latest(instance['uuid'])['message'])


class LostCastTest(fakes.ComputeTestCase):
    """The reconciler runs a reboot or rebuild whose cast was lost."""

    def _reconciler(self):
        self.conf.set_override('task_state_grace', 1, group='reconciler')
        return compute_reconciler.Reconciler(
            self.conf, self.HOST, self.db, self.driver, self.image_api,
            manager=self.manager)

    def _age(self, uuid):
        import datetime
        from oslo_utils import timeutils
        self.db.instance_update(uuid, {
            'updated_at': timeutils.utcnow() - datetime.timedelta(
                seconds=30)})

    def test_lost_reboot_and_rebuild_are_run(self):
        instance = self.boot()
        new_image = self.image_api.add_image(name='other')
        with mock.patch.object(self.rpcapi, 'reboot_instance'):
            self.api.reboot(self.ctx, instance, 'HARD')
        self._age(instance['uuid'])
        reconciler = self._reconciler()
        self.assertEqual(1, reconciler.run_pass()['lost_casts'])
        after = self.db.instance_get(instance['uuid'])
        self.assertEqual(('active', None),
                         (after['vm_state'], after['task_state']))
        self.assertIn('reboot_hard', [c[0] for c in self.driver.calls])
        with mock.patch.object(self.rpcapi, 'rebuild_instance'):
            self.api.rebuild(self.ctx, after, new_image['id'])
        # Within the grace nothing happens.
        self.assertEqual(0, reconciler.run_pass()['lost_casts'])
        self._age(instance['uuid'])
        self.assertEqual(1, reconciler.run_pass()['lost_casts'])
        after = self.db.instance_get(instance['uuid'])
        self.assertEqual(('active', None, new_image['id']),
                         (after['vm_state'], after['task_state'],
                          after['image_ref']))
        self.assertIn(new_image['id'], self.driver.consoles[
            instance['uuid']])


class LockTest(fakes.ComputeTestCase):

    def setUp(self):
        super().setUp()
        self.admin = self.user_context(user='admin', project='admin-project',
                                       admin=True)
        self.other_user = self.user_context(user='user-2')

    def test_locked_server_refuses_non_admin_actions(self):
        instance = self.boot()
        locked = self.api.lock(self.ctx, instance, reason='keep')
        self.assertEqual((True, 'owner', 'keep'),
                         (locked['locked'], locked['locked_by'],
                          locked['locked_reason']))
        refused = (
            lambda ctx, i: self.api.stop(ctx, i),
            lambda ctx, i: self.api.pause(ctx, i),
            lambda ctx, i: self.api.suspend(ctx, i),
            lambda ctx, i: self.api.reboot(ctx, i, 'SOFT'),
            lambda ctx, i: self.api.reboot(ctx, i, 'HARD'),
            lambda ctx, i: self.api.rebuild(ctx, i, self.base_image['id']),
            lambda ctx, i: self.api.delete(ctx, i),
            lambda ctx, i: self.api.shelve(ctx, i),
            lambda ctx, i: self.api.shelve_offload(ctx, i),
            lambda ctx, i: self.api.unshelve(ctx, i),
            lambda ctx, i: self.api.attach_volume(ctx, i, 'vol'),
            lambda ctx, i: self.api.detach_volume(ctx, i, 'vol'),
        )
        for call in refused:
            for ctx in (self.ctx, self.other_user):
                exc = self.raises(exception.InstanceIsLocked, call, ctx,
                                  locked)
                self.assertEqual(409, exc.code)
                self.assertEqual('Instance %s is locked' % instance['uuid'],
                                 exc.format_message())
        # createImage is not lock-checked (Nova).
        self.api.snapshot(self.ctx, locked, 'snap')
        self.wait_idle(instance['uuid'])
        # An admin is not held by the lock.
        self.api.stop(self.admin, self.db.instance_get(instance['uuid']))
        self.assertEqual('stopped', self.wait_idle(instance['uuid'])
                         ['vm_state'])
        actions = [a['action'] for a in
                   self.api.get_instance_actions(self.ctx, instance)]
        self.assertIn('lock', actions)

    def test_owner_relock_is_a_no_op_admin_takes_over(self):
        instance = self.boot()
        first = self.api.lock(self.ctx, instance, reason='one')
        again = self.api.lock(self.ctx, first, reason='two')
        self.assertEqual('one', again['locked_reason'])
        self.assertEqual(1, [a['action'] for a in self.api.
                             get_instance_actions(self.ctx, instance)
                             ].count('lock'))
        taken = self.api.lock(self.admin, again)
        self.assertEqual('admin', taken['locked_by'])
        unlocked = self.api.unlock(self.admin, taken)
        self.assertEqual((False, None, None),
                         (unlocked['locked'], unlocked['locked_by'],
                          unlocked['locked_reason']))
        self.api.stop(self.ctx, unlocked)
        self.assertEqual('stopped', self.wait_idle(instance['uuid'])
                         ['vm_state'])
