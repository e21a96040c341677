"""The periodic reconciler, one repair at a time.

Real SQLite database, the fake driver, and fakes at the Glance and Cinder
client boundaries; the clock is the test's (``self.now``).
"""

import contextlib
import datetime
import os
import shutil
import tempfile
import threading
import unittest
from unittest import mock
import uuid as uuidlib

from nova_snapshot.compute import api as compute_api
from nova_snapshot.compute import manager as compute_manager
from nova_snapshot.compute import power_state
from nova_snapshot.compute import reboot
from nova_snapshot.compute import rebuild
from nova_snapshot.compute import reconciler
from nova_snapshot.compute import shelve
from nova_snapshot.compute import task_states
from nova_snapshot.compute import volume_snapshot
from nova_snapshot import conf as ns_conf
from nova_snapshot import context as ns_context
from nova_snapshot.db import api as db_api
from nova_snapshot import exception
from nova_snapshot import service
from nova_snapshot.virt import fake as fake_virt
from tests.unit.compute import fakes

T0 = datetime.datetime(2026, 11, 27, 12, 0, 0)
HOST = 'host-a'


def iso(when):
    return when.strftime('%Y-%m-%dT%H:%M:%SZ')


class FakeManager(object):
    """What the reconciler asks of the ComputeManager: busy servers and
    their snapshot locks (taken without waiting)."""

    def __init__(self, busy=()):
        self.busy = set(busy)
        self.held = set()
        self.builds = []

    def build_instance(self, context, instance_uuid, image_ref):
        self.builds.append((context.request_id, instance_uuid, image_ref))

    def busy_instances(self):
        return set(self.busy)

    @contextlib.contextmanager
    def server_lock_if_free(self, uuid):
        if uuid in self.held:
            yield False
            return
        self.held.add(uuid)
        try:
            yield True
        finally:
            self.held.discard(uuid)


class SimpleCinder(object):
    """list/delete of snapshots, with the fields Cinder returns."""

    def __init__(self):
        self.snapshots = {}
        self.deleted = []
        self.reset = []
        self.list_contexts = []

    def add(self, instance_uuid, request_id, created_at, status='available'):
        snapshot = {'id': str(uuidlib.uuid4()), 'status': status,
                    'volume_id': 'vol-1', 'created_at': created_at,
                    'metadata': {volume_snapshot.INSTANCE_TAG: instance_uuid,
                                 volume_snapshot.REQUEST_TAG: request_id}}
        self.snapshots[snapshot['id']] = snapshot
        return snapshot

    def list_snapshots(self, context, volume_id=None, metadata=None):
        self.list_contexts.append(context)
        return [dict(s) for s in self.snapshots.values()
                if all(s['metadata'].get(k) == v
                       for k, v in (metadata or {}).items())]

    def reset_snapshot_status(self, context, snapshot_id, status='error'):
        self.snapshots[snapshot_id]['status'] = status
        self.reset.append(snapshot_id)

    def delete_snapshot(self, context, snapshot_id):
        if snapshot_id not in self.snapshots:
            raise exception.SnapshotNotFound(snapshot_id=snapshot_id)
        del self.snapshots[snapshot_id]
        self.deleted.append(snapshot_id)


class ReconcilerTestCase(unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.conf = ns_conf.new_conf([])
        self.conf.set_override('task_state_grace', 120, group='reconciler')
        self.conf.set_override('orphan_grace', 600, group='reconciler')
        self.conf.set_override('volume_snapshot_timeout', 60,
                               group='compute')
        tmpdir = tempfile.mkdtemp(prefix='ns-reconciler-')
        self.addCleanup(shutil.rmtree, tmpdir, True)
        self.db = db_api.Database(
            'sqlite:///%s' % os.path.join(tmpdir, 'state.sqlite'))
        self.db.create_schema()
        self.addCleanup(self.db.dispose)
        self.image_api = fakes.FakeImageAPI()
        self.cinder = SimpleCinder()
        self.driver = fake_virt.FakeDriver(self.conf, self.image_api)
        self.manager = FakeManager()
        self.now = T0
        self.reconciler = reconciler.Reconciler(
            self.conf, HOST, self.db, self.driver, self.image_api,
            volume_api=self.cinder, manager=self.manager,
            now=lambda: self.now)

    def later(self, seconds):
        self.now = T0 + datetime.timedelta(seconds=seconds)

    def instance(self, host=HOST, **values):
        row = {'name': 'vm', 'host': host, 'vm_state': 'active',
               'power_state': power_state.RUNNING, 'project_id': 'p1',
               'user_id': 'u1', 'created_at': T0, 'updated_at': T0}
        row.update(values)
        instance = self.db.instance_create(row)
        if host == HOST:
            self.driver.instances[instance['uuid']] = power_state.RUNNING
        return instance

    def start_action(self, instance, action=compute_api.ACTION_CREATE_IMAGE):
        ctx = ns_context.RequestContext(user_id='u1', project_id='p1')
        self.db.action_start(ctx, instance['uuid'], action)
        return ctx

    def pending_snapshot(self, state=task_states.IMAGE_SNAPSHOT_PENDING,
                         image_status='queued'):
        image = self.image_api.add_image(status=image_status,
                                         created_at=iso(T0))
        instance = self.instance(
            task_state=state,
            system_metadata={compute_api.SNAPSHOT_IMAGE_KEY: image['id'],
                             'image_base_image_ref': 'base'})
        ctx = self.start_action(instance)
        return instance, image, ctx

    def events(self, instance, ctx):
        return self.db.action_get_by_request_id(instance['uuid'],
                                                ctx.request_id)['events']


class TaskStateTest(ReconcilerTestCase):

    def test_lost_cast_is_released_after_the_grace(self):
        instance, image, ctx = self.pending_snapshot()
        self.later(119)
        self.assertFalse(self.reconciler.repair_task_state(instance, set()))
        self.assertEqual(task_states.IMAGE_SNAPSHOT_PENDING,
                         self.db.instance_get(instance['uuid'])['task_state'])

        self.later(121)
        self.assertTrue(self.reconciler.repair_task_state(instance, set()))
        after = self.db.instance_get(instance['uuid'])
        self.assertIsNone(after['task_state'])
        self.assertNotIn(compute_api.SNAPSHOT_IMAGE_KEY,
                         after['system_metadata'])
        self.assertEqual('base',
                         after['system_metadata']['image_base_image_ref'])
        self.assertEqual([image['id']], self.image_api.deleted)
        fault = self.db.fault_get_latest(instance['uuid'])
        self.assertIn('image_snapshot_pending', fault['message'])
        self.assertEqual(HOST, fault['host'])
        [event] = self.events(instance, ctx)
        self.assertEqual((reconciler.EVENT, 'Error'),
                         (event['event'], event['result']))
        self.assertIsNotNone(event['finish_time'])
        self.assertIn(instance['uuid'], self.driver.repaired)

    def test_a_snapshot_running_here_is_left_alone(self):
        instance, image, _ctx = self.pending_snapshot(
            state=task_states.IMAGE_UPLOADING)
        self.later(3600)
        self.assertFalse(self.reconciler.repair_task_state(
            instance, {instance['uuid']}))
        self.assertEqual(task_states.IMAGE_UPLOADING,
                         self.db.instance_get(instance['uuid'])['task_state'])
        self.assertEqual([], self.image_api.deleted)

    def test_without_busy_instances_nothing_is_released(self):
        instance, _image, _ctx = self.pending_snapshot()
        self.later(3600)
        self.assertFalse(self.reconciler.repair_task_state(instance, None))
        self.assertEqual(task_states.IMAGE_SNAPSHOT_PENDING,
                         self.db.instance_get(instance['uuid'])['task_state'])

    def test_the_server_lock_or_a_late_busy_keeps_the_state(self):
        instance, image, _ctx = self.pending_snapshot()
        self.later(3600)
        self.manager.held.add(instance['uuid'])
        self.assertFalse(self.reconciler.repair_task_state(instance, set()))
        self.manager.held.clear()
        self.manager.busy.add(instance['uuid'])
        self.assertFalse(self.reconciler.repair_task_state(instance, set()))
        self.assertEqual(task_states.IMAGE_SNAPSHOT_PENDING,
                         self.db.instance_get(instance['uuid'])['task_state'])
        self.assertEqual([], self.image_api.deleted)
        self.manager.busy.clear()
        self.assertTrue(self.reconciler.repair_task_state(instance, set()))

    def test_an_active_image_is_kept(self):
        instance, image, _ctx = self.pending_snapshot(
            state=task_states.IMAGE_UPLOADING, image_status='active')
        self.later(3600)
        self.assertTrue(self.reconciler.repair_task_state(instance, set()))
        self.assertIn(image['id'], self.image_api.images)
        self.assertEqual([], self.image_api.deleted)

    def test_a_cast_that_arrived_meanwhile_wins(self):
        instance, image, _ctx = self.pending_snapshot()
        self.later(3600)
        # The stale read says pending; the row moved on since.
        self.db.instance_update(instance['uuid'],
                                {'task_state': task_states.IMAGE_SNAPSHOT})
        self.assertFalse(self.reconciler.repair_task_state(instance, set()))
        self.assertEqual(task_states.IMAGE_SNAPSHOT,
                         self.db.instance_get(instance['uuid'])['task_state'])
        self.assertEqual([], self.image_api.deleted)
        self.assertIsNone(self.db.fault_get_latest(instance['uuid']))

    def test_a_glance_error_does_not_keep_the_lock(self):
        instance, image, _ctx = self.pending_snapshot()
        self.later(3600)

        def down(context, image_id):
            raise exception.GlanceConnectionFailed(reason='down')
        real_get = self.image_api.get
        self.image_api.get = down
        self.assertTrue(self.reconciler.repair_task_state(instance, set()))
        after = self.db.instance_get(instance['uuid'])
        self.assertIsNone(after['task_state'])
        self.assertIn(image['id'], self.image_api.images)
        # The reference moved to the leftovers; the next pass deletes it
        # and only then drops it.
        self.assertEqual(image['id'], after['system_metadata'][
            compute_api.SNAPSHOT_LEFTOVERS_KEY])
        self.assertEqual(0, self.reconciler.retry_leftovers(after, set()))
        self.image_api.get = real_get
        self.assertEqual(1, self.reconciler.retry_leftovers(after, set()))
        self.assertEqual([image['id']], self.image_api.deleted)
        self.assertNotIn(compute_api.SNAPSHOT_LEFTOVERS_KEY,
                         self.db.instance_get(
                             instance['uuid'])['system_metadata'])

    def test_leftovers_of_other_failures_are_retried_in_the_pass(self):
        first = self.image_api.add_image(status='queued')
        active = self.image_api.add_image(status='active')
        leftovers = '%s,%s' % (first['id'], active['id'])
        instance = self.instance(system_metadata={
            compute_api.SNAPSHOT_LEFTOVERS_KEY: leftovers})
        self.assertEqual(2, self.reconciler.run_pass()['images'])
        self.assertEqual([first['id']], self.image_api.deleted)
        self.assertIn(active['id'], self.image_api.images)
        self.assertNotIn(compute_api.SNAPSHOT_LEFTOVERS_KEY,
                         self.db.instance_get(
                             instance['uuid'])['system_metadata'])

    def test_a_volume_cut_hold_is_released_as_its_request(self):
        instance = self.instance(task_state=task_states.IMAGE_SNAPSHOT)
        ctx = self.start_action(instance)
        self.db.instance_update(instance['uuid'], {'system_metadata': {
            compute_api.VOLUME_SNAPSHOT_HOLD_KEY: ctx.request_id}})
        instance = self.db.instance_get(instance['uuid'])
        self.assertTrue(compute_api.in_volume_snapshot_cut(instance))
        self.now = datetime.datetime.utcnow() + datetime.timedelta(
            seconds=121)
        self.assertTrue(self.reconciler.repair_task_state(instance, set()))
        after = self.db.instance_get(instance['uuid'])
        self.assertIsNone(after['task_state'])
        self.assertNotIn(compute_api.VOLUME_SNAPSHOT_HOLD_KEY,
                         after['system_metadata'])
        [event] = self.events(instance, ctx)
        self.assertEqual(reconciler.EVENT, event['event'])

    def test_other_task_states_are_not_touched(self):
        instance = self.instance(task_state=task_states.POWERING_OFF)
        self.later(3600)
        self.assertFalse(self.reconciler.repair_task_state(instance, set()))


class ThawTest(ReconcilerTestCase):

    def test_a_frozen_guest_with_no_freeze_running_is_thawed(self):
        instance = self.instance()
        self.driver.frozen.add(instance['uuid'])
        done = self.reconciler.thaw_guest(instance, set())
        self.assertEqual(['thawed filesystems'], done)
        self.assertNotIn(instance['uuid'], self.driver.frozen)
        fault = self.db.fault_get_latest(instance['uuid'])
        self.assertIn('thawed filesystems', fault['message'])

    def test_a_guest_paused_by_a_freeze_is_resumed(self):
        instance = self.instance()
        self.driver.paused_vcpus.add(instance['uuid'])
        self.assertEqual(['resumed vcpus'],
                         self.reconciler.thaw_guest(instance, set()))

    def test_a_freeze_in_progress_is_left_alone(self):
        instance = self.instance()
        self.driver.frozen.add(instance['uuid'])
        self.assertEqual([], self.reconciler.thaw_guest(
            instance, {instance['uuid']}))
        self.assertEqual([], self.reconciler.thaw_guest(instance, None))
        # Not yet busy, but the server's lock is held: a freeze is
        # starting.
        self.manager.held.add(instance['uuid'])
        self.assertEqual([], self.reconciler.thaw_guest(instance, set()))
        self.manager.held.clear()
        self.assertIn(instance['uuid'], self.driver.frozen)
        self.assertIsNone(self.db.fault_get_latest(instance['uuid']))

    def test_the_server_lock_and_a_fresh_busy_read_are_respected(self):
        instance = self.instance()
        self.driver.frozen.add(instance['uuid'])
        self.manager.held.add(instance['uuid'])
        self.assertEqual([], self.reconciler.thaw_guest(instance, set()))
        self.manager.held.clear()
        # The pass read busy_instances() before a freeze started.
        self.manager.busy.add(instance['uuid'])
        self.assertEqual([], self.reconciler.thaw_guest(instance, set()))
        self.assertIn(instance['uuid'], self.driver.frozen)
        self.manager.busy.clear()
        self.assertEqual(['thawed filesystems'],
                         self.reconciler.thaw_guest(instance, set()))
        # Released after the thaw.
        self.assertEqual(set(), self.manager.held)

    def test_a_guest_its_user_paused_is_not_touched(self):
        instance = self.instance(vm_state='paused')
        self.driver.paused_vcpus.add(instance['uuid'])
        self.assertEqual([], self.reconciler.thaw_guest(instance, set()))
        self.assertIn(instance['uuid'], self.driver.paused_vcpus)

    def test_nothing_to_do_records_nothing(self):
        instance = self.instance()
        self.assertEqual([], self.reconciler.thaw_guest(instance, set()))
        self.assertIsNone(self.db.fault_get_latest(instance['uuid']))


class LostBuildTest(ReconcilerTestCase):

    def test_a_build_whose_cast_never_arrived_is_built_after_the_grace(self):
        instance = self.instance(vm_state='building', task_state='scheduling',
                                 image_ref='image-1')
        ctx = self.start_action(instance, compute_api.ACTION_CREATE)
        # task_state_grace is 120 s here.
        self.later(119)
        self.assertEqual(0, self.reconciler.run_pass()['lost_builds'])
        self.assertEqual([], self.manager.builds)
        self.later(121)
        self.assertEqual(1, self.reconciler.run_pass()['lost_builds'])
        # Under the create request, so its events land in the user's action.
        self.assertEqual([(ctx.request_id, instance['uuid'], 'image-1')],
                         self.manager.builds)

    def test_a_build_that_started_is_left_alone(self):
        instance = self.instance(vm_state='building', task_state='spawning')
        self.later(3600)
        self.assertEqual(0, self.reconciler.run_pass()['lost_builds'])
        self.assertEqual('spawning',
                         self.db.instance_get(instance['uuid'])['task_state'])


class SnapshotLeftoversTest(ReconcilerTestCase):
    """A snapshot that ended without putting its guest back (libvirtd
    restarted under a managed save): repaired without a service
    restart."""

    def test_a_guest_left_by_an_ended_snapshot_is_put_back(self):
        instance = self.instance()
        self.driver.snapshot_leftovers.add(instance['uuid'])
        self.assertEqual(1, self.reconciler.run_pass()['snapshot_leftovers'])
        self.assertEqual([instance['uuid']], self.driver.repaired)
        fault = self.db.fault_get_latest(instance['uuid'])
        self.assertIn('had left the guest', fault['message'])
        # Repaired once: the next pass finds nothing.
        self.assertEqual(0, self.reconciler.run_pass()['snapshot_leftovers'])

    def test_running_or_starting_snapshot_work_is_left_alone(self):
        instance = self.instance()
        self.driver.snapshot_leftovers.add(instance['uuid'])
        self.assertEqual([], self.reconciler.repair_snapshot_leftovers(
            instance, {instance['uuid']}))
        self.manager.held.add(instance['uuid'])
        self.assertEqual([], self.reconciler.repair_snapshot_leftovers(
            instance, set()))
        self.manager.held.clear()
        busy_task = self.instance(task_state=task_states.IMAGE_UPLOADING)
        self.driver.snapshot_leftovers.add(busy_task['uuid'])
        self.assertEqual([], self.reconciler.repair_snapshot_leftovers(
            busy_task, set()))
        self.assertEqual([], self.driver.repaired)


class RunningDeletedTest(ReconcilerTestCase):

    def deleted_instance(self, host=HOST):
        instance = self.instance(host=host)
        self.driver.instances[instance['uuid']] = power_state.RUNNING
        self.db.instance_destroy(instance['uuid'])
        return instance

    def live(self):
        return {i['uuid'] for i in self.db.instance_get_all(host=HOST)}

    def test_reap_destroys_the_guest_of_a_deleted_row(self):
        kept = self.instance()
        gone = self.deleted_instance()
        self.now = datetime.datetime.utcnow() + datetime.timedelta(seconds=1)
        self.assertEqual(1, self.reconciler.handle_running_deleted(
            self.live(), set()))
        self.assertEqual({kept['uuid']}, set(self.driver.instances))
        self.assertIn(('destroy', gone['uuid']), self.driver.calls)
        fault = self.db.fault_get_latest(gone['uuid'])
        self.assertIn('reaped', fault['message'])

    def test_timeout_defers_the_reap(self):
        gone = self.deleted_instance()
        self.conf.set_override('running_deleted_instance_timeout', 300)
        self.now = datetime.datetime.utcnow()
        self.assertEqual(0, self.reconciler.handle_running_deleted(
            self.live(), set()))
        self.assertIn(gone['uuid'], self.driver.instances)
        self.now += datetime.timedelta(seconds=301)
        self.assertEqual(1, self.reconciler.handle_running_deleted(
            self.live(), set()))
        self.assertNotIn(gone['uuid'], self.driver.instances)

    def test_log_and_noop_leave_the_guest(self):
        gone = self.deleted_instance()
        self.now = datetime.datetime.utcnow() + datetime.timedelta(seconds=1)
        self.conf.set_override('running_deleted_instance_action', 'log')
        with self.assertLogs(reconciler.LOG, 'WARNING') as logs:
            self.assertEqual(1, self.reconciler.handle_running_deleted(
                self.live(), set()))
        self.assertIn(gone['uuid'], '\n'.join(logs.output))
        self.conf.set_override('running_deleted_instance_action', 'noop')
        self.assertEqual(0, self.reconciler.handle_running_deleted(
            self.live(), set()))
        self.assertEqual(power_state.RUNNING,
                         self.driver.instances[gone['uuid']])

    def test_shutdown_powers_off_and_keeps(self):
        gone = self.deleted_instance()
        self.now = datetime.datetime.utcnow() + datetime.timedelta(seconds=1)
        self.conf.set_override('running_deleted_instance_action', 'shutdown')
        self.reconciler.handle_running_deleted(self.live(), set())
        self.assertEqual(power_state.SHUTDOWN,
                         self.driver.instances[gone['uuid']])

    def test_guests_of_other_hosts_or_unknown_are_left_alone(self):
        elsewhere = self.deleted_instance(host='host-b')
        live_elsewhere = self.instance(host='host-b')
        self.driver.instances[live_elsewhere['uuid']] = power_state.RUNNING
        unknown = str(uuidlib.uuid4())
        self.driver.instances[unknown] = power_state.RUNNING
        self.now = datetime.datetime.utcnow() + datetime.timedelta(days=2)
        self.assertEqual(0, self.reconciler.handle_running_deleted(
            self.live(), set()))
        self.assertEqual({elsewhere['uuid'], live_elsewhere['uuid'],
                          unknown}, set(self.driver.instances))

    def test_a_failing_destroy_does_not_stop_the_others(self):
        first = self.deleted_instance()
        second = self.deleted_instance()
        self.now = datetime.datetime.utcnow() + datetime.timedelta(seconds=1)
        real_destroy = self.driver.destroy_domain

        def destroy(uuid):
            if uuid == first['uuid']:
                raise exception.HypervisorError(reason='busy')
            real_destroy(uuid)
        self.driver.destroy_domain = destroy
        self.assertEqual(1, self.reconciler.handle_running_deleted(
            self.live(), set()))
        self.assertEqual({first['uuid']}, set(self.driver.instances))
        self.assertNotIn(second['uuid'], self.driver.instances)


class OrphanImageTest(ReconcilerTestCase):

    def snapshot_image(self, instance, status, created=T0, **extra):
        values = {'status': status, 'instance_uuid': instance['uuid'],
                  'image_type': 'snapshot', 'created_at': iso(created)}
        values.update(extra)
        return self.image_api.add_image(**values)

    def test_stale_unfinished_images_of_failed_requests_go(self):
        instance = self.instance()
        queued = self.snapshot_image(instance, 'queued')
        saving = self.snapshot_image(instance, 'saving')
        active = self.snapshot_image(instance, 'active')
        young = self.snapshot_image(instance, 'queued',
                                    created=T0 + datetime.timedelta(
                                        seconds=500))
        # createBackup's images are this host's captures too.
        backup = self.snapshot_image(instance, 'queued', image_type='backup')
        user_made = self.snapshot_image(instance, 'queued',
                                        image_type='test')
        other = self.image_api.add_image(status='queued',
                                         instance_uuid='someone-else',
                                         image_type='snapshot',
                                         created_at=iso(T0))
        self.later(601)
        self.assertEqual(3, self.reconciler.clean_orphan_images(instance,
                                                                set()))
        self.assertEqual({queued['id'], saving['id'], backup['id']},
                         set(self.image_api.deleted))
        for kept in (active, young, user_made, other):
            self.assertIn(kept['id'], self.image_api.images)
        fault = self.db.fault_get_latest(instance['uuid'])
        self.assertIn('deleted', fault['message'])

    def test_the_image_of_an_unfinished_snapshot_is_kept(self):
        image = self.image_api.add_image(status='saving',
                                         image_type='snapshot',
                                         created_at=iso(T0))
        instance = self.instance(
            task_state=task_states.IMAGE_UPLOADING,
            system_metadata={compute_api.SNAPSHOT_IMAGE_KEY: image['id']})
        self.image_api.images[image['id']]['instance_uuid'] = \
            instance['uuid']
        self.later(7200)
        self.assertEqual(0, self.reconciler.clean_orphan_images(instance,
                                                                set()))
        self.assertEqual(0, self.reconciler.clean_orphan_images(
            dict(instance, task_state=None), {instance['uuid']}))
        self.assertEqual([], self.image_api.deleted)

    def test_deleted_instances_of_this_host_are_looked_at(self):
        instance = self.instance()
        image = self.snapshot_image(instance, 'queued')
        self.db.instance_destroy(instance['uuid'])
        self.now = datetime.datetime.utcnow() + datetime.timedelta(hours=1)
        self.image_api.images[image['id']]['created_at'] = iso(
            self.now - datetime.timedelta(seconds=700))
        counts = self.reconciler.run_pass()
        self.assertEqual(1, counts['images'])
        self.assertEqual([image['id']], self.image_api.deleted)

    def test_one_glance_error_does_not_end_the_pass(self):
        first = self.instance()
        second = self.instance()
        broken = self.snapshot_image(first, 'queued')
        image = self.snapshot_image(second, 'queued')
        self.later(601)
        real_delete = self.image_api.delete

        def flaky(context, image_id):
            if image_id == broken['id']:
                raise exception.GlanceConnectionFailed(reason='timed out')
            return real_delete(context, image_id)
        self.image_api.delete = flaky
        with self.assertLogs(reconciler.LOG, 'ERROR'):
            counts = self.reconciler.run_pass()
        self.assertEqual(1, counts['images'])
        self.assertEqual([image['id']], self.image_api.deleted)

    def test_glance_down_waits_for_the_next_pass(self):
        instance = self.instance()
        image = self.snapshot_image(instance, 'saving')
        self.later(601)
        real_list = self.image_api.list

        def down(context, **filters):
            raise exception.GlanceConnectionFailed(reason='refused')
        self.image_api.list = down
        with self.assertLogs(reconciler.LOG, 'ERROR'):
            self.assertEqual(0, self.reconciler.run_pass()['images'])
        self.image_api.list = real_list
        self.assertEqual(1, self.reconciler.run_pass()['images'])
        self.assertEqual([image['id']], self.image_api.deleted)


class OrphanVolumeSnapshotTest(ReconcilerTestCase):

    def test_snapshots_no_active_image_records_go_after_the_grace(self):
        instance = self.instance()
        ctx = self.start_action(instance)
        orphan = self.cinder.add(instance['uuid'], ctx.request_id, iso(T0))
        recorded = self.cinder.add(instance['uuid'], 'req-ok', iso(T0))
        mapping = ('[{"source_type": "snapshot", "destination_type": '
                   '"volume", "snapshot_id": "%s", "boot_index": 0}]')
        self.image_api.add_image(
            status='active', created_at=iso(T0), bdm_v2='True', owner='p1',
            block_device_mapping=mapping % recorded['id'],
            **{volume_snapshot.REQUEST_TAG: 'req-ok'})
        unfinished = self.image_api.add_image(
            status='queued', created_at=iso(T0), owner='p1',
            **{volume_snapshot.REQUEST_TAG: ctx.request_id})
        # Another project's images tagged with the same request neither
        # keep the orphan nor get deleted.
        self.image_api.add_image(
            status='active', created_at=iso(T0), bdm_v2='True',
            owner='other', block_device_mapping=mapping % orphan['id'],
            **{volume_snapshot.REQUEST_TAG: ctx.request_id})
        self.image_api.add_image(
            status='queued', created_at=iso(T0), owner='other',
            **{volume_snapshot.REQUEST_TAG: ctx.request_id})
        # The grace is at least volume_snapshot_timeout + quiesce_deadline
        # + a minute (60 + 10 + 60) and orphan_grace (600).
        self.later(599)
        self.assertEqual(0, self.reconciler.clean_orphan_volume_snapshots(
            instance, set()))
        self.later(601)
        self.assertEqual(1, self.reconciler.clean_orphan_volume_snapshots(
            instance, set()))
        self.assertEqual([orphan['id']], self.cinder.deleted)
        self.assertEqual([unfinished['id']], self.image_api.deleted)
        [event] = self.events(instance, ctx)
        self.assertEqual((reconciler.EVENT, 'Error'),
                         (event['event'], event['result']))
        self.assertIn(orphan['id'], event['details'])
        # Cinder was asked in the instance's project (no token: the
        # service identity with Keystone).
        self.assertEqual('p1', self.cinder.list_contexts[0].project_id)
        self.assertIsNone(self.cinder.list_contexts[0].auth_token)

    def test_grace_grows_with_the_volume_snapshot_timeout(self):
        self.conf.set_override('volume_snapshot_timeout', 3600,
                               group='compute')
        instance = self.instance()
        self.cinder.add(instance['uuid'], 'req-x', iso(T0))
        self.later(3600)
        self.assertEqual(0, self.reconciler.clean_orphan_volume_snapshots(
            instance, set()))
        self.later(3600 + 10 + 61)
        self.assertEqual(1, self.reconciler.clean_orphan_volume_snapshots(
            instance, set()))

    def test_busy_or_unknown_busy_keeps_everything(self):
        instance = self.instance()
        self.cinder.add(instance['uuid'], 'req-x', iso(T0))
        self.later(86400)
        self.assertEqual(0, self.reconciler.clean_orphan_volume_snapshots(
            instance, {instance['uuid']}))
        self.assertEqual(0, self.reconciler.clean_orphan_volume_snapshots(
            instance, None))
        self.assertEqual([], self.cinder.deleted)

    def test_a_request_this_host_gave_up_waits_only_the_orphan_grace(self):
        # A cut may wait 1200 s for its snapshots; once the compute's event
        # of the request is finished nothing waits for them any more.
        self.conf.set_override('volume_snapshot_timeout', 1200,
                               group='compute')
        instance = self.instance()
        ctx = self.start_action(instance)
        self.db.action_event_start(ctx, instance['uuid'],
                                   reconciler.VOLUME_SNAPSHOT_EVENT,
                                   host=HOST)
        stuck = self.cinder.add(instance['uuid'], ctx.request_id, iso(T0),
                                status='creating')
        self.later(601)
        self.assertEqual(0, self.reconciler.clean_orphan_volume_snapshots(
            instance, set()))
        self.db.action_event_finish(ctx, instance['uuid'],
                                    reconciler.VOLUME_SNAPSHOT_EVENT, 'Error')
        self.assertEqual(1, self.reconciler.clean_orphan_volume_snapshots(
            instance, set()))
        self.assertEqual([stuck['id']], self.cinder.reset)
        self.assertEqual([stuck['id']], self.cinder.deleted)

    def test_creating_snapshots_wait_until_they_are_stuck(self):
        instance = self.instance()
        stuck = self.cinder.add(instance['uuid'], 'req-x', iso(T0),
                                status='creating')
        # The volume grace (600 s here) is longer than a cut waits for
        # its snapshots: until then Cinder may still be making it.
        self.later(599)
        self.assertEqual(0, self.reconciler.clean_orphan_volume_snapshots(
            instance, set()))
        self.assertEqual([], self.cinder.reset)
        # Then it was lost between cinder-api and cinder-volume: reset to
        # error (the only way Cinder lets it go) and deleted.
        self.later(601)
        self.assertEqual(1, self.reconciler.clean_orphan_volume_snapshots(
            instance, set()))
        self.assertEqual([stuck['id']], self.cinder.reset)
        self.assertEqual([stuck['id']], self.cinder.deleted)

    def test_an_interrupted_volume_snapshot_event_is_finished(self):
        instance = self.instance()
        ctx = self.start_action(instance)
        self.db.action_event_start(ctx, instance['uuid'],
                                   reconciler.VOLUME_SNAPSHOT_EVENT,
                                   host=HOST)
        snapshot = self.cinder.add(instance['uuid'], ctx.request_id,
                                   iso(T0))
        self.now = datetime.datetime.utcnow() + datetime.timedelta(
            seconds=121)
        self.assertEqual(1, self.reconciler.finish_stale_events(instance,
                                                                set()))
        self.assertEqual([snapshot['id']], self.cinder.deleted)
        events = {e['event']: e for e in self.events(instance, ctx)}
        self.assertEqual('Error',
                         events[reconciler.VOLUME_SNAPSHOT_EVENT]['result'])
        self.assertEqual([], self.db.action_events_unfinished(
            instance['uuid'], reconciler.VOLUME_SNAPSHOT_EVENT, HOST))

    def test_an_interrupted_reboot_event_is_finished_once_released(self):
        instance = self.instance()
        ctx = self.start_action(instance)
        self.db.action_event_start(ctx, instance['uuid'], reboot.EVENT,
                                   host=HOST)
        self.now = datetime.datetime.utcnow() + datetime.timedelta(
            seconds=121)
        # Still rebooting: the action may be running (its own end
        # finishes the event).
        held = dict(instance, task_state='reboot_started_hard')
        self.reconciler.finish_stale_events(held, set())
        self.assertEqual(1, len(self.db.action_events_unfinished(
            instance['uuid'], reboot.EVENT, HOST)))
        # Released by the start-up repair: nobody will finish it.
        self.reconciler.finish_stale_events(instance, set())
        self.assertEqual([], self.db.action_events_unfinished(
            instance['uuid'], reboot.EVENT, HOST))
        events = {e['event']: e for e in self.events(instance, ctx)}
        self.assertEqual('Error', events[reboot.EVENT]['result'])

    def test_action_events_cover_shelve_rebuild_reboot(self):
        for name in (shelve.EVENT_SHELVE, shelve.EVENT_OFFLOAD,
                     shelve.EVENT_UNSHELVE, rebuild.EVENT, reboot.EVENT):
            self.assertIn(name, reconciler.ACTION_EVENTS)

    def test_event_names_match_the_manager(self):
        self.assertEqual(compute_manager.SNAPSHOT_EVENT,
                         reconciler.SNAPSHOT_EVENT)
        self.assertEqual(compute_manager.VOLUME_SNAPSHOT_EVENT,
                         reconciler.VOLUME_SNAPSHOT_EVENT)


class PassTest(ReconcilerTestCase):

    def test_a_pass_stops_at_its_timeout(self):
        for _ in range(3):
            self.instance()
        ticks = iter(range(0, 10000, 200))
        self.reconciler._clock = lambda: next(ticks)
        self.conf.set_override('pass_timeout', 300, group='reconciler')
        with self.assertLogs(reconciler.LOG, 'WARNING') as logs:
            self.reconciler.run_pass()
        self.assertIn('pass_timeout', '\n'.join(logs.output))

    def test_a_set_stop_event_ends_the_pass(self):
        self.instance()
        stop = threading.Event()
        stop.set()
        counts = self.reconciler.run_pass(stop=stop)
        self.assertEqual(0, sum(counts.values()))

    def test_first_delay_is_jittered_and_bounded(self):
        self.conf.set_override('startup_delay', 30, group='reconciler')
        self.conf.set_override('interval', 10, group='reconciler')
        self.assertEqual((5.0, 10),
                         service.first_reconcile_delay(
                             self.conf, rand=lambda a, b: (a, b)))
        delays = {service.first_reconcile_delay(self.conf)
                  for _ in range(20)}
        self.assertTrue(all(5.0 <= d <= 10 for d in delays))
        self.assertGreater(len(delays), 1)


class ServiceLoopTest(fakes.ComputeTestCase):
    """The compute service runs the pass periodically; 0 disables it."""

    def setUp(self):
        self.passes = []
        self.ran = threading.Event()
        real = reconciler.Reconciler.run_pass

        def counting(reconciler_self, stop=None):
            self.passes.append(stop)
            self.ran.set()
            return real(reconciler_self, stop=stop)
        patcher = mock.patch.object(reconciler.Reconciler, 'run_pass',
                                    counting)
        patcher.start()
        self.addCleanup(patcher.stop)
        super().setUp()

    def test_passes_run_after_a_short_start_delay(self):
        self.service.stop()
        self.conf.set_override('interval', 1, group='reconciler')
        self.conf.set_override('startup_delay', 0.2, group='reconciler')
        self.service.start()
        self.assertTrue(self.ran.wait(5))
        fakes.wait_for(lambda: len(self.passes) >= 2, timeout=5,
                       message='a second pass')
        self.assertIs(self.service._stopping, self.passes[0])

    def test_interval_zero_disables(self):
        self.service.stop()
        self.conf.set_override('interval', 0, group='reconciler')
        self.conf.set_override('startup_delay', 0, group='reconciler')
        self.service.start()
        self.assertIsNone(self.service._reconciler_thread)
        self.assertFalse(self.ran.wait(0.5))


if __name__ == '__main__':
    unittest.main()


class WithTheManagerTest(fakes.ComputeTestCase):
    """The reconciler of a running service, reading the real manager's
    busy_instances()."""

    def setUp(self):
        super().setUp()
        self.reconciler = self.service.reconciler
        self.reconciler._now = lambda: (
            datetime.datetime.utcnow() + datetime.timedelta(
                seconds=self.conf.reconciler.task_state_grace + 1))

    def test_a_lost_cast_is_released_a_held_snapshot_is_not(self):
        lost = self.boot('lost')
        with mock.patch.object(self.rpcapi, 'snapshot_instance'):
            image = self.api.snapshot(self.ctx, lost, 'lost-cast', {})
        self.assertEqual(task_states.IMAGE_SNAPSHOT_PENDING,
                         self.db.instance_get(lost['uuid'])['task_state'])
        held = self.boot('held')
        held_image, gate = self.start_held_snapshot(held, 'held')

        counts = self.reconciler.run_pass()
        self.assertEqual(1, counts['task_states'])
        self.assertIsNone(self.db.instance_get(lost['uuid'])['task_state'])
        self.assertIn(image['id'], self.image_api.deleted)
        action = self.db.action_get_by_request_id(lost['uuid'],
                                                  self.ctx.request_id)
        self.assertIn(reconciler.EVENT,
                      [e['event'] for e in action['events']])
        self.assertEqual(task_states.IMAGE_PENDING_UPLOAD,
                         self.db.instance_get(held['uuid'])['task_state'])
        self.assertNotIn(held_image['id'], self.image_api.deleted)
        gate.set()
        self.wait_idle(held['uuid'])
        self.assertEqual('active',
                         self.image_api.get(self.ctx,
                                            held_image['id'])['status'])
