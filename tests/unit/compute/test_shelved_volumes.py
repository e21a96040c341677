"""Attach and detach of volumes while a server is shelved or shelved
offloaded (Nova from microversion 2.20), through ComputeAPI and the manager
over fake:/ RPC with FakeCinder."""

from nova_snapshot.compute import vm_states
from nova_snapshot import exception
from tests.unit.compute import volume_fakes


class ShelvedOffloadedVolumesTest(volume_fakes.VolumeComputeTestCase):

    def _offloaded(self):
        instance = self.boot_volume_backed()
        self.api.shelve(self.ctx, instance)
        self.manager.wait_for_tasks(10)
        return self.wait_for_instance(
            instance['uuid'],
            lambda i: i['vm_state'] == vm_states.SHELVED_OFFLOADED and
            i['task_state'] is None)

    def _bdm_of(self, uuid, volume_id):
        for bdm in self.db.bdm_get_by_instance(uuid):
            if bdm['volume_id'] == volume_id:
                return bdm
        return None

    def test_attach_while_offloaded_is_connected_at_unshelve(self):
        offloaded = self._offloaded()
        uuid = offloaded['uuid']
        volume = self.cinder.add_volume()
        casts_before = len(self.driver.calls)
        bdm = self.api.attach_volume(self.ctx, offloaded, volume['id'],
                                     delete_on_termination=True)
        # No host: nothing was cast or plugged; Cinder holds it for the
        # server (attachment completed, no connector) and the mapping has
        # a device for the unshelve.
        self.assertEqual(casts_before, len(self.driver.calls))
        self.assertEqual('/dev/vdb', bdm['device_name'])
        attachment = self.cinder.attachments[bdm['attachment_id']]
        self.assertEqual('attached', attachment['status'])
        self.assertIsNone(attachment['connector'])
        self.assertEqual('in-use', self.cinder.get(self.ctx,
                                                   volume['id'])['status'])
        self.assertEqual('attach_volume', self.api.get_instance_actions(
            self.ctx, offloaded)[0]['action'])

        self.api.unshelve(self.ctx, self.db.instance_get(uuid))
        self.wait_for_instance(
            uuid, lambda i: i['vm_state'] == vm_states.ACTIVE and
            i['task_state'] is None)
        bdm = self._bdm_of(uuid, volume['id'])
        self.assertIsNotNone(bdm['connection_info'])
        self.assertIsNotNone(
            self.cinder.attachments[bdm['attachment_id']]['connector'])
        spawned = [m['volume_id'] for m in self.driver.block_device_infos[
            uuid]['block_device_mapping']]
        self.assertIn(volume['id'], spawned)

    def test_detach_while_offloaded_releases_at_once(self):
        offloaded = self._offloaded()
        volume = self.cinder.add_volume()
        bdm = self.api.attach_volume(self.ctx, offloaded, volume['id'])
        self.api.detach_volume(self.ctx, offloaded, volume['id'])
        self.assertIsNone(self._bdm_of(offloaded['uuid'], volume['id']))
        self.assertIn(bdm['attachment_id'], self.cinder.deleted_attachments)
        self.assertEqual('available', self.cinder.get(
            self.ctx, volume['id'])['status'])
        # The root volume stays.
        self.assertRaises(exception.InvalidVolume, self.api.detach_volume,
                          self.ctx, offloaded, self.db.bdm_get_by_instance(
                              offloaded['uuid'])[0]['volume_id'])

    def test_tagged_attach_while_offloaded_is_refused(self):
        offloaded = self._offloaded()
        volume = self.cinder.add_volume()
        exc = self.raises(exception.Invalid, self.api.attach_volume,
                          self.ctx, offloaded, volume['id'], tag='t')
        self.assertIn('shelved-offloaded', exc.format_message())
        self.assertEqual('available', self.cinder.get(
            self.ctx, volume['id'])['status'])
        self.assertIsNone(self._bdm_of(offloaded['uuid'], volume['id']))
