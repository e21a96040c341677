"""The snapshot state machine (issue 7, item 4): the volume-backed hold,
the cast's image check, a finished upload that outlives a failed write,
image references kept until their delete works, the bounded waits for the
server's lock and the host's slots, and busy_instances()."""

import threading
import time
from unittest import mock

from oslo_db import exception as db_exc
import oslo_messaging as messaging

from nova_snapshot.compute import api as compute_api
from nova_snapshot.compute import manager as compute_manager
from nova_snapshot.compute import snapshot_work
from nova_snapshot.compute import task_states
from nova_snapshot import exception
from tests.unit.compute import fakes
from tests.unit.compute import volume_fakes

HOLD = compute_api.VOLUME_SNAPSHOT_HOLD_KEY
IMAGE_KEY = compute_api.SNAPSHOT_IMAGE_KEY
LEFTOVERS = compute_api.SNAPSHOT_LEFTOVERS_KEY


def held_instance(db, instance):
    return db.instance_get(instance['uuid'])


class VolumeBackedBase(volume_fakes.VolumeComputeTestCase):

    def gate_the_cut(self):
        """Hold the next volume-backed cut inside the freeze; returns
        ``(frozen, release)`` events."""
        frozen, release = threading.Event(), threading.Event()
        self.addCleanup(release.set)
        real = self.driver.quiesce

        def quiesce(*args, **kwargs):
            real(*args, **kwargs)
            frozen.set()
            release.wait(10)
        self.driver.quiesce = quiesce
        return frozen, release

    def snapshot_in_thread(self, instance, ctx=None):
        result = {}

        def run():
            try:
                result['image'] = self.api.snapshot_volume_backed(
                    ctx or self.ctx, instance, 'vb', {})
            except Exception as exc:
                result['error'] = exc
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.addCleanup(thread.join, 10)
        return thread, result


class VolumeBackedHoldTest(VolumeBackedBase):

    def test_actions_get_409_during_the_cut_and_the_hold_is_released(self):
        instance = self.boot_volume_backed()
        frozen, release = self.gate_the_cut()
        thread, result = self.snapshot_in_thread(instance)
        self.assertTrue(frozen.wait(10))
        held = self.db.instance_get(instance['uuid'])
        self.assertEqual('image_snapshot', held['task_state'])
        self.assertEqual(self.ctx.request_id, held['system_metadata'][HOLD])
        self.assertEqual({instance['uuid']}, self.manager.busy_instances())
        for method in ('suspend', 'pause', 'stop', 'delete'):
            # A fresh read and the stale dict the handler may hold.
            for copy in (self.db.instance_get(instance['uuid']), instance):
                exc = self.raises(exception.InstanceInvalidState,
                                  getattr(self.api, method), self.ctx, copy)
                self.assertEqual(409, exc.code)
                self.assertEqual(('task_state', 'image_snapshot'),
                                 (exc.kwargs['attr'], exc.kwargs['state']))
        # A second createImage is refused too.
        self.assertRaises(exception.InstanceInvalidState,
                          self.api.snapshot_volume_backed, self.ctx,
                          instance, 'again', {})
        self.assertRaises(exception.InstanceInvalidState,
                          self.api.snapshot, self.ctx, instance, 'ib', {})
        release.set()
        thread.join(10)
        self.assertNotIn('error', result)
        after = self.db.instance_get(instance['uuid'])
        self.assertIsNone(after['task_state'])
        self.assertNotIn(HOLD, after['system_metadata'])
        self.assertEqual('active', after['vm_state'])
        self.assertEqual(set(), self.manager.busy_instances())
        self.assertEqual(set(), self.driver.frozen)
        # Free again: the actions work.
        self.api.pause(self.ctx, after)
        self.wait_idle(instance['uuid'])

    def test_a_failed_call_releases_the_hold(self):
        instance = self.boot_volume_backed()
        with mock.patch.object(self.rpcapi, 'snapshot_volume_backed',
                               side_effect=messaging.MessagingTimeout()):
            self.assertRaises(messaging.MessagingTimeout,
                              self.api.snapshot_volume_backed, self.ctx,
                              instance, 'vb', {})
        after = self.db.instance_get(instance['uuid'])
        self.assertIsNone(after['task_state'])
        self.assertNotIn(HOLD, after['system_metadata'])

    def test_a_failed_cut_releases_the_hold(self):
        self.image_api.images[self.base_image['id']]['os_require_quiesce'] \
            = 'yes'
        instance = self.boot_volume_backed()
        self.driver.quiesce_error = exception.InstanceQuiesceFailed(
            reason='agent gone')
        self.assertRaises(exception.InstanceQuiesceFailed,
                          self.api.snapshot_volume_backed, self.ctx,
                          instance, 'vb', {})
        after = self.db.instance_get(instance['uuid'])
        self.assertIsNone(after['task_state'])
        self.assertNotIn(HOLD, after['system_metadata'])

    def test_the_compute_side_works_only_under_its_own_hold(self):
        instance = self.boot_volume_backed()
        self.db.action_start(self.ctx, instance['uuid'], 'createImage')
        # No hold at all (the API gave up and released it, or a replay).
        self.assertRaises(
            messaging.ExpectedException,
            self.manager.snapshot_volume_backed, self.ctx,
            instance['uuid'], {'name': 'x'})
        # Another request's hold: refused, and that hold stays.
        self.db.instance_update_checked(
            instance['uuid'], {'task_state': 'image_snapshot'},
            system_metadata={HOLD: 'req-other'})
        self.assertRaises(
            messaging.ExpectedException,
            self.manager.snapshot_volume_backed, self.ctx,
            instance['uuid'], {'name': 'x'})
        after = self.db.instance_get(instance['uuid'])
        self.assertEqual('image_snapshot', after['task_state'])
        self.assertEqual('req-other', after['system_metadata'][HOLD])
        self.assertEqual([], self.cinder.calls('create_snapshot_force'))
        self.assertEqual(set(), self.driver.frozen)

    def test_a_late_release_never_ends_another_hold(self):
        instance = self.boot_volume_backed()
        self.db.instance_update_checked(
            instance['uuid'], {'task_state': 'image_snapshot'},
            system_metadata={HOLD: 'req-2'})
        self.assertIsNone(compute_api.release_volume_snapshot_hold(
            self.db, instance['uuid'], 'req-1'))
        self.assertEqual('image_snapshot', self.db.instance_get(
            instance['uuid'])['task_state'])
        released = compute_api.release_volume_snapshot_hold(
            self.db, instance['uuid'], 'req-2')
        self.assertIsNone(released['task_state'])
        self.assertNotIn(HOLD, released['system_metadata'])

    def test_start_up_releases_an_interrupted_cut_without_glance_deletes(
            self):
        instance = self.boot_volume_backed()
        # Someone else's image named by a stale key must not be touched.
        other = self.image_api.create(self.ctx, {'name': 'not-ours'})
        self.db.instance_update_checked(
            instance['uuid'], {'task_state': 'image_snapshot'},
            system_metadata={HOLD: 'req-dead', IMAGE_KEY: other['id']})
        self.driver.frozen.add(instance['uuid'])
        self.manager.init_host()
        self.assertTrue(self.manager.wait_for_tasks(10))
        after = self.api.get(self.ctx, instance['uuid'])
        self.assertIsNone(after['task_state'])
        self.assertNotIn(HOLD, after['system_metadata'])
        self.assertIn(other['id'], self.image_api.images)
        self.assertEqual([], self.image_api.deleted)
        self.assertEqual(set(), self.driver.frozen)
        self.assertIn('interrupted', after['fault']['message'])

    def test_a_stale_hold_key_never_blocks_a_delete(self):
        instance = self.boot_volume_backed()
        # A repair reset task_state but left the key.
        self.db.instance_update_checked(
            instance['uuid'], {}, system_metadata={HOLD: 'req-old'})
        self.api.snapshot(self.ctx, self.db.instance_get(instance['uuid']),
                          'image-backed', {})
        self.assertNotIn(HOLD, self.db.instance_get(
            instance['uuid'])['system_metadata'])

    def test_delete_during_an_image_backed_snapshot_still_works(self):
        instance = self.boot_volume_backed()
        self.db.instance_update(instance['uuid'],
                                {'task_state': 'image_uploading'})
        self.api.delete(self.ctx, self.db.instance_get(instance['uuid']))
        self.assertEqual('deleting', self.db.instance_get(
            instance['uuid'])['task_state'])


class WaitsTest(VolumeBackedBase):

    def setUp(self):
        super().setUp()
        self.conf.set_override('snapshot_wait_timeout', 1, group='compute')
        # One slot on this host.
        self.manager._work = snapshot_work.SnapshotWork(self.HOST, 1)

    def test_a_snapshot_waiting_too_long_for_a_slot_fails_cleanly(self):
        first = self.boot(name='first')
        second = self.boot(name='second')
        _image, gate = self.start_held_snapshot(first, 'holds-the-slot')
        image = self.api.snapshot(self.ctx, second, 'waits', {})
        after = self.wait_for_instance(
            second['uuid'], lambda i: i['task_state'] is None,
            'the waiting snapshot to give up')
        self.assertNotIn(IMAGE_KEY, after['system_metadata'])
        self.assertNotIn(image['id'], self.image_api.images)
        fault = self.api.get(self.ctx, second['uuid'])['fault']
        self.assertEqual(409, fault['code'])
        self.assertIn('snapshot slots of host host-a', fault['message'])
        event = self.wait_for_event(second['uuid'],
                                    compute_manager.SNAPSHOT_EVENT)
        self.assertEqual('Error', event['result'])
        # The first one never noticed.
        self.assertEqual({first['uuid']}, self.manager.busy_instances())
        gate.set()
        self.wait_idle(first['uuid'])
        self.assertEqual(set(), self.manager.busy_instances())

    def test_the_servers_lock_is_taken_before_a_slot(self):
        # A snapshot waiting for its own server's lock holds no slot:
        # another server's snapshot runs meanwhile.
        first = self.boot(name='first')
        second = self.boot(name='second')
        work = self.manager._work
        self.conf.set_override('snapshot_wait_timeout', 10, group='compute')
        lock = work.locked(first['uuid'], time.monotonic())
        lock.__enter__()
        try:
            blocked = self.api.snapshot(self.ctx, first, 'blocked', {})
            fakes.wait_for(lambda: first['uuid'] in work.busy_instances())
            image = self.api.snapshot(self.ctx, second, 'runs', {})
            self.wait_for_instance(second['uuid'],
                                   lambda i: i['task_state'] is None)
            self.assertEqual('active', self.image_api.get(
                self.ctx, image['id'])['status'])
            self.assertEqual('image_snapshot_pending', self.db.instance_get(
                first['uuid'])['task_state'])
        finally:
            lock.__exit__(None, None, None)
        self.wait_idle(first['uuid'])
        self.assertEqual('active', self.image_api.get(
            self.ctx, blocked['id'])['status'])

    def test_a_volume_backed_call_waits_within_its_rpc_budget(self):
        # Budget: rpc timeout - quiesce deadline - Cinder timeout - margin.
        self.conf.set_override('volume_snapshot_timeout', 5,
                               group='compute')
        self.conf.set_override('quiesce_deadline', 1.0, group='compute')
        self.conf.set_override('volume_snapshot_rpc_timeout', 8,
                               group='compute')
        self.assertEqual(1.0, self.manager._volume_snapshot_wait_budget())
        other = self.boot(name='image-backed')
        instance = self.boot_volume_backed()
        _image, gate = self.start_held_snapshot(other, 'holds-the-slot')
        exc = self.raises(exception.Conflict,
                          self.api.snapshot_volume_backed, self.ctx,
                          instance, 'vb', {})
        self.assertEqual(409, exc.code)
        self.assertIn('snapshot slots', exc.format_message())
        after = self.db.instance_get(instance['uuid'])
        self.assertIsNone(after['task_state'])
        self.assertNotIn(HOLD, after['system_metadata'])
        self.assertEqual([], self.cinder.calls('create_snapshot_force'))
        gate.set()
        self.wait_idle(other['uuid'])


class CastCheckTest(fakes.ComputeTestCase):

    def test_a_cast_for_another_image_changes_nothing(self):
        instance = self.boot()
        running, gate = self.start_held_snapshot(instance, 'running')
        stale = self.image_api.create(self.ctx, {'name': 'stale'})
        self.db.action_start(self.ctx, instance['uuid'], 'createImage')
        self.rpcapi.snapshot_instance(self.ctx, held_instance(
            self.db, instance), stale['id'])
        fakes.wait_for(lambda: stale['id'] not in self.image_api.images,
                       message='the stale image deleted')
        held = self.db.instance_get(instance['uuid'])
        self.assertEqual('image_pending_upload', held['task_state'])
        self.assertEqual(running['id'], held['system_metadata'][IMAGE_KEY])
        gate.set()
        self.wait_idle(instance['uuid'])
        self.assertEqual('active', self.image_api.get(
            self.ctx, running['id'])['status'])
        self.assertIsNone(self.api.get(self.ctx, instance['uuid'])['fault'])

    def test_a_duplicate_cast_leaves_the_running_snapshot_alone(self):
        instance = self.boot()
        running, gate = self.start_held_snapshot(instance, 'running')
        self.rpcapi.snapshot_instance(self.ctx, held_instance(
            self.db, instance), running['id'])
        fakes.wait_for(lambda: len(self.db.action_get_by_request_id(
            instance['uuid'], self.ctx.request_id)['events']) == 2,
            message='the duplicate handled')
        gate.set()
        self.wait_idle(instance['uuid'])
        self.assertEqual('active', self.image_api.get(
            self.ctx, running['id'])['status'])
        self.assertEqual([], self.image_api.deleted)

    def test_a_cast_for_a_finished_image_keeps_it(self):
        instance = self.boot()
        image = self.api.snapshot(self.ctx, instance, 'done', {})
        self.wait_idle(instance['uuid'])
        self.manager.snapshot_instance(self.ctx, instance['uuid'],
                                       image['id'])
        self.assertTrue(self.manager.wait_for_tasks(10))
        self.assertEqual('active', self.image_api.get(
            self.ctx, image['id'])['status'])


class FinishedUploadTest(fakes.ComputeTestCase):

    def fail_release_write(self, times):
        real = self.db.instance_update_checked
        calls = {'failed': 0}

        def flaky(uuid, values, *args, **kwargs):
            if values.get('task_state', 'x') is None and kwargs.get(
                    'expected_task_state') == task_states.IMAGE_UPLOADING \
                    and calls['failed'] < times:
                calls['failed'] += 1
                raise db_exc.DBConnectionError('server closed the connection')
            return real(uuid, values, *args, **kwargs)
        self.db.instance_update_checked = flaky
        return calls

    def test_the_release_is_retried_on_database_errors(self):
        self.conf.set_override('db_write_retry_timeout', 10, group='compute')
        calls = self.fail_release_write(2)
        instance = self.boot()
        image = self.api.snapshot(self.ctx, instance, 'snap', {})
        after = self.wait_idle(instance['uuid'])
        self.assertEqual(2, calls['failed'])
        self.assertNotIn(IMAGE_KEY, after['system_metadata'])
        self.assertEqual('active', self.image_api.get(
            self.ctx, image['id'])['status'])
        self.assertEqual('Success', self.wait_for_event(
            instance['uuid'], compute_manager.SNAPSHOT_EVENT)['result'])

    def test_a_finished_image_is_kept_when_the_release_keeps_failing(self):
        self.conf.set_override('db_write_retry_timeout', 0, group='compute')
        self.fail_release_write(1000)
        instance = self.boot()
        image = self.api.snapshot(self.ctx, instance, 'snap', {})
        event = self.wait_for_event(instance['uuid'],
                                    compute_manager.SNAPSHOT_EVENT)
        self.assertEqual('active', self.image_api.get(
            self.ctx, image['id'])['status'])
        self.assertEqual([], self.image_api.deleted)
        left = self.db.instance_get(instance['uuid'])
        # Left for the reconciler, which sees no snapshot running here.
        self.assertEqual('image_uploading', left['task_state'])
        fakes.wait_for(lambda: not self.manager.busy_instances())
        self.assertIn('left for the reconciler', event['details'])
        self.assertIsNone(self.api.get(self.ctx, instance['uuid'])['fault'])


class ImageReferenceTest(fakes.ComputeTestCase):

    def test_the_reference_stays_until_the_delete_works(self):
        instance = self.boot()
        self.driver.fail_snapshot_with = exception.SnapshotCaptureFailed(
            instance_uuid=instance['uuid'], reason='disk on fire')
        real_delete = self.image_api.delete
        self.image_api.delete = mock.Mock(
            side_effect=exception.GlanceConnectionFailed(reason='down'))
        with mock.patch.object(compute_manager, 'IMAGE_DELETE_BACKOFF', 0):
            image = self.api.snapshot(self.ctx, instance, 'snap', {})
            after = self.wait_idle(instance['uuid'])
        self.assertEqual(compute_manager.IMAGE_DELETE_ATTEMPTS,
                         self.image_api.delete.call_count)
        self.assertIn(image['id'], self.image_api.images)
        self.assertNotIn(IMAGE_KEY, after['system_metadata'])
        self.assertEqual(image['id'], after['system_metadata'][LEFTOVERS])
        # A later snapshot does not lose it.
        self.driver.fail_snapshot_with = None
        self.image_api.delete = real_delete
        second = self.api.snapshot(self.ctx, after, 'again', {})
        after = self.wait_idle(instance['uuid'])
        self.assertEqual(image['id'], after['system_metadata'][LEFTOVERS])
        self.assertEqual('active', self.image_api.get(
            self.ctx, second['id'])['status'])
        # The next start deletes it, and only then drops the reference.
        self.manager.init_host()
        self.assertNotIn(image['id'], self.image_api.images)
        self.assertNotIn(LEFTOVERS, self.db.instance_get(
            instance['uuid'])['system_metadata'])


class CheckedUpdateTest(fakes.ComputeTestCase):

    def test_write_only_if_unchanged_since_the_check(self):
        instance = self.boot()
        seen = []

        def check(current):
            seen.append(current['task_state'])
            if len(seen) == 1:
                # Someone writes between our read and our write.
                self.db.instance_update(instance['uuid'],
                                        {'task_state': 'powering-off'})

        updated = self.db.instance_update_checked(
            instance['uuid'], {'progress': 7}, check=check,
            system_metadata={'k': 'v', 'gone': None})
        self.assertEqual([None, 'powering-off'], seen)
        self.assertEqual(7, updated['progress'])
        self.assertEqual('v', updated['system_metadata']['k'])
        self.assertRaises(
            exception.UnexpectedTaskStateError,
            self.db.instance_update_checked, instance['uuid'],
            {'progress': 1}, expected_task_state=None)
        self.db.instance_destroy(instance['uuid'])
        self.assertRaises(exception.InstanceNotFound,
                          self.db.instance_update_checked,
                          instance['uuid'], {'progress': 1})


class VolumeBackedLostAnswerTest(VolumeBackedBase):
    """The compute service dies (or its answer is lost) after the image of
    a volume-backed snapshot became active: the request succeeded."""

    def _answer_lost(self, after_the_work):
        real = self.rpcapi.snapshot_volume_backed

        def call(*args, **kwargs):
            if after_the_work:
                real(*args, **kwargs)
            raise exception.ComputeServiceUnavailable(host=self.HOST,
                                                      reason='no answer')
        return mock.patch.object(self.rpcapi, 'snapshot_volume_backed',
                                 side_effect=call)

    def test_an_active_image_is_the_answer(self):
        instance = self.boot_volume_backed()
        with self._answer_lost(after_the_work=True):
            image = self.api.snapshot_volume_backed(self.ctx, instance,
                                                    'vb', {})
        self.assertEqual('active', image['status'])
        self.assertEqual(self.ctx.request_id,
                         image[compute_api.volume_snapshot.REQUEST_TAG])
        self.assertIsNone(
            self.db.instance_get(instance['uuid'])['task_state'])

    def test_without_an_image_the_503_stands(self):
        instance = self.boot_volume_backed()
        with self._answer_lost(after_the_work=False):
            self.assertRaises(exception.ComputeServiceUnavailable,
                              self.api.snapshot_volume_backed, self.ctx,
                              instance, 'vb', {})
        self.assertIsNone(
            self.db.instance_get(instance['uuid'])['task_state'])
