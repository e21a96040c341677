"""A cast that never leaves the API (broker down, retries spent) must not
leave the server holding a task state nothing will clear, nor a volume
mapping for an attach that never happened."""

from unittest import mock

from nova_snapshot.compute import task_states
from nova_snapshot import exception
from tests.unit.compute import volume_fakes


def _unavailable():
    return exception.ComputeServiceUnavailable(host='host-a',
                                               reason='broker down')


class UnsentCastTest(volume_fakes.VolumeComputeTestCase):

    def test_power_actions_give_the_task_state_back(self):
        instance = self.boot()
        for method, rpc_method in (('stop', 'stop_instance'),
                                   ('pause', 'pause_instance'),
                                   ('suspend', 'suspend_instance')):
            with mock.patch.object(self.rpcapi, rpc_method,
                                   side_effect=_unavailable()):
                self.assertRaises(exception.ComputeServiceUnavailable,
                                  getattr(self.api, method), self.ctx,
                                  self.db.instance_get(instance['uuid']))
            current = self.db.instance_get(instance['uuid'])
            self.assertEqual(('active', None),
                             (current['vm_state'], current['task_state']),
                             method)
        # ... and the server still takes the action once RPC is back.
        self.api.pause(self.ctx, self.db.instance_get(instance['uuid']))
        self.wait_for_instance(instance['uuid'],
                               lambda i: i['vm_state'] == 'paused')

    def test_delete_gives_the_task_state_back(self):
        instance = self.boot()
        with mock.patch.object(self.rpcapi, 'terminate_instance',
                               side_effect=_unavailable()):
            self.assertRaises(exception.ComputeServiceUnavailable,
                              self.api.delete, self.ctx, instance)
        self.assertIsNone(
            self.db.instance_get(instance['uuid'])['task_state'])
        self.api.delete(self.ctx, self.db.instance_get(instance['uuid']))
        self.assertEqual(task_states.DELETING, self.db.instance_get(
            instance['uuid'])['task_state'])

    def test_delete_leaves_a_running_snapshot_its_task_state(self):
        instance = self.boot()
        self.db.instance_update(
            instance['uuid'], {'task_state': task_states.IMAGE_UPLOADING})
        with mock.patch.object(self.rpcapi, 'terminate_instance',
                               side_effect=_unavailable()):
            self.assertRaises(exception.ComputeServiceUnavailable,
                              self.api.delete, self.ctx,
                              self.db.instance_get(instance['uuid']))
        self.assertEqual(
            task_states.IMAGE_UPLOADING,
            self.db.instance_get(instance['uuid'])['task_state'])

    def test_attach_forgets_the_mapping_and_the_attachment(self):
        instance = self.boot()
        volume = self.cinder.add_volume(size=1)
        with mock.patch.object(self.rpcapi, 'attach_volume',
                               side_effect=_unavailable()):
            self.assertRaises(exception.ComputeServiceUnavailable,
                              self.api.attach_volume, self.ctx, instance,
                              volume['id'])
        self.assertEqual([], [bdm for bdm in
                              self.db.bdm_get_by_instance(instance['uuid'])
                              if bdm.get('volume_id') == volume['id']])
        volume = self.cinder.get(self.ctx, volume['id'])
        self.assertEqual('available', volume['status'])
