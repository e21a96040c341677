"""shelve, shelveOffload and unshelve through ComputeAPI and the manager
over fake:/ RPC (FakeDriver, fake Glance, SQLite; FakeCinder for the
volume-backed cases)."""

import datetime
from unittest import mock

from oslo_utils import timeutils

from nova_snapshot.compute import power_state
from nova_snapshot.compute import shelve
from nova_snapshot.compute import task_states
from nova_snapshot.compute import vm_states
from nova_snapshot import exception
from nova_snapshot import rpc
from nova_snapshot import service
from tests.unit.compute import fakes
from tests.unit.compute import volume_fakes


def _usage(db, host):
    node = db.compute_node_get(host)
    return (node['memory_mb_used'], node['local_gb_used'],
            node['vcpus_used'])


class ShelveTestCase(fakes.ComputeTestCase):

    def wait_state(self, uuid, vm_state):
        self.manager.wait_for_tasks(10)
        return self.wait_for_instance(
            uuid, lambda i: i['vm_state'] == vm_state and
            i['task_state'] is None, '%s and idle' % vm_state)

    def shelved_image(self, instance):
        image_id = instance['system_metadata'][shelve.SHELVED_IMAGE_KEY]
        return self.image_api.images.get(image_id)


class ImageBackedShelveTest(ShelveTestCase):

    def test_shelve_offloads_at_once_and_unshelve_boots_from_image(self):
        instance = self.boot()
        self.assertNotEqual((0, 0, 0), _usage(self.db, self.HOST))
        self.api.shelve(self.ctx, instance)
        offloaded = self.wait_state(instance['uuid'],
                                    vm_states.SHELVED_OFFLOADED)
        self.assertIsNone(offloaded['host'])
        self.assertEqual(power_state.SHUTDOWN, offloaded['power_state'])
        self.assertEqual((0, 0, 0), (offloaded['claimed_memory_mb'],
                                     offloaded['claimed_disk_gb'],
                                     offloaded['claimed_vcpus']))
        self.assertEqual((0, 0, 0), _usage(self.db, self.HOST))
        self.assertNotIn(instance['uuid'], self.driver.instances)
        image = self.shelved_image(offloaded)
        self.assertEqual('vm-shelved', image['name'])
        self.assertEqual('active', image['status'])
        self.assertEqual('snapshot', image['image_type'])
        self.assertEqual(instance['uuid'], image['instance_uuid'])
        sysmeta = offloaded['system_metadata']
        self.assertEqual(self.HOST, sysmeta[shelve.SHELVED_HOST_KEY])
        self.assertIn(shelve.SHELVED_AT_KEY, sysmeta)
        self.assertNotIn(shelve.SHELVING_IMAGE_KEY, sysmeta)
        states = self.db.task_states_of(instance['uuid'])
        for state in (task_states.SHELVING,
                      task_states.SHELVING_IMAGE_PENDING_UPLOAD,
                      task_states.SHELVING_IMAGE_UPLOADING,
                      task_states.SHELVING_OFFLOADING):
            self.assertIn(state, states)
        self.wait_for_event(instance['uuid'], shelve.EVENT_OFFLOAD)

        ctx = self.user_context()
        self.api.unshelve(ctx, offloaded)
        active = self.wait_state(instance['uuid'], vm_states.ACTIVE)
        self.assertEqual(self.HOST, active['host'])
        self.assertEqual(power_state.RUNNING, active['power_state'])
        self.assertNotEqual(0, active['claimed_memory_mb'])
        self.assertNotEqual((0, 0, 0), _usage(self.db, self.HOST))
        self.assertIn('booted from image %s' % image['id'],
                      self.driver.consoles[instance['uuid']])
        self.assertNotIn(image['id'], self.image_api.images)
        for key in shelve.SHELVED_KEYS:
            self.assertNotIn(key, active['system_metadata'])
        # The server keeps the image it was created from.
        self.assertEqual(self.base_image['id'], active['image_ref'])
        self.assertIn(task_states.SPAWNING,
                      self.db.task_states_of(instance['uuid']))
        event = self.wait_for_event(instance['uuid'], shelve.EVENT_UNSHELVE,
                                    ctx=ctx)
        self.assertEqual('Success', event['result'])

    def test_shelved_stays_on_host_and_unshelves_in_place(self):
        self.conf.set_override('shelved_offload_time', -1)
        instance = self.boot()
        self.api.shelve(self.ctx, instance)
        shelved = self.wait_state(instance['uuid'], vm_states.SHELVED)
        self.assertEqual(self.HOST, shelved['host'])
        self.assertEqual(power_state.SHUTDOWN, shelved['power_state'])
        self.assertNotEqual(0, shelved['claimed_memory_mb'])
        image = self.shelved_image(shelved)
        self.api.unshelve(self.user_context(), shelved)
        active = self.wait_state(instance['uuid'], vm_states.ACTIVE)
        self.assertEqual(power_state.RUNNING, active['power_state'])
        self.assertNotIn(image['id'], self.image_api.images)
        self.assertNotIn(shelve.SHELVED_IMAGE_KEY, active['system_metadata'])

    def test_admin_offload_of_shelved_server(self):
        self.conf.set_override('shelved_offload_time', -1)
        instance = self.boot()
        self.api.shelve(self.ctx, instance)
        shelved = self.wait_state(instance['uuid'], vm_states.SHELVED)
        self.api.shelve_offload(self.user_context(admin=True), shelved)
        offloaded = self.wait_state(instance['uuid'],
                                    vm_states.SHELVED_OFFLOADED)
        self.assertIsNone(offloaded['host'])
        self.assertIsNotNone(self.shelved_image(offloaded))

    def test_periodic_offload_after_shelved_offload_time(self):
        self.conf.set_override('shelved_offload_time', 600)
        instance = self.boot()
        self.api.shelve(self.ctx, instance)
        shelved = self.wait_state(instance['uuid'], vm_states.SHELVED)
        shelve_work = self.manager._shelve
        admin = self.user_context(admin=True)
        self.assertEqual([], shelve_work.offload_expired(admin))
        later = timeutils.utcnow() + datetime.timedelta(seconds=601)
        self.assertEqual([instance['uuid']],
                         shelve_work.offload_expired(admin, now=later))
        offloaded = self.db.instance_get(shelved['uuid'])
        self.assertEqual(vm_states.SHELVED_OFFLOADED, offloaded['vm_state'])
        self.assertIsNone(offloaded['host'])

    def test_shelve_from_stopped_paused_and_suspended(self):
        self.conf.set_override('shelved_offload_time', -1)
        for method in ('stop', 'pause', 'suspend'):
            with self.subTest(method=method):
                instance = self.boot()
                getattr(self.api, method)(self.ctx, instance)
                instance = self.wait_idle(instance['uuid'])
                self.api.shelve(self.ctx, instance)
                shelved = self.wait_state(instance['uuid'], vm_states.SHELVED)
                self.assertEqual(power_state.SHUTDOWN,
                                 shelved['power_state'])

    def test_other_actions_conflict_in_shelved_states(self):
        self.conf.set_override('shelved_offload_time', -1)
        instance = self.boot()
        self.raises(exception.InstanceInvalidState, self.api.unshelve,
                    self.ctx, instance)
        self.raises(exception.InstanceInvalidState, self.api.shelve_offload,
                    self.ctx, instance)
        self.api.shelve(self.ctx, instance)
        shelved = self.wait_state(instance['uuid'], vm_states.SHELVED)
        for method in ('stop', 'start', 'pause', 'unpause', 'suspend',
                       'resume', 'shelve'):
            with self.subTest(method=method):
                self.raises(exception.InstanceInvalidState,
                            getattr(self.api, method), self.ctx, shelved)
        self.raises(exception.InstanceInvalidState, self.api.snapshot,
                    self.ctx, shelved, 'snap')
        # 2.77/2.91 arguments need an offloaded server (Nova's 409).
        exc = self.raises(shelve.UnshelveInstanceInvalidState,
                          self.api.unshelve, self.ctx, shelved, new_az='nova')
        self.assertEqual(409, exc.code)
        self.api.shelve_offload(self.ctx, shelved)
        offloaded = self.wait_state(instance['uuid'],
                                    vm_states.SHELVED_OFFLOADED)
        for method in ('stop', 'start', 'shelve', 'shelve_offload'):
            with self.subTest(method=method):
                self.raises(exception.InstanceInvalidState,
                            getattr(self.api, method), self.ctx, offloaded)
        self.raises(exception.Invalid, self.api.unshelve, self.ctx,
                    offloaded, new_az='elsewhere')
        self.raises(exception.ComputeHostNotFound, self.api.unshelve,
                    self.ctx, offloaded, host='no-such-host')
        self.assertEqual(vm_states.SHELVED_OFFLOADED, self.db.instance_get(
            instance['uuid'])['vm_state'])

    def test_second_shelve_loses_the_race_and_leaves_no_image(self):
        instance = self.boot()
        self.db.instance_update(instance['uuid'],
                                {'task_state': task_states.POWERING_OFF})
        before = set(self.image_api.images)
        exc = self.raises(exception.InstanceInvalidState, self.api.shelve,
                          self.ctx, instance)
        self.assertEqual(409, exc.code)
        self.assertEqual(before, set(self.image_api.images))

    def test_unsent_cast_gives_the_server_and_image_back(self):
        instance = self.boot()
        before = set(self.image_api.images)
        with mock.patch.object(self.rpcapi, 'shelve_instance',
                               side_effect=exception.ComputeServiceUnavailable(
                                   host=self.HOST, reason='test')):
            self.raises(exception.ComputeServiceUnavailable, self.api.shelve,
                        self.ctx, instance)
        after = self.db.instance_get(instance['uuid'])
        self.assertEqual((vm_states.ACTIVE, None),
                         (after['vm_state'], after['task_state']))
        self.assertNotIn(shelve.SHELVING_IMAGE_KEY, after['system_metadata'])
        self.assertEqual(before, set(self.image_api.images))

    def test_unsent_offload_cast_gives_the_server_back(self):
        self.conf.set_override('shelved_offload_time', -1)
        instance = self.boot()
        self.api.shelve(self.ctx, instance)
        shelved = self.wait_state(instance['uuid'], vm_states.SHELVED)
        with mock.patch.object(self.rpcapi, 'shelve_offload_instance',
                               side_effect=exception.ComputeServiceUnavailable(
                                   host=self.HOST, reason='test')):
            self.raises(exception.ComputeServiceUnavailable,
                        self.api.shelve_offload, self.ctx, shelved)
        after = self.db.instance_get(instance['uuid'])
        self.assertEqual((vm_states.SHELVED, None, self.HOST),
                         (after['vm_state'], after['task_state'],
                          after['host']))

    def test_unsent_unshelve_cast_releases_the_claim(self):
        instance = self.boot()
        self.api.shelve(self.ctx, instance)
        offloaded = self.wait_state(instance['uuid'],
                                    vm_states.SHELVED_OFFLOADED)
        with mock.patch.object(self.rpcapi, 'unshelve_instance',
                               side_effect=exception.ComputeServiceUnavailable(
                                   host=self.HOST, reason='test')):
            self.raises(exception.ComputeServiceUnavailable,
                        self.api.unshelve, self.ctx, offloaded)
        after = self.db.instance_get(instance['uuid'])
        self.assertEqual((vm_states.SHELVED_OFFLOADED, None, None, 0),
                         (after['vm_state'], after['task_state'],
                          after['host'], after['claimed_memory_mb']))
        self.assertEqual((0, 0, 0), _usage(self.db, self.HOST))

    def test_failed_snapshot_leaves_server_running_without_image(self):
        instance = self.boot()
        before = set(self.image_api.images)
        self.driver.fail_snapshot_at = 'upload'
        self.driver.fail_snapshot_with = exception.HypervisorError(
            reason='disk gone')
        self.api.shelve(self.ctx, instance)
        self.wait_for_event(instance['uuid'], shelve.EVENT_SHELVE)
        after = self.wait_idle(instance['uuid'])
        self.assertEqual(vm_states.ACTIVE, after['vm_state'])
        self.assertEqual(power_state.RUNNING, after['power_state'])
        self.assertEqual(before, set(self.image_api.images))
        self.assertNotIn(shelve.SHELVING_IMAGE_KEY, after['system_metadata'])
        fault = self.api.get(self.ctx, instance['uuid'])['fault']
        self.assertIn('disk gone', fault['message'])

    def test_failed_unshelve_goes_back_offloaded_with_nothing_held(self):
        instance = self.boot()
        self.api.shelve(self.ctx, instance)
        offloaded = self.wait_state(instance['uuid'],
                                    vm_states.SHELVED_OFFLOADED)
        self.driver.fail_spawn_with = exception.HypervisorError(
            reason='no space')
        self.api.unshelve(self.ctx, offloaded)
        self.wait_for_event(instance['uuid'], shelve.EVENT_UNSHELVE)
        after = self.wait_state(instance['uuid'],
                                vm_states.SHELVED_OFFLOADED)
        self.assertIsNone(after['host'])
        self.assertEqual(0, after['claimed_memory_mb'])
        self.assertEqual((0, 0, 0), _usage(self.db, self.HOST))
        self.assertNotIn(instance['uuid'], self.driver.instances)
        self.assertIsNotNone(self.shelved_image(after))
        fault = self.api.get(self.ctx, instance['uuid'])['fault']
        self.assertIn('no space', fault['message'])
        # and a later unshelve works
        self.driver.fail_spawn_with = None
        self.api.unshelve(self.ctx, after)
        self.wait_state(instance['uuid'], vm_states.ACTIVE)

    def test_no_valid_host_keeps_server_offloaded_with_fault(self):
        instance = self.boot()
        self.api.shelve(self.ctx, instance)
        offloaded = self.wait_state(instance['uuid'],
                                    vm_states.SHELVED_OFFLOADED)
        service_row = self.db.service_get_by_host_and_binary(
            self.HOST, 'nova-snapshot-compute')
        self.db.service_set_status(service_row['id'], {'disabled': True})
        self.api.unshelve(self.ctx, offloaded)
        after = self.db.instance_get(instance['uuid'])
        self.assertEqual((vm_states.SHELVED_OFFLOADED, None, None),
                         (after['vm_state'], after['task_state'],
                          after['host']))
        fault = self.api.get(self.ctx, instance['uuid'])['fault']
        self.assertIn('No valid host', fault['message'])

    def test_delete_of_shelved_and_offloaded_deletes_the_image(self):
        self.conf.set_override('shelved_offload_time', -1)
        for offload in (False, True):
            with self.subTest(offload=offload):
                instance = self.boot()
                self.api.shelve(self.ctx, instance)
                shelved = self.wait_state(instance['uuid'],
                                          vm_states.SHELVED)
                if offload:
                    self.api.shelve_offload(self.ctx, shelved)
                    shelved = self.wait_state(instance['uuid'],
                                              vm_states.SHELVED_OFFLOADED)
                image_id = shelved['system_metadata'][
                    shelve.SHELVED_IMAGE_KEY]
                self.api.delete(self.ctx, shelved)
                fakes.wait_for(lambda: not [
                    i for i in self.db.instance_get_all()
                    if i['uuid'] == instance['uuid']], message='deleted')
                self.assertNotIn(image_id, self.image_api.images)

    def test_unshelve_goes_to_the_enabled_host(self):
        other = service.ComputeService(
            self.conf, host='host-b', db=self.db, image_api=self.image_api,
            driver=fakes.fake_virt.FakeDriver(self.conf, self.image_api),
            transport=self.transport,
            notifier=rpc.get_notifier(self.conf, 'compute.host-b',
                                      transport=self.transport))
        other.start()
        self.addCleanup(other.stop)
        service_row = self.db.service_get_by_host_and_binary(
            'host-b', 'nova-snapshot-compute')
        self.db.service_set_status(service_row['id'], {'disabled': True})
        instance = self.boot()
        self.assertEqual(self.HOST, instance['host'])
        self.api.shelve(self.ctx, instance)
        offloaded = self.wait_state(instance['uuid'],
                                    vm_states.SHELVED_OFFLOADED)
        self.db.service_set_status(service_row['id'], {'disabled': False})
        mine = self.db.service_get_by_host_and_binary(
            self.HOST, 'nova-snapshot-compute')
        self.db.service_set_status(mine['id'], {'disabled': True})
        self.api.unshelve(self.ctx, offloaded)
        other.manager.wait_for_tasks(10)
        active = self.wait_state(instance['uuid'], vm_states.ACTIVE)
        self.assertEqual('host-b', active['host'])
        self.assertIn(instance['uuid'], other.driver.instances)
        self.assertNotIn(instance['uuid'], self.driver.instances)
        self.assertEqual((0, 0, 0), _usage(self.db, self.HOST))
        self.assertNotEqual((0, 0, 0), _usage(self.db, 'host-b'))

    def test_restart_mid_shelve_gives_the_server_back(self):
        instance = self.boot()
        image = self.image_api.create(self.ctx, {'name': 'vm-shelved'})
        self.db.instance_update_checked(
            instance['uuid'], {'task_state': task_states.SHELVING_IMAGE_UPLOADING},
            system_metadata={shelve.SHELVING_IMAGE_KEY: image['id']})
        self.manager.init_host()
        after = self.db.instance_get(instance['uuid'])
        self.assertEqual((vm_states.ACTIVE, None),
                         (after['vm_state'], after['task_state']))
        self.assertNotIn(shelve.SHELVING_IMAGE_KEY, after['system_metadata'])
        self.assertNotIn(image['id'], self.image_api.images)
        admin = self.user_context(admin=True)
        self.assertIn('Shelve interrupted',
                      self.api.get(admin, instance['uuid'])['fault'][
                          'message'])

    def test_restart_mid_unshelve_of_offloaded_releases_the_claim(self):
        instance = self.boot()
        self.api.shelve(self.ctx, instance)
        offloaded = self.wait_state(instance['uuid'],
                                    vm_states.SHELVED_OFFLOADED)
        # The API claimed and cast; the compute service died mid-spawn.
        with mock.patch.object(self.rpcapi, 'unshelve_instance'):
            self.api.unshelve(self.ctx, offloaded)
        self.db.instance_update(instance['uuid'],
                                {'task_state': task_states.SPAWNING})
        self.manager.init_host()
        after = self.db.instance_get(instance['uuid'])
        self.assertEqual((vm_states.SHELVED_OFFLOADED, None, None, 0),
                         (after['vm_state'], after['task_state'],
                          after['host'], after['claimed_memory_mb']))
        self.assertEqual((0, 0, 0), _usage(self.db, self.HOST))

    def test_reconciler_keeps_the_image_of_a_shelve_in_flight(self):
        instance = self.boot()
        old = '2020-01-01T00:00:00Z'
        shelving = self.image_api.add_image(
            status='saving', instance_uuid=instance['uuid'],
            image_type='snapshot', created_at=old)
        orphan = self.image_api.add_image(
            status='queued', instance_uuid=instance['uuid'],
            image_type='snapshot', created_at=old)
        instance = self.db.instance_update_checked(
            instance['uuid'],
            {'task_state': task_states.SHELVING_IMAGE_UPLOADING},
            system_metadata={shelve.SHELVING_IMAGE_KEY: shelving['id']})
        deleted = self.service.reconciler.clean_orphan_images(instance,
                                                              busy=set())
        self.assertEqual(1, deleted)
        self.assertIn(shelving['id'], self.image_api.images)
        self.assertNotIn(orphan['id'], self.image_api.images)

    def _lost(self, uuid):
        """The row as the reconciler sees it once the grace is over."""
        instance = self.db.instance_get(uuid)
        instance['updated_at'] = '2020-01-01T00:00:00'
        return instance

    def test_reconciler_replays_a_lost_shelve_and_unshelve(self):
        instance = self.boot()
        reconciler = self.service.reconciler
        with mock.patch.object(self.rpcapi, 'shelve_instance'):
            self.api.shelve(self.ctx, instance)
        lost = self._lost(instance['uuid'])
        self.assertEqual(task_states.SHELVING, lost['task_state'])
        # Within the grace, or with work of the server here: left alone.
        fresh = self.db.instance_get(instance['uuid'])
        self.assertFalse(reconciler.replay_lost_shelve(fresh, set()))
        self.assertFalse(reconciler.replay_lost_shelve(
            lost, {instance['uuid']}))
        self.assertTrue(reconciler.replay_lost_shelve(lost, set()))
        offloaded = self.wait_state(instance['uuid'],
                                    vm_states.SHELVED_OFFLOADED)
        self.assertIsNotNone(self.shelved_image(offloaded))
        with mock.patch.object(self.rpcapi, 'unshelve_instance'):
            self.api.unshelve(self.ctx, offloaded)
        lost = self._lost(instance['uuid'])
        self.assertEqual((task_states.UNSHELVING, self.HOST),
                         (lost['task_state'], lost['host']))
        self.assertTrue(reconciler.replay_lost_shelve(lost, set()))
        self.wait_state(instance['uuid'], vm_states.ACTIVE)
        # A late cast now backs off without touching the server.
        self.manager.unshelve_instance(self.ctx, instance['uuid'])
        after = self.db.instance_get(instance['uuid'])
        self.assertEqual((vm_states.ACTIVE, None, power_state.RUNNING),
                         (after['vm_state'], after['task_state'],
                          after['power_state']))


class VolumeBackedShelveTest(volume_fakes.VolumeComputeTestCase):

    def test_shelve_offload_unshelve_keeps_the_volumes(self):
        instance = self.boot_volume_backed()
        bdm = self.db.bdm_get_by_instance(instance['uuid'])[0]
        volume_id = bdm['volume_id']
        images_before = set(self.image_api.images)
        self.api.shelve(self.ctx, instance)
        self.manager.wait_for_tasks(10)
        offloaded = self.wait_for_instance(
            instance['uuid'],
            lambda i: i['vm_state'] == vm_states.SHELVED_OFFLOADED and
            i['task_state'] is None)
        # No image; the volume stays the server's, reserved, unconnected.
        self.assertEqual(images_before, set(self.image_api.images))
        self.assertNotIn(shelve.SHELVED_IMAGE_KEY,
                         offloaded['system_metadata'])
        self.assertIsNone(offloaded['host'])
        bdm = self.db.bdm_get_by_instance(instance['uuid'])[0]
        self.assertEqual(volume_id, bdm['volume_id'])
        self.assertIsNone(bdm['connection_info'])
        attachment = self.cinder.attachments[bdm['attachment_id']]
        self.assertEqual('reserved', attachment['status'])
        self.assertIsNone(attachment['connector'])
        self.assertEqual(1, len(self.cinder.attachments))
        self.assertIn(volume_id, self.cinder.volumes)

        self.api.unshelve(self.ctx, offloaded)
        active = self.wait_for_instance(
            instance['uuid'],
            lambda i: i['vm_state'] == vm_states.ACTIVE and
            i['task_state'] is None)
        self.assertEqual(self.HOST, active['host'])
        bdm = self.db.bdm_get_by_instance(instance['uuid'])[0]
        self.assertEqual(volume_id, bdm['volume_id'])
        attachment = self.cinder.attachments[bdm['attachment_id']]
        self.assertEqual('attached', attachment['status'])
        self.assertIsNotNone(attachment['connector'])
        root = self.driver.block_device_infos[instance['uuid']][
            'block_device_mapping'][0]
        self.assertEqual(volume_id, root['volume_id'])
        self.assertEqual(images_before, set(self.image_api.images))

    def test_delete_of_offloaded_releases_and_deletes_its_volumes(self):
        instance = self.boot_volume_backed()
        volume_id = self.db.bdm_get_by_instance(
            instance['uuid'])[0]['volume_id']
        self.api.shelve(self.ctx, instance)
        self.manager.wait_for_tasks(10)
        offloaded = self.wait_for_instance(
            instance['uuid'],
            lambda i: i['vm_state'] == vm_states.SHELVED_OFFLOADED and
            i['task_state'] is None)
        self.api.delete(self.ctx, offloaded)
        self.assertEqual([], [i for i in self.db.instance_get_all()
                              if i['uuid'] == instance['uuid']])
        self.assertEqual({}, self.cinder.attachments)
        # delete_on_termination
        self.assertNotIn(volume_id, self.cinder.volumes)
