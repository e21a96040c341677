"""The compute service's start-up closes the events of the shelve,
offload, unshelve, rebuild and reboot work a restart cut short (the fault
campaign's kill points found them open for ever)."""

from unittest import mock

from nova_snapshot.compute import manager as compute_manager
from nova_snapshot.compute import power_state
from nova_snapshot.compute import reboot
from nova_snapshot.compute import shelve
from nova_snapshot.compute import task_states
from nova_snapshot.compute import vm_states
from tests.unit.compute import fakes


class RestartEventsTest(fakes.ComputeTestCase):

    def _open_event(self, instance, action, event, host=None):
        self.db.action_start(self.ctx, instance['uuid'], action)
        self.db.action_event_start(self.ctx, instance['uuid'], event,
                                   host=host or self.manager.host)

    def test_a_killed_reboot_event_is_finished_at_start_up(self):
        instance = self.boot()
        self._open_event(instance, reboot.ACTION, reboot.EVENT)
        self.db.instance_update(instance['uuid'], {
            'task_state': task_states.REBOOT_STARTED_HARD})
        self.manager.init_host()
        self.assertEqual([], self.db.action_events_unfinished(
            instance['uuid'], reboot.EVENT, self.manager.host))
        action = self.db.action_get_by_request_id(instance['uuid'],
                                                  self.ctx.request_id)
        event = [e for e in action['events']
                 if e['event'] == reboot.EVENT][0]
        self.assertEqual('Error', event['result'])
        self.assertIn('restart', event['details'])
        # the repair itself still ran
        self.assertIsNone(self.db.instance_get(instance['uuid'])[
            'task_state'])

    def test_another_hosts_event_is_left_alone(self):
        instance = self.boot()
        self._open_event(instance, shelve.ACTION_SHELVE, shelve.EVENT_SHELVE,
                         host='elsewhere')
        self.manager.init_host()
        self.assertEqual(1, len(self.db.action_events_unfinished(
            instance['uuid'], shelve.EVENT_SHELVE, 'elsewhere')))

    def test_the_closed_events_are_the_new_actions(self):
        self.assertEqual(
            {shelve.EVENT_SHELVE, shelve.EVENT_OFFLOAD,
             shelve.EVENT_UNSHELVE, 'compute_rebuild_instance',
             reboot.EVENT, 'compute_soft_delete_instance',
             'compute_restore_instance'},
            set(compute_manager._RESTART_CLOSED_EVENTS))


class RestartMidShelveTest(fakes.ComputeTestCase):

    def _killed_shelve(self, vm_state=None):
        instance = self.boot()
        if vm_state:
            self.db.instance_update(instance['uuid'], {'vm_state': vm_state})
        image = self.image_api.create(self.ctx, {'name': 'vm-shelved'})
        # The shelve powered the guest off, then the service died.
        self.driver.instances[instance['uuid']] = power_state.SHUTDOWN
        self.db.instance_update_checked(
            instance['uuid'],
            {'task_state': task_states.SHELVING_IMAGE_UPLOADING},
            system_metadata={shelve.SHELVING_IMAGE_KEY: image['id']})
        self.manager.init_host()
        return self.db.instance_get(instance['uuid'])

    def test_an_active_servers_guest_runs_again(self):
        after = self._killed_shelve()
        self.assertEqual((vm_states.ACTIVE, None, power_state.RUNNING),
                         (after['vm_state'], after['task_state'],
                          after['power_state']))
        self.assertEqual(power_state.RUNNING,
                         self.driver.instances[after['uuid']])

    def test_a_stopped_server_stays_off(self):
        after = self._killed_shelve(vm_states.STOPPED)
        self.assertEqual(power_state.SHUTDOWN,
                         self.driver.instances[after['uuid']])

    def test_a_volume_backed_shelve_finishes_its_offload(self):
        # No shelving image: the shelve was its offload, which may have
        # destroyed the guest and released the claim already.
        instance = self.boot()
        self.driver.destroy(self.ctx, instance)
        self.db.instance_release_claim(instance['uuid'])
        self.db.instance_update(instance['uuid'],
                                {'task_state': task_states.SHELVING})
        self.manager.init_host()
        after = self.db.instance_get(instance['uuid'])
        self.assertEqual((vm_states.SHELVED_OFFLOADED, None, None, 0),
                         (after['vm_state'], after['task_state'],
                          after['host'], after['claimed_memory_mb']))


class RestartMidUnshelveTest(fakes.ComputeTestCase):

    def _killed_unshelve(self, image_gone):
        # The unshelve spawned the guest (running here), then the service
        # died, before (image kept) or after (gone) deleting the image.
        instance = self.boot()
        image = self.image_api.create(self.ctx, {'name': 'vm-shelved'})
        if image_gone:
            self.image_api.delete(self.ctx, image['id'])
        self.db.instance_update_checked(
            instance['uuid'], {'vm_state': vm_states.SHELVED_OFFLOADED,
                               'task_state': task_states.SPAWNING},
            system_metadata={shelve.SHELVED_IMAGE_KEY: image['id']})
        self.manager.init_host()
        return self.db.instance_get(instance['uuid'])

    def test_image_deleted_finishes_the_unshelve(self):
        after = self._killed_unshelve(image_gone=True)
        self.assertEqual((vm_states.ACTIVE, None, self.manager.host),
                         (after['vm_state'], after['task_state'],
                          after['host']))
        self.assertNotIn(shelve.SHELVED_IMAGE_KEY, after['system_metadata'])
        self.assertEqual(power_state.RUNNING,
                         self.driver.instances[after['uuid']])

    def test_image_kept_goes_back_offloaded(self):
        after = self._killed_unshelve(image_gone=False)
        self.assertEqual((vm_states.SHELVED_OFFLOADED, None, None),
                         (after['vm_state'], after['task_state'],
                          after['host']))
        self.assertIn(shelve.SHELVED_IMAGE_KEY, after['system_metadata'])


class RestartOffloadContextTest(fakes.ComputeTestCase):

    def test_the_repair_offloads_as_the_servers_project(self):
        instance = self.boot()
        self.db.instance_update(instance['uuid'],
                                {'task_state': task_states.SHELVING})
        with mock.patch.object(shelve.ComputeShelve,
                               'shelve_offload_instance') as offload:
            self.manager.init_host()
        context = offload.call_args[0][0]
        self.assertEqual(instance['project_id'], context.project_id)
