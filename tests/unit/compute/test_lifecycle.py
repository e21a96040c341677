"""Create, power actions, console and delete through ComputeAPI and the
manager over fake:/ RPC."""

from nova_snapshot.compute import api as compute_api
from nova_snapshot.compute import power_state
from nova_snapshot import exception
from tests.unit.compute import fakes


class CreateTest(fakes.ComputeTestCase):

    def test_create_builds_and_records_base_image(self):
        instance = self.api.create(self.ctx, 'vm', self.base_image['id'], '2',
                                   metadata={'k': 'v'})
        self.assertEqual(('building', 'scheduling', 'host-a'),
                         (instance['vm_state'], instance['task_state'],
                          instance['host']))
        active = self.wait_idle(instance['uuid'])
        self.assertEqual('active', active['vm_state'])
        self.assertEqual(power_state.RUNNING, active['power_state'])
        self.assertIsNotNone(active['launched_at'])
        self.assertEqual('m1.micro', active['flavor']['name'])
        self.assertEqual({'k': 'v'}, active['metadata'])
        sysmeta = active['system_metadata']
        self.assertEqual('virtio', sysmeta['image_hw_disk_bus'])
        self.assertEqual('64', sysmeta['image_min_ram'])
        self.assertEqual('1', sysmeta['image_min_disk'])
        self.assertEqual('qcow2', sysmeta['image_disk_format'])
        self.assertEqual('bare', sysmeta['image_container_format'])
        self.assertEqual(self.base_image['id'],
                         sysmeta['image_base_image_ref'])
        self.assertNotIn('image_name', sysmeta)
        self.assertNotIn('image_owner', sysmeta)
        self.assertEqual(['spawn'], [c[0] for c in self.driver.calls])
        event = self.wait_for_event(instance['uuid'],
                                    'compute_build_and_run_instance')
        self.assertEqual('Success', event['result'])
        action = self.api.get_instance_action(self.ctx, active,
                                              self.ctx.request_id)
        self.assertEqual('create', action['action'])
        self.assertEqual(['instance.create.start', 'instance.create.end'],
                         [n['event_type'] for n in fakes.wait_for(
                             lambda: len(self.notifications.received) >= 2
                             and self.notifications.received)])

    def test_missing_image_or_flavor_is_400(self):
        exc = self.raises(exception.ImageNotFoundBadRequest, self.api.create,
                          self.ctx, 'vm', 'no-such-image', '1')
        self.assertEqual(400, exc.code)
        exc = self.raises(exception.FlavorNotFoundBadRequest, self.api.create,
                          self.ctx, 'vm', self.base_image['id'], '99')
        self.assertEqual(400, exc.code)
        queued = self.image_api.add_image(status='queued')
        self.raises(exception.ImageUnacceptable, self.api.create, self.ctx,
                    'vm', queued['id'], '1')
        big = self.image_api.add_image(min_ram=4096)
        self.raises(exception.Invalid, self.api.create, self.ctx, 'vm',
                    big['id'], '1')
        self.assertEqual([], self.db.instance_get_all())

    def test_spawn_failure_sets_error_and_fault(self):
        self.driver.fail_spawn_with = exception.HypervisorError(
            reason='no space')
        instance = self.api.create(self.ctx, 'vm', self.base_image['id'], '1')
        failed = self.wait_for_instance(
            instance['uuid'], lambda i: i['vm_state'] == 'error')
        self.assertIsNone(failed['task_state'])
        fault = self.api.get(self.ctx, instance['uuid'])['fault']
        self.assertIn('no space', fault['message'])

    def test_no_host_is_error_server_with_fault(self):
        service = self.db.service_get_by_host_and_binary(
            self.HOST, 'nova-snapshot-compute')
        self.db.service_set_status(service['id'], {'disabled': True})
        # host-b has a service but never reported a capacity.
        self.db.service_update('host-b', 'nova-snapshot-compute')
        instance = self.api.create(self.ctx, 'vm', self.base_image['id'], '1')
        self.assertEqual('error', instance['vm_state'])
        self.assertIsNone(instance['host'])
        admin = self.user_context(admin=True)
        fault = self.api.get(admin, instance['uuid'])['fault']
        self.assertEqual('No valid host was found. There are not enough '
                         'hosts available.', fault['message'])
        self.assertIn('host-a: disabled', fault['details'])
        self.assertEqual(0, self.db.compute_node_get(
            self.HOST)['memory_mb_used'])

    def test_only_live_service_is_chosen_and_claims(self):
        instance = self.api.create(self.ctx, 'vm', self.base_image['id'], '2')
        self.assertEqual('host-a', instance['host'])
        self.assertEqual((128, 1, 1), (instance['claimed_memory_mb'],
                                       instance['claimed_disk_gb'],
                                       instance['claimed_vcpus']))
        self.wait_idle(instance['uuid'])
        node = self.db.compute_node_get(self.HOST)
        self.assertEqual((128, 1, 1), (node['memory_mb_used'],
                                       node['local_gb_used'],
                                       node['vcpus_used']))

    def test_deprecated_default_schedule_host_places_without_claim(self):
        self.conf.set_override('default_schedule_host', self.HOST, 'compute')
        instance = self.api.create(self.ctx, 'vm', self.base_image['id'], '1')
        self.assertEqual('host-a', instance['host'])
        self.assertEqual(0, instance['claimed_memory_mb'])
        self.wait_idle(instance['uuid'])


class PowerActionTest(fakes.ComputeTestCase):

    def _do(self, instance, method, vm_state, state):
        getattr(self.api, method)(self.ctx, instance)
        after = self.wait_idle(instance['uuid'])
        self.assertEqual((vm_state, state),
                         (after['vm_state'], after['power_state']), method)
        return after

    def test_cycle(self):
        instance = self.boot()
        instance = self._do(instance, 'stop', 'stopped', power_state.SHUTDOWN)
        instance = self._do(instance, 'start', 'active', power_state.RUNNING)
        instance = self._do(instance, 'pause', 'paused', power_state.PAUSED)
        instance = self._do(instance, 'unpause', 'active',
                            power_state.RUNNING)
        instance = self._do(instance, 'suspend', 'suspended',
                            power_state.SHUTDOWN)
        instance = self._do(instance, 'resume', 'active', power_state.RUNNING)
        actions = [a['action'] for a in
                   self.api.get_instance_actions(self.ctx, instance)]
        self.assertEqual(['resume', 'suspend', 'unpause', 'pause', 'start',
                          'stop', 'create'], actions)

    def test_wrong_state_is_409_with_nova_fields(self):
        instance = self.boot()
        exc = self.raises(exception.InstanceInvalidState, self.api.start,
                          self.ctx, instance)
        self.assertEqual((409, 'vm_state', 'active', 'start'),
                         (exc.code, exc.kwargs['attr'], exc.kwargs['state'],
                          exc.kwargs['method']))
        self.raises(exception.InstanceInvalidState, self.api.resume,
                    self.ctx, instance)
        self.raises(exception.InstanceInvalidState, self.api.unpause,
                    self.ctx, instance)

    def test_cas_blocks_concurrent_action(self):
        instance = self.boot()
        self.db.instance_update(instance['uuid'],
                                {'task_state': 'image_snapshot'})
        # The caller's copy is stale (task_state None): the CAS refuses.
        exc = self.raises(exception.InstanceInvalidState, self.api.stop,
                          self.ctx, instance)
        self.assertEqual(('task_state', 'image_snapshot'),
                         (exc.kwargs['attr'], exc.kwargs['state']))

    def test_driver_failure_keeps_vm_state_and_records_fault(self):
        instance = self.boot()
        self.driver.fail_pause_with = exception.HypervisorError(reason='nope')
        self.api.pause(self.ctx, instance)
        after = self.wait_idle(instance['uuid'])
        self.assertEqual('active', after['vm_state'])
        self.assertIn('nope', self.api.get(self.ctx, instance['uuid'])
                      ['fault']['message'])
        fakes.wait_for(lambda: self.notifications.of_type(
            'instance.pause.error'))


class ConsoleAndDeleteTest(fakes.ComputeTestCase):

    def test_console_output_tail(self):
        instance = self.boot()
        self.driver.consoles[instance['uuid']] = 'one\ntwo\nthree'
        self.assertEqual('one\ntwo\nthree', self.api.get_console_output(
            self.ctx, instance))
        self.assertEqual('two\nthree', self.api.get_console_output(
            self.ctx, instance, length=2))
        self.assertEqual('', self.api.get_console_output(
            self.ctx, instance, length=0))

    def test_console_of_missing_guest_raises_not_found_over_rpc(self):
        instance = self.boot()
        del self.driver.instances[instance['uuid']]
        self.raises(exception.InstanceNotFound, self.api.get_console_output,
                    self.ctx, instance)

    def test_delete(self):
        instance = self.boot()
        self.api.delete(self.ctx, instance)
        fakes.wait_for(lambda: self._gone(instance['uuid']),
                       message='instance deleted')
        self.assertNotIn(instance['uuid'], self.driver.instances)
        # Deleting again is harmless.
        self.api.delete(self.ctx, dict(instance, task_state='deleting'))

    def test_delete_with_host_down_is_local(self):
        instance = self.boot()
        self.service.stop()
        self.db.instance_update(instance['uuid'], {'host': 'gone-host'})
        self.api.delete(self.ctx, self.db.instance_get(instance['uuid']))
        self.assertTrue(self._gone(instance['uuid']))

    def _gone(self, uuid):
        try:
            self.db.instance_get(uuid)
        except exception.InstanceNotFound:
            return True
        return False

    def test_other_project_cannot_see_server(self):
        instance = self.boot()
        other = self.user_context('u2', 'project-2')
        self.raises(exception.InstanceNotFound, self.api.get, other,
                    instance['uuid'])
        admin = self.user_context('a', 'admin-project', admin=True)
        self.assertEqual(instance['uuid'],
                         self.api.get(admin, instance['uuid'])['uuid'])
        self.assertEqual([], self.api.get_all(other))
        self.assertEqual(1, len(self.api.get_all(self.ctx)))

    def test_check_instance_state_order(self):
        # vm_state first, then task_state, then launched_at (Nova's order).
        instance = {'uuid': 'u', 'vm_state': 'error', 'task_state': 'x',
                    'launched_at': None}
        exc = self.raises(exception.InstanceInvalidState,
                          compute_api.check_instance_state, instance,
                          'createImage', vm_state=('active',))
        self.assertEqual('vm_state', exc.kwargs['attr'])
        self.assertIn("Cannot createImage", exc.format_message())
