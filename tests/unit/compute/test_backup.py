"""createBackup inside one process: ComputeAPI -> fake:/ RPC ->
ComputeManager -> FakeDriver, state in SQLite, images in a fake Glance;
then the rotation and its records, the reconciler and start-up repair of
``image_backup``."""

import datetime
import threading
import unittest
from unittest import mock

from nova_snapshot.compute import api as compute_api
from nova_snapshot.compute import backup
from nova_snapshot.compute import manager as compute_manager
from nova_snapshot.compute import task_states
from nova_snapshot import context as ns_context
from nova_snapshot import exception
from tests.unit.compute import fakes
from tests.unit.compute import test_reconciler


class BackupTestCase(fakes.ComputeTestCase):

    def setUp(self):
        super().setUp()
        # Glance stamps every image; the fake does not. One second apart,
        # in creation order.
        self.clock = 0
        create = self.image_api.create

        def stamped(context, image_meta):
            image = create(context, image_meta)
            self.clock += 1
            stamp = '2026-01-01T00:00:%02dZ' % self.clock
            self.image_api.images[image['id']]['created_at'] = stamp
            return dict(image, created_at=stamp)
        self.image_api.create = stamped
        patcher = mock.patch.object(compute_manager, 'IMAGE_DELETE_BACKOFF',
                                    0)
        patcher.start()
        self.addCleanup(patcher.stop)

    def backup(self, instance, name, rotation, backup_type='daily',
               metadata=None):
        """One backup under its own request; waits for its rotation."""
        ctx = self.user_context()
        image = self.api.backup(ctx, self.db.instance_get(instance['uuid']),
                                name, backup_type, rotation, metadata or {})
        self.wait_idle(instance['uuid'])
        event = self.wait_for_event(instance['uuid'], backup.ROTATE_EVENT,
                                    ctx=ctx)
        return image, event, ctx

    def backups(self, instance, backup_type='daily'):
        return sorted(
            (i for i in self.image_api.images.values()
             if i.get('instance_uuid') == instance['uuid'] and
             i.get('image_type') == 'backup' and
             i.get('backup_type') == backup_type),
            key=lambda i: i['created_at'])


class BackupHappyPathTest(BackupTestCase):

    def test_task_states_image_and_records(self):
        instance = self.boot()
        image, rotation_event, ctx = self.backup(instance, 'b-1', 2)

        # Nova's states: image_backup, never image_snapshot(_pending).
        self.assertEqual(
            ['image_backup', 'image_pending_upload', 'image_uploading',
             None], self.db.task_states_of(instance['uuid'])[-4:])
        stored = self.image_api.get(ctx, image['id'])
        self.assertEqual('active', stored['status'])
        self.assertEqual(self.driver.snapshot_data,
                         self.image_api.data[image['id']])
        for key, value in (('image_type', 'backup'),
                           ('backup_type', 'daily'),
                           ('instance_uuid', instance['uuid']),
                           ('user_id', 'user-1'), ('name', 'b-1'),
                           ('hw_disk_bus', 'virtio')):
            self.assertEqual(value, stored.get(key), key)
        # A backup is created with the base image's formats (Nova); a
        # snapshot gets them from the driver only.
        self.assertEqual(('qcow2', 'bare'), (image['disk_format'],
                                             image['container_format']))
        self.assertNotIn('img_signature', stored)

        action = self.api.get_instance_action(ctx, instance, ctx.request_id)
        self.assertEqual('createBackup', action['action'])
        events = {e['event']: e for e in action['events']}
        self.assertEqual('Success',
                         events['compute_backup_instance']['result'])
        self.assertEqual('Success', rotation_event['result'])
        self.assertIn('kept %s' % image['id'], rotation_event['details'])
        done = self.api.get(ctx, instance['uuid'])
        self.assertIsNone(done['task_state'])
        self.assertIsNone(done['fault'])
        self.assertNotIn(compute_api.SNAPSHOT_IMAGE_KEY,
                         done['system_metadata'])

    def test_backup_type_wins_over_metadata_image_type_does_not(self):
        instance = self.boot()
        image, _, ctx = self.backup(
            instance, 'b', 5, metadata={'backup_type': 'x', 'owner_note': 'n'})
        stored = self.image_api.get(ctx, image['id'])
        self.assertEqual('daily', stored['backup_type'])
        self.assertEqual('n', stored['owner_note'])

    def test_rotation_keeps_the_newest(self):
        instance = self.boot()
        made = [self.backup(instance, 'b-%d' % i, 2)[0]['id']
                for i in range(3)]
        left = [i['id'] for i in self.backups(instance)]
        self.assertEqual(made[1:], left)
        self.assertEqual([made[0]], self.image_api.deleted)

    def test_rotation_zero_deletes_every_backup_and_the_new_one(self):
        instance = self.boot()
        first = self.backup(instance, 'b-1', 3)[0]
        new, event, _ = self.backup(instance, 'b-2', 0)
        self.assertEqual([], self.backups(instance))
        # Oldest first.
        self.assertEqual([first['id'], new['id']], self.image_api.deleted)
        self.assertEqual('Success', event['result'])

    def test_other_types_servers_and_projects_are_not_counted(self):
        instance = self.boot()
        other = self.boot(name='other')
        weekly = self.backup(instance, 'w', 1, backup_type='weekly')[0]
        other_daily = self.backup(other, 'o', 1)[0]
        # Anyone can make a public image with the same properties.
        planted = self.image_api.add_image(
            owner='project-evil', visibility='public', image_type='backup',
            backup_type='daily', instance_uuid=instance['uuid'],
            created_at='2027-01-01T00:00:00Z')
        old = self.backup(instance, 'd-1', 1)[0]
        new = self.backup(instance, 'd-2', 1)[0]
        self.assertEqual([old['id']], self.image_api.deleted)
        for kept in (weekly, other_daily, planted, new):
            self.assertIn(kept['id'], self.image_api.images)

    def test_admin_backup_of_another_project_counts_both_owners(self):
        instance = self.boot()
        mine = self.backup(instance, 'd-1', 5)[0]
        admin = self.user_context('admin-user', 'admin-project', admin=True)
        image = self.api.backup(admin, instance, 'by-admin', 'daily', 1, {})
        self.wait_idle(instance['uuid'])
        self.wait_for_event(instance['uuid'], backup.ROTATE_EVENT, ctx=admin)
        self.assertEqual('admin-project',
                         self.image_api.images[image['id']]['owner'])
        self.assertEqual([mine['id']], self.image_api.deleted)


class RotationFailureTest(BackupTestCase):

    def test_a_failed_delete_is_an_event_error_not_a_lost_backup(self):
        instance = self.boot()
        old = self.backup(instance, 'd-1', 5)[0]
        delete = self.image_api.delete
        attempts = []

        def refuse(context, image_id):
            if image_id == old['id']:
                attempts.append(image_id)
                raise exception.ImageNotAuthorized(image_id=image_id)
            return delete(context, image_id)
        self.image_api.delete = refuse
        new, event, ctx = self.backup(instance, 'd-2', 1)

        self.assertEqual(compute_manager.IMAGE_DELETE_ATTEMPTS, len(attempts))
        self.assertEqual('Error', event['result'])
        self.assertIn('not deleted %s' % old['id'], event['details'])
        action = self.api.get_instance_action(ctx, instance, ctx.request_id)
        events = {e['event']: e for e in action['events']}
        self.assertEqual('Success',
                         events['compute_backup_instance']['result'])
        self.assertEqual('active', self.image_api.images[new['id']]['status'])
        done = self.api.get(ctx, instance['uuid'])
        self.assertIsNone(done['task_state'])
        self.assertIsNone(done['fault'])

        # The next rotation of the type tries it again.
        self.image_api.delete = delete
        self.backup(instance, 'd-3', 1)
        self.assertNotIn(old['id'], self.image_api.images)
        self.assertNotIn(new['id'], self.image_api.images)

    def test_the_server_is_busy_while_its_rotation_runs(self):
        instance = self.boot()
        seen = []
        rotate = backup.rotate

        def watching(*args, **kwargs):
            seen.append(self.manager.busy_instances())
            return rotate(*args, **kwargs)
        with mock.patch.object(backup, 'rotate', watching):
            self.backup(instance, 'd', 1)
        self.assertEqual([{instance['uuid']}], seen)
        self.assertEqual(set(), self.manager.busy_instances())

    def test_a_glance_outage_in_the_listing_is_recorded(self):
        instance = self.boot()
        with mock.patch.object(self.image_api, 'list',
                               side_effect=exception.GlanceConnectionFailed(
                                   reason='down')):
            image, event, ctx = self.backup(instance, 'd', 1)
        self.assertEqual('Error', event['result'])
        self.assertEqual('active',
                         self.image_api.images[image['id']]['status'])
        self.assertIsNone(self.api.get(ctx, instance['uuid'])['task_state'])

    def test_a_failed_capture_deletes_the_image_and_skips_rotation(self):
        instance = self.boot()
        old = self.backup(instance, 'd-1', 1)[0]
        self.driver.fail_snapshot_at = 'upload'
        self.driver.fail_snapshot_with = exception.SnapshotCaptureFailed(
            instance_uuid=instance['uuid'], reason='disk on fire')
        ctx = self.user_context()
        image = self.api.backup(ctx, instance, 'd-2', 'daily', 1, {})
        self.wait_idle(instance['uuid'])
        event = self.wait_for_event(instance['uuid'], backup.BACKUP_EVENT,
                                    ctx=ctx)
        self.assertEqual('Error', event['result'])
        self.assertNotIn(image['id'], self.image_api.images)
        self.assertIn(old['id'], self.image_api.images)
        action = self.api.get_instance_action(ctx, instance, ctx.request_id)
        self.assertNotIn(backup.ROTATE_EVENT,
                         [e['event'] for e in action['events']])


class BackupAPITest(BackupTestCase):

    def test_refused_states_make_no_image(self):
        instance = self.boot()
        self.db.instance_update(instance['uuid'],
                                {'task_state': task_states.IMAGE_SNAPSHOT})
        before = set(self.image_api.images)
        error = self.raises(exception.InstanceInvalidState, self.api.backup,
                            self.ctx, self.db.instance_get(instance['uuid']),
                            'b', 'daily', 1)
        self.assertEqual('task_state', error.kwargs['attr'])
        self.assertEqual(before, set(self.image_api.images))

    def test_a_state_change_before_the_write_is_409_and_no_image(self):
        instance = self.boot()
        # Read while active; the server went to error before the write.
        self.db.instance_update(instance['uuid'], {'vm_state': 'error'})
        before = set(self.image_api.images)
        self.raises(exception.InstanceInvalidState, self.api.backup,
                    self.ctx, instance, 'b', 'daily', 1)
        self.assertEqual(before, set(self.image_api.images))
        self.assertIsNone(
            self.db.instance_get(instance['uuid'])['task_state'])

    def test_volume_backed_is_refused_after_the_state_check(self):
        instance = self.boot()
        self.db.instance_update(instance['uuid'], {'image_ref': ''})
        volume_backed = self.db.instance_get(instance['uuid'])
        self.raises(backup.VolumeBackedBackupNotSupported, self.api.backup,
                    self.ctx, volume_backed, 'b', 'daily', 1)
        stopped = dict(volume_backed, vm_state='building')
        self.raises(exception.InstanceInvalidState, self.api.backup,
                    self.ctx, stopped, 'b', 'daily', 1)
        self.assertIsNone(
            self.db.instance_get(instance['uuid'])['task_state'])

    def test_an_unsent_cast_gives_everything_back(self):
        instance = self.boot()
        before = set(self.image_api.images)
        with mock.patch.object(
                self.rpcapi, 'backup_instance',
                side_effect=exception.ComputeServiceUnavailable(
                    host='h', reason='broker down')):
            self.raises(exception.ComputeServiceUnavailable, self.api.backup,
                        self.ctx, instance, 'b', 'daily', 1)
        after = self.db.instance_get(instance['uuid'])
        self.assertIsNone(after['task_state'])
        self.assertNotIn(compute_api.SNAPSHOT_IMAGE_KEY,
                         after['system_metadata'])
        self.assertEqual(before, set(self.image_api.images))

    def test_a_second_backup_while_one_runs_is_409(self):
        instance = self.boot()
        gate = self.driver.snapshot_gate = threading.Event()
        self.addCleanup(gate.set)
        self.api.backup(self.ctx, instance, 'b-1', 'daily', 1)
        self.wait_for_instance(
            instance['uuid'],
            lambda i: i['task_state'] == 'image_pending_upload')
        self.raises(exception.InstanceInvalidState, self.api.backup,
                    self.ctx, self.db.instance_get(instance['uuid']),
                    'b-2', 'daily', 1)
        gate.set()
        self.wait_idle(instance['uuid'])


class BackupRepairTest(BackupTestCase):

    def test_init_host_repairs_an_interrupted_backup(self):
        instance = self.boot()
        image = self.image_api.create(self.ctx, {'name': 'left',
                                                 'image_type': 'backup'})
        sysmeta = dict(instance['system_metadata'])
        sysmeta[compute_api.SNAPSHOT_IMAGE_KEY] = image['id']
        self.db.instance_update(instance['uuid'], {
            'task_state': task_states.IMAGE_BACKUP,
            'system_metadata': sysmeta})
        self.manager.init_host()
        after = self.api.get(self.ctx, instance['uuid'])
        self.assertIsNone(after['task_state'])
        self.assertNotIn(image['id'], self.image_api.images)
        self.assertIn('image_backup', after['fault']['message'])


class BackupReconcilerTest(test_reconciler.ReconcilerTestCase):

    def test_a_lost_backup_cast_is_released_under_its_action(self):
        instance, image, _ = self.pending_snapshot(
            state=task_states.IMAGE_BACKUP)
        ctx = self.start_action(instance, backup.ACTION)
        self.later(121)
        self.assertTrue(self.reconciler.repair_task_state(instance, set()))
        after = self.db.instance_get(instance['uuid'])
        self.assertIsNone(after['task_state'])
        self.assertEqual([image['id']], self.image_api.deleted)
        [event] = self.events(instance, ctx)
        self.assertEqual('Error', event['result'])

    def test_a_backup_running_here_is_left_alone(self):
        instance, _, _ = self.pending_snapshot(
            state=task_states.IMAGE_BACKUP)
        self.later(3600)
        self.assertFalse(self.reconciler.repair_task_state(
            instance, {instance['uuid']}))

    def test_stale_backup_events_are_finished(self):
        instance = self.instance()
        ctx = self.start_action(instance, backup.ACTION)
        for event in (backup.BACKUP_EVENT, backup.ROTATE_EVENT):
            self.db.action_event_start(ctx, instance['uuid'], event,
                                       host=test_reconciler.HOST)
        self.now = datetime.datetime.utcnow() + datetime.timedelta(
            seconds=121)
        self.reconciler.finish_stale_events(instance, set())
        results = {e['event']: e['result'] for e in self.events(instance,
                                                                ctx)}
        self.assertEqual({backup.BACKUP_EVENT: 'Error',
                          backup.ROTATE_EVENT: 'Error'}, results)


class RotateTest(unittest.TestCase):
    """rotate() alone over a listing, as Glance gives it (newest first)."""

    def setUp(self):
        self.image_api = fakes.FakeImageAPI()
        self.ctx = ns_context.RequestContext(user_id='u', project_id='p1')
        self.instance = {'uuid': 'inst-1', 'project_id': 'p1'}
        self.deleted = []

    def add(self, seconds, **values):
        stamp = (datetime.datetime(2026, 1, 1) +
                 datetime.timedelta(seconds=seconds)).isoformat() + 'Z'
        image = dict(instance_uuid='inst-1', image_type='backup',
                     backup_type='daily', owner='p1', created_at=stamp)
        image.update(values)
        return self.image_api.add_image(**image)['id']

    def delete(self, context, image_id):
        self.deleted.append(image_id)
        return True

    def rotate(self, rotation, new=None):
        return backup.rotate(self.image_api, self.delete, self.ctx,
                             self.instance, 'daily', rotation,
                             new_image_id=new)

    def test_oldest_beyond_rotation_go_oldest_first(self):
        ids = [self.add(s) for s in (30, 10, 20, 40)]
        kept, deleted, failed = self.rotate(2)
        self.assertEqual([ids[3], ids[0]], kept)
        self.assertEqual([ids[1], ids[2]], deleted)
        self.assertEqual(deleted, self.deleted)
        self.assertEqual([], failed)

    def test_fewer_than_rotation_keeps_all(self):
        ids = [self.add(s) for s in (1, 2)]
        self.assertEqual((ids[::-1], [], []), self.rotate(10 ** 18))

    def test_later_requests_backups_are_left_to_their_rotation(self):
        older = self.add(1)
        new = self.add(2)
        later = self.add(3, status='queued')  # cast after ours, uploading
        kept, deleted, _ = self.rotate(0, new=new)
        self.assertEqual(([], [older, new]), (kept, deleted))
        self.assertNotIn(later, self.deleted)

    def test_same_second_keeps_glances_order(self):
        # Glance sorts at the database's precision (then by id): the
        # listing order stands where the second is the same.
        first = self.add(7, name='listed-first')
        second = self.add(7, name='listed-second')
        kept, deleted, _ = self.rotate(1)
        self.assertEqual(([first], [second]), (kept, deleted))

    def test_failures_are_returned(self):
        ids = [self.add(s) for s in (1, 2, 3)]
        kept, deleted, failed = backup.rotate(
            self.image_api, lambda c, i: i != ids[0], self.ctx,
            self.instance, 'daily', 1)
        self.assertEqual(([ids[2]], [ids[1]], [ids[0]]),
                         (kept, deleted, failed))


if __name__ == '__main__':
    unittest.main()
