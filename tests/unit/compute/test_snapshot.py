"""createImage end to end inside one process: ComputeAPI -> fake:/ RPC ->
ComputeManager -> FakeDriver, state in SQLite, images in a fake Glance."""


from nova_snapshot.compute import api as compute_api
from nova_snapshot.compute import manager as compute_manager
from nova_snapshot.compute import task_states
from nova_snapshot import exception
from tests.unit.compute import fakes


class SnapshotHappyPathTest(fakes.ComputeTestCase):

    def test_task_states_image_and_records(self):
        instance = self.boot()
        image = self.api.snapshot(self.ctx, instance, 'snap-1', {})
        self.assertEqual('queued', image['status'])
        done = self.wait_idle(instance['uuid'])

        # The whole task_state machine, as written to the database.
        self.assertEqual(
            ['image_snapshot_pending', 'image_snapshot',
             'image_pending_upload', 'image_uploading', None],
            self.db.task_states_of(instance['uuid'])[-5:])
        self.assertEqual('active', done['vm_state'])
        self.assertEqual(0, done['progress'])
        self.assertNotIn(compute_api.SNAPSHOT_IMAGE_KEY,
                         done['system_metadata'])

        stored = self.image_api.get(self.ctx, image['id'])
        self.assertEqual('active', stored['status'])
        self.assertEqual(self.driver.snapshot_data,
                         self.image_api.data[image['id']])

        self.wait_for_event(instance['uuid'], 'compute_snapshot_instance')
        actions = self.api.get_instance_actions(self.ctx, instance)
        self.assertEqual('createImage', actions[0]['action'])
        action = self.api.get_instance_action(self.ctx, instance,
                                              self.ctx.request_id)
        events = {e['event']: e for e in action['events']}
        self.assertEqual('Success',
                         events['compute_snapshot_instance']['result'])
        self.assertIn('bytes_uploaded=%d' % len(self.driver.snapshot_data),
                      events['compute_snapshot_instance']['details'])
        self.assertIsNone(self.api.get(self.ctx, instance['uuid'])['fault'])

        end = fakes.wait_for(
            lambda: self.notifications.of_type('instance.snapshot.end'),
            message='instance.snapshot.end')
        start = self.notifications.of_type('instance.snapshot.start')
        self.assertEqual(1, len(start))
        for note in start + end:
            self.assertEqual('nova-snapshot-compute:host-a',
                             note['publisher_id'])
            self.assertEqual(instance['uuid'],
                             note['payload']['instance_uuid'])
            self.assertEqual(image['id'],
                             note['payload']['snapshot_image_id'])
        self.assertEqual('image_snapshot', start[0]['payload']['task_state'])
        self.assertIsNone(end[0]['payload']['task_state'])

    def test_image_properties_exact(self):
        instance = self.boot(flavor='1')
        image = self.api.snapshot(self.ctx, instance, 'snap-props',
                                  {'purpose': 'backup', 'os_distro': 'mine'})
        created = self.image_api.get(self.ctx, image['id'])
        expected = {
            'id': image['id'], 'name': 'snap-props', 'status': 'queued',
            'owner': 'project-1', 'size': None, 'visibility': 'private',
            # m1.nano has a 1 GB root disk: min_disk raised from 0 to 1.
            'min_ram': 64, 'min_disk': 1,
            # inherited base-image properties (signature, encryption and
            # cache_in_nova are not)
            'hw_disk_bus': 'virtio', 'kernel_id': 'kid',
            'base_image_ref': self.base_image['id'],
            # the snapshot's own, then user metadata, which wins
            'image_type': 'snapshot', 'instance_uuid': instance['uuid'],
            'user_id': 'user-1', 'purpose': 'backup', 'os_distro': 'mine',
        }
        self.assertEqual(expected, created)
        self.assertNotIn(image['id'], self.image_api.members)
        self.wait_idle(instance['uuid'])

    def test_user_metadata_overrides_image_type(self):
        # tempest test_create_delete_image sends image_type=test.
        instance = self.boot()
        image = self.api.snapshot(self.ctx, instance, 'snap',
                                  {'image_type': 'test'})
        self.wait_idle(instance['uuid'])
        stored = self.image_api.get(self.ctx, image['id'])
        self.assertEqual('test', stored['image_type'])
        self.assertEqual('active', stored['status'])
        self.assertEqual(self.base_image['min_ram'], stored['min_ram'])

    def test_admin_snapshot_of_other_project_is_shared(self):
        instance = self.boot()
        admin = self.user_context('admin-user', 'admin-project', admin=True)
        image = self.api.snapshot(admin, instance, 'snap', None)
        created = self.image_api.images[image['id']]
        self.assertEqual('shared', created['visibility'])
        self.assertEqual('admin-user', created['user_id'])
        self.assertEqual(['project-1'], self.image_api.members[image['id']])
        self.wait_idle(instance['uuid'])

    def test_snapshot_of_stopped_paused_suspended(self):
        for method in ('stop', 'pause', 'suspend'):
            instance = self.boot(name=method)
            getattr(self.api, method)(self.ctx, instance)
            instance = self.wait_idle(instance['uuid'])
            image = self.api.snapshot(self.ctx, instance, 'snap', {})
            after = self.wait_idle(instance['uuid'])
            self.assertEqual(instance['vm_state'], after['vm_state'])
            self.assertEqual(
                'active', self.image_api.get(self.ctx, image['id'])['status'])


class SnapshotStateCheckTest(fakes.ComputeTestCase):

    def assertRefused(self, instance, attr, state):
        before = set(self.image_api.images)
        exc = self.raises(exception.InstanceInvalidState,
                          self.api.snapshot, self.ctx, instance,
                          'snap', {})
        self.assertEqual(409, exc.code)
        self.assertEqual(attr, exc.kwargs['attr'])
        self.assertEqual(state, exc.kwargs['state'])
        self.assertEqual('createImage', exc.kwargs['method'])
        # Checked before any side effect: no image was left behind.
        self.assertEqual(before, set(self.image_api.images))

    def test_refused_states(self):
        instance = self.boot()
        for vm_state in ('building', 'error', 'deleted'):
            self.assertRefused(dict(instance, vm_state=vm_state),
                               'vm_state', vm_state)
        self.assertRefused(dict(instance, task_state='powering-off'),
                           'task_state', 'powering-off')
        self.assertRefused(dict(instance, launched_at=None),
                           'launched_at', None)

    def test_second_snapshot_while_first_runs_is_409(self):
        instance = self.boot()
        first, gate = self.start_held_snapshot(instance, 'first')
        # The stale dict passes the early check; the CAS must stop it.
        before = set(self.image_api.images)
        exc = self.raises(exception.InstanceInvalidState,
                          self.api.snapshot, self.ctx, instance,
                          'second', {})
        self.assertEqual('task_state', exc.kwargs['attr'])
        self.assertEqual('image_pending_upload', exc.kwargs['state'])
        self.assertEqual(before, set(self.image_api.images))
        self.assertEqual(1, len(self.image_api.deleted))
        # A fresh read is refused by the state check itself.
        fresh = self.api.get(self.ctx, instance['uuid'])
        self.assertRaises(exception.InstanceInvalidState, self.api.snapshot,
                          self.ctx, fresh, 'third', {})
        gate.set()
        self.wait_idle(instance['uuid'])
        self.assertEqual(
            'active', self.image_api.get(self.ctx, first['id'])['status'])

    def test_instance_deleted_before_cas_gives_409_and_no_image(self):
        instance = self.boot()
        self.db.instance_destroy(instance['uuid'])
        exc = self.raises(exception.InstanceInvalidState,
                          self.api.snapshot, self.ctx, instance,
                          'snap', {})
        self.assertEqual(('vm_state', 'deleted'),
                         (exc.kwargs['attr'], exc.kwargs['state']))
        self.assertEqual(1, len(self.image_api.deleted))
        self.assertEqual({self.base_image['id']}, set(self.image_api.images))

    def test_volume_backed(self):
        instance = self.boot()
        self.assertFalse(self.api.is_volume_backed(self.ctx, instance))
        self.assertTrue(self.api.is_volume_backed(
            self.ctx, dict(instance, image_ref='')))
        self.db.bdm_create({'instance_uuid': instance['uuid'],
                            'boot_index': 0, 'source_type': 'volume',
                            'destination_type': 'volume', 'volume_id': 'v1'})
        self.assertTrue(self.api.is_volume_backed(self.ctx, instance))
        self.assertRaises(exception.VolumeBackedSnapshotNotSupported,
                          self.api.snapshot_volume_backed, self.ctx,
                          instance, 'snap', {})


class SnapshotFailureTest(fakes.ComputeTestCase):

    def _fail_and_check(self, fail_at):
        instance = self.boot()
        self.driver.fail_snapshot_at = fail_at
        self.driver.fail_snapshot_with = exception.SnapshotCaptureFailed(
            instance_uuid=instance['uuid'], reason='disk on fire')
        image = self.api.snapshot(self.ctx, instance, 'snap', {})
        after = self.wait_idle(instance['uuid'])

        self.assertNotIn(image['id'], self.image_api.images)
        self.assertIn(image['id'], self.image_api.deleted)
        self.assertEqual('active', after['vm_state'])
        self.assertIsNone(after['task_state'])
        self.assertEqual(0, after['progress'])
        self.assertNotIn(compute_api.SNAPSHOT_IMAGE_KEY,
                         after['system_metadata'])
        fault = self.api.get(self.ctx, instance['uuid'])['fault']
        self.assertEqual(500, fault['code'])
        self.assertIn('disk on fire', fault['message'])
        self.assertNotIn('Traceback', fault['details'])

        action = self.api.get_instance_action(self.ctx, instance,
                                              self.ctx.request_id)
        self.assertEqual('Error', action['message'])
        event = action['events'][0]
        self.assertEqual(('compute_snapshot_instance', 'Error'),
                         (event['event'], event['result']))
        error = fakes.wait_for(
            lambda: self.notifications.of_type('instance.snapshot.error'),
            message='instance.snapshot.error')[0]
        self.assertEqual('ERROR', error['priority'])
        self.assertEqual(image['id'], error['payload']['snapshot_image_id'])
        self.assertEqual('SnapshotCaptureFailed',
                         error['payload']['fault']['exception'])
        self.assertEqual([], self.notifications.of_type(
            'instance.snapshot.end'))
        return instance

    def test_driver_fails_at_start(self):
        self._fail_and_check('start')

    def test_driver_fails_during_upload(self):
        instance = self._fail_and_check('upload')
        self.assertIn('image_uploading',
                      self.db.task_states_of(instance['uuid']))

    def test_a_new_snapshot_works_after_a_failure(self):
        instance = self._fail_and_check('capture')
        self.driver.fail_snapshot_with = None
        image = self.api.snapshot(self.ctx, self.db.instance_get(
            instance['uuid']), 'again', {})
        self.wait_idle(instance['uuid'])
        self.assertEqual(
            'active', self.image_api.get(self.ctx, image['id'])['status'])

    def test_instance_deleted_during_snapshot(self):
        instance = self.boot()
        image, gate = self.start_held_snapshot(instance, 'snap')
        self.api.delete(self.ctx, self.db.instance_get(instance['uuid']))
        fakes.wait_for(lambda: instance['uuid'] not in self.driver.instances,
                       message='guest destroyed')
        gate.set()
        self.assertTrue(self.manager.wait_for_tasks(10))

        def gone():
            try:
                self.db.instance_get(instance['uuid'])
            except exception.InstanceNotFound:
                return True
            return False
        fakes.wait_for(gone, message='instance row deleted')
        # Quiet cleanup: the unfinished image is gone, nothing else said.
        self.assertNotIn(image['id'], self.image_api.images)
        self.assertEqual([], self.notifications.of_type(
            'instance.snapshot.error'))

    def test_user_deleted_image_mid_flight(self):
        instance = self.boot()
        image, gate = self.start_held_snapshot(instance, 'snap')
        self.image_api.delete(self.ctx, image['id'])
        gate.set()
        after = self.wait_idle(instance['uuid'])
        self.assertEqual('active', after['vm_state'])
        # The user's own doing: no fault on the server.
        self.assertIsNone(self.api.get(self.ctx, instance['uuid'])['fault'])


class ProgressTest(fakes.ComputeTestCase):

    def test_progress_is_rate_limited_and_final_100_written(self):
        instance = self.boot()
        writes = []
        real_update = self.db.instance_update

        def spy(uuid, values, *args, **kwargs):
            if set(values) == {'progress'}:
                writes.append(values['progress'])
            return real_update(uuid, values, *args, **kwargs)

        self.db.instance_update = spy
        reporter = compute_manager._ProgressReporter(self.db,
                                                     instance['uuid'], 60)
        for percent in (0, 10, 20, 30):
            reporter(percent)
        reporter.finish()
        self.assertEqual([0, 100], writes)
        self.assertEqual(100, self.db.instance_get(instance['uuid'])
                         ['progress'])


class RepairAtStartTest(fakes.ComputeTestCase):

    def test_init_host_repairs_interrupted_snapshots(self):
        instances = [self.boot(name='vm-%d' % i) for i in range(3)]
        images = []
        for instance, task_state in zip(instances[:2], (
                task_states.IMAGE_UPLOADING, task_states.IMAGE_SNAPSHOT)):
            image = self.image_api.create(self.ctx, {'name': 'left'})
            images.append(image)
            sysmeta = dict(instance['system_metadata'])
            sysmeta[compute_api.SNAPSHOT_IMAGE_KEY] = image['id']
            self.db.instance_update(instance['uuid'], {
                'task_state': task_state, 'system_metadata': sysmeta})
        # The second one made it to active before the crash: keep it.
        self.image_api.images[images[1]['id']]['status'] = 'active'

        self.manager.init_host()

        self.assertEqual(sorted(i['uuid'] for i in instances[:2]),
                         sorted(self.driver.repaired))
        self.assertNotIn(images[0]['id'], self.image_api.images)
        self.assertIn(images[1]['id'], self.image_api.images)
        for instance in instances[:2]:
            after = self.api.get(self.ctx, instance['uuid'])
            self.assertIsNone(after['task_state'])
            self.assertEqual('active', after['vm_state'])
            self.assertNotIn(compute_api.SNAPSHOT_IMAGE_KEY,
                             after['system_metadata'])
            self.assertIn('interrupted', after['fault']['message'])
        self.assertIsNone(self.api.get(self.ctx, instances[2]['uuid'])
                          ['fault'])

    def test_init_host_syncs_power_state(self):
        instance = self.boot()
        # Shut down behind our back.
        self.driver.instances[instance['uuid']] = 4
        self.manager.init_host()
        self.assertEqual(4, self.db.instance_get(instance['uuid'])
                         ['power_state'])

    def test_snapshot_cast_after_restart_cleans_up(self):
        # The API set image_snapshot_pending, then the compute service
        # restarted and cleared it before the cast was processed.
        instance = self.boot()
        image = self.image_api.create(self.ctx, {'name': 'orphan'})
        self.db.action_start(self.ctx, instance['uuid'], 'createImage')
        self.manager.snapshot_instance(self.ctx, instance['uuid'],
                                       image['id'])
        # The check runs with the queued work.
        self.assertTrue(self.manager.wait_for_tasks(10))
        self.assertNotIn(image['id'], self.image_api.images)
        self.assertIsNone(self.db.instance_get(instance['uuid'])
                          ['task_state'])
        # Not the instance's doing: the event says it, no fault.
        self.assertIsNone(self.api.get(self.ctx, instance['uuid'])['fault'])
        event = self.wait_for_event(instance['uuid'],
                                    compute_manager.SNAPSHOT_EVENT)
        self.assertEqual('Error', event['result'])
