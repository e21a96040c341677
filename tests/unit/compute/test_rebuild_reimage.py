"""Rebuild of a volume-backed server with its root volume re-imaged
(microversion 2.93) through ComputeAPI and the manager over fake:/ RPC,
with FakeCinder's os-reimage; and CinderAPI.reimage at cinderclient's edge.
"""

import json
from unittest import mock

from cinderclient import exceptions as cinder_exc

from nova_snapshot.compute import block_device
from nova_snapshot.compute import rebuild
from nova_snapshot.compute import reconciler as compute_reconciler
from nova_snapshot.compute import task_states
from nova_snapshot import exception
from tests.unit.compute import volume_fakes
from tests.unit.volume import test_cinder


class ReimageTest(volume_fakes.VolumeComputeTestCase):

    def setUp(self):
        super().setUp()
        self.instance = self.boot_volume_backed()
        self.root = self._root()
        self.new_image = self.image_api.add_image(name='other',
                                                  os_distro='alpine')

    def _root(self):
        return block_device.root_bdm(
            self.db.bdm_get_by_instance(self.instance['uuid']))

    def _rebuild(self, image_id=None, **kwargs):
        return self.api.rebuild(
            self.ctx, self.db.instance_get(self.instance['uuid']),
            image_id or self.new_image['id'], reimage_boot_volume=True,
            **kwargs)

    def test_root_volume_is_re_imaged_and_the_guest_boots_from_it(self):
        volume_id = self.root['volume_id']
        old_attachment = self.root['attachment_id']
        accepted = self._rebuild(name='renamed')
        self.assertEqual(task_states.REBUILDING, accepted['task_state'])
        self.assertEqual(self.new_image['id'],
                         accepted['system_metadata'][rebuild.REIMAGE_KEY])
        # A volume-backed server keeps image_ref '' (Nova).
        self.assertEqual('', accepted['image_ref'])
        self.assertEqual('alpine',
                         accepted['system_metadata']['image_os_distro'])
        after = self.wait_idle(self.instance['uuid'])
        self.assertEqual(('active', 'renamed'),
                         (after['vm_state'], after['name']))
        self.assertNotIn(rebuild.REIMAGE_KEY, after['system_metadata'])
        self.assertEqual([(volume_id, self.new_image['id'])],
                         [c[3] for c in self.cinder.calls('reimage')])
        volume = self.cinder.get(self.ctx, volume_id)
        self.assertEqual('in-use', volume['status'])
        self.assertEqual(self.new_image['id'],
                         volume['volume_image_metadata']['image_id'])
        # Same volume, a new attachment (the old one deleted), connected
        # to this host again and completed.
        root = self._root()
        self.assertEqual(volume_id, root['volume_id'])
        self.assertNotEqual(old_attachment, root['attachment_id'])
        self.assertIn(old_attachment, self.cinder.deleted_attachments)
        self.assertEqual('attached',
                         self.cinder.attachments[root['attachment_id']]
                         ['status'])
        self.assertEqual(volume_id, json.loads(root['connection_info'])
                         ['data']['volume_id'])
        states = self.db.task_states_of(self.instance['uuid'])
        for state in task_states.REBUILD_STATES:
            self.assertIn(state, states)
        event = self.wait_for_event(self.instance['uuid'], rebuild.EVENT)
        self.assertEqual('Success', event['result'])
        self.assertIn('re-imaged with image %s' % self.new_image['id'],
                      event['details'])

    def test_the_same_image_is_re_imaged_too(self):
        # Nova from 2.93: reimage_boot_volume whatever the image.
        self._rebuild(self.base_image['id'])
        self.wait_idle(self.instance['uuid'])
        self.assertEqual([(self.root['volume_id'], self.base_image['id'])],
                         [c[3] for c in self.cinder.calls('reimage')])

    def test_before_2_93_another_image_is_refused_and_the_same_kept(self):
        exc = self.raises(exception.ImageUnacceptable, self.api.rebuild,
                          self.ctx, self.instance, self.new_image['id'])
        self.assertIn(rebuild.VOLUME_BACKED_IMAGE_CHANGE,
                      exc.format_message())
        self.api.rebuild(self.ctx, self.instance, self.base_image['id'])
        after = self.wait_idle(self.instance['uuid'])
        self.assertEqual('active', after['vm_state'])
        self.assertEqual([], self.cinder.calls('reimage'))
        self.assertEqual(self.root['attachment_id'],
                         self._root()['attachment_id'])

    def test_a_volume_not_in_use_or_too_small_is_refused(self):
        volume_id = self.root['volume_id']
        self.cinder.volumes[volume_id]['status'] = 'reserved'
        exc = self.raises(exception.InvalidVolume, self._rebuild)
        self.assertIn("status must be 'in-use'", exc.format_message())
        self.cinder.volumes[volume_id]['status'] = 'in-use'
        big = self.image_api.add_image(name='big', min_disk=5)
        exc = self.raises(exception.InvalidVolume, self._rebuild, big['id'])
        self.assertIn('larger than the root volume', exc.format_message())
        current = self.db.instance_get(self.instance['uuid'])
        self.assertIsNone(current['task_state'])
        self.assertNotIn(rebuild.REIMAGE_KEY, current['system_metadata'])

    def test_unsent_cast_removes_the_reimage_mark(self):
        with mock.patch.object(
                self.rpcapi, 'rebuild_instance',
                side_effect=exception.ComputeServiceUnavailable(
                    host='h', reason='down')):
            self.assertRaises(exception.ComputeServiceUnavailable,
                              self._rebuild)
        current = self.db.instance_get(self.instance['uuid'])
        self.assertIsNone(current['task_state'])
        self.assertNotIn(rebuild.REIMAGE_KEY, current['system_metadata'])

    def test_cinder_failure_is_error_with_fault(self):
        self.cinder.reimage_result = 'error'
        self._rebuild()
        after = self.wait_idle(self.instance['uuid'])
        self.assertEqual('error', after['vm_state'])
        self.assertNotIn(rebuild.REIMAGE_KEY, after['system_metadata'])
        fault = self.api.get(self.ctx, self.instance['uuid'])['fault']
        self.assertIn('error', fault['message'])
        event = self.wait_for_event(self.instance['uuid'], rebuild.EVENT)
        self.assertEqual('Error', event['result'])

    def test_refused_reimage_is_error_with_fault(self):
        with mock.patch.object(
                self.cinder, 'reimage',
                side_effect=exception.InvalidVolume(reason='image too big')):
            self._rebuild()
            after = self.wait_idle(self.instance['uuid'])
        self.assertEqual('error', after['vm_state'])
        self.assertIn('image too big', self.api.get(
            self.ctx, self.instance['uuid'])['fault']['message'])

    def test_start_up_repair_reconnects_the_root_volume(self):
        # Killed after the new attachment replaced the old one.
        uuid = self.instance['uuid']
        new = self.cinder.attachment_create(self.ctx, self.root['volume_id'],
                                            uuid)
        self.cinder.attachment_delete(self.ctx, self.root['attachment_id'])
        self.db.bdm_update(self.root['id'], {'attachment_id': new['id'],
                                             'connection_info': None})
        self.db.instance_update_checked(
            uuid, {'task_state': task_states.REBUILD_BLOCK_DEVICE_MAPPING},
            system_metadata={rebuild.REIMAGE_KEY: self.new_image['id']})
        self.manager.init_host()
        after = self.db.instance_get(uuid)
        self.assertEqual(('error', None),
                         (after['vm_state'], after['task_state']))
        self.assertNotIn(rebuild.REIMAGE_KEY, after['system_metadata'])
        self.assertIn('partly re-imaged',
                      self.db.fault_get_latest(uuid)['message'])
        self.assertTrue(self._root()['connection_info'])
        # In use again: a 2.93 rebuild out of ERROR needs every volume so.
        self.assertEqual('in-use', self.cinder.get(
            self.ctx, self.root['volume_id'])['status'])

    def test_lost_cast_is_replayed_with_the_reimage(self):
        import datetime
        from oslo_utils import timeutils
        with mock.patch.object(self.rpcapi, 'rebuild_instance'):
            self._rebuild()
        self.db.instance_update(self.instance['uuid'], {
            'updated_at': timeutils.utcnow() - datetime.timedelta(
                seconds=30)})
        self.conf.set_override('task_state_grace', 1, group='reconciler')
        reconciler = compute_reconciler.Reconciler(
            self.conf, self.HOST, self.db, self.driver, self.image_api,
            manager=self.manager)
        self.assertEqual(1, reconciler.run_pass()['lost_casts'])
        after = self.db.instance_get(self.instance['uuid'])
        self.assertEqual(('active', None),
                         (after['vm_state'], after['task_state']))
        self.assertEqual(1, len(self.cinder.calls('reimage')))

    def test_timeout_grows_with_the_volume(self):
        self.conf.set_override('reimage_timeout', 30, group='compute')
        self.conf.set_override('reimage_timeout_per_gb', 10, group='compute')
        self.assertEqual(40, rebuild.reimage_timeout(self.conf, 1))
        self.assertEqual(130, rebuild.reimage_timeout(self.conf, 10))


class CinderReimageTest(test_cinder.CinderAPITestBase):

    def test_os_reimage_at_3_68(self):
        self.api.reimage(self.ctx, test_cinder.VOL, 'img',
                         reimage_reserved=True)
        self.assertEqual(('3.68',), self.client_cls.call_args.args)
        self.client.volumes.reimage.assert_called_once_with(
            test_cinder.VOL, 'img', True)

    def test_refusal_is_invalid_volume(self):
        self.client.volumes.reimage.side_effect = cinder_exc.BadRequest(
            400, 'Volume status must be available')
        self.assertRaises(exception.InvalidVolume, self.api.reimage,
                          self.ctx, test_cinder.VOL, 'img')

    def test_wait_for_reserved_is_bounded_and_error_ends_it(self):
        self.client.volumes.get.return_value = test_cinder.FakeResource(
            id=test_cinder.VOL, status='downloading', size=1)
        exc = self.raises(
            exception.VolumeError, self.api.wait_for_volume, self.ctx,
            test_cinder.VOL, timeout=3, statuses=('reserved',))
        self.assertLessEqual(sum(self.clock.sleeps), 3.5)
        self.assertIn('still downloading', exc.format_message())
        self.client.volumes.get.return_value = test_cinder.FakeResource(
            id=test_cinder.VOL, status='error', size=1)
        self.clock.sleeps[:] = []
        self.assertRaises(exception.VolumeError, self.api.wait_for_volume,
                          self.ctx, test_cinder.VOL, timeout=3,
                          statuses=('reserved',))
        self.assertEqual([], self.clock.sleeps)
