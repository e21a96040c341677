"""Volume-backed servers in one process: build with each source type,
failure and delete cleanup, restore from a volume-backed snapshot image,
attach/detach, BDM conversions and the db.api BDM additions."""

import json
import time
import unittest

from nova_snapshot.compute import block_device
from nova_snapshot import exception
from tests.unit.compute import fakes
from tests.unit.compute import volume_fakes


class BootFromVolumeTest(volume_fakes.VolumeComputeTestCase):

    def test_each_source_type_builds_and_attaches(self):
        existing = self.cinder.add_volume(size=2)
        source_snap = self.cinder.create_snapshot_force(
            self.ctx, self.cinder.add_volume(size=3)['id'], 's')
        bdms = [
            {'source_type': 'image', 'uuid': self.base_image['id'],
             'destination_type': 'volume', 'boot_index': 0,
             'volume_size': 4, 'delete_on_termination': True},
            {'source_type': 'volume', 'uuid': existing['id'],
             'destination_type': 'volume'},
            {'source_type': 'snapshot', 'uuid': source_snap['id'],
             'destination_type': 'volume', 'delete_on_termination': True},
            {'source_type': 'blank', 'destination_type': 'volume',
             'volume_size': 1, 'device_name': 'vdf', 'disk_bus': 'scsi'},
        ]
        instance = self.boot_from_volume(bdms)
        self.assertEqual('', instance['image_ref'])
        self.assertEqual('/dev/vda', instance['root_device_name'])
        self.assertTrue(self.api.is_volume_backed(self.ctx, instance))
        # Inherited from the image the root volume was made from.
        self.assertEqual('virtio',
                         instance['system_metadata']['image_hw_disk_bus'])

        rows = self.db.bdm_get_by_instance(instance['uuid'])
        self.assertEqual(['/dev/vda', '/dev/vdb', '/dev/vdc', '/dev/vdf'],
                         [r['device_name'] for r in rows])
        self.assertEqual(existing['id'], rows[1]['volume_id'])
        for row in rows:
            self.assertIsNotNone(row['volume_id'])
            self.assertIsNotNone(row['attachment_id'])
            info = json.loads(row['connection_info'])
            self.assertEqual('rbd', info['driver_volume_type'])
            self.assertEqual('in-use',
                             self.cinder.volumes[row['volume_id']]['status'])
        created = {r[3] for r in self.cinder.calls('create')}
        self.assertEqual({self.base_image['id'], source_snap['id'], 'blank'},
                         created)
        # Timeouts scale with the size: 120 + 30/GiB.
        waits = {arg[0]: arg[1] for _, _, _, arg in
                 self.cinder.calls('wait_for_volume')}
        self.assertEqual(120 + 30 * 4, waits[rows[0]['volume_id']])
        self.assertEqual(120 + 30 * 3, waits[rows[2]['volume_id']])

        info = self.driver.block_device_infos[instance['uuid']]
        self.assertEqual('/dev/vda', info['root_device_name'])
        mapping = info['block_device_mapping']
        self.assertEqual(['vda', 'vdb', 'vdc', 'vdf'],
                         [m['mount_device'] for m in mapping])
        self.assertEqual([0, None, None, None],
                         [m['boot_index'] for m in mapping])
        self.assertEqual('scsi', mapping[3]['disk_bus'])
        self.assertEqual(rows[0]['volume_id'], mapping[0]['volume_id'])

    def test_volume_creations_run_in_parallel(self):
        bdms = [{'source_type': 'blank', 'destination_type': 'volume',
                 'volume_size': 1, 'boot_index': i} for i in range(4)]
        self.boot_from_volume(bdms)
        calls = self.cinder.calls('create')
        self.assertEqual(4, len(calls))
        # Each create takes 50 ms; all four started before the first ended.
        self.assertLess(max(c[1] for c in calls), min(c[2] for c in calls))

    def test_failure_cleans_up_by_delete_on_termination(self):
        existing = self.cinder.add_volume(size=1)
        self.cinder.fail_create_volume_for.add('blank')
        bdms = [
            {'source_type': 'image', 'uuid': self.base_image['id'],
             'destination_type': 'volume', 'boot_index': 0,
             'volume_size': 1, 'delete_on_termination': True},
            {'source_type': 'volume', 'uuid': existing['id'],
             'destination_type': 'volume', 'delete_on_termination': True},
            {'source_type': 'blank', 'destination_type': 'volume',
             'volume_size': 1, 'delete_on_termination': True},
        ]
        instance = self.boot_from_volume(bdms, state='error')
        fault = self.api.get(self.ctx, instance['uuid'])['fault']
        self.assertIsNotNone(fault)
        self.assertIn('error', fault['message'])
        rows = self.db.bdm_get_by_instance(instance['uuid'])
        # Both volumes we made are deleted (the failed one too); the user's
        # existing volume stays, every attachment is released.
        self.assertEqual(2, len(self.cinder.deleted_volumes))
        self.assertIn(existing['id'], self.cinder.volumes)
        self.assertEqual('available',
                         self.cinder.volumes[existing['id']]['status'])
        self.assertEqual({}, self.cinder.attachments)
        self.assertEqual([None, existing['id'], None],
                         [r['volume_id'] for r in rows])
        self.assertNotIn(instance['uuid'], self.driver.instances)

    def test_spawn_failure_releases_attachments(self):
        self.driver.fail_spawn_with = exception.HypervisorError(
            reason='boom')
        bdms = [{'source_type': 'blank', 'destination_type': 'volume',
                 'volume_size': 1, 'boot_index': 0,
                 'delete_on_termination': False}]
        instance = self.boot_from_volume(bdms, state='error')
        rows = self.db.bdm_get_by_instance(instance['uuid'])
        self.assertEqual({}, self.cinder.attachments)
        # delete_on_termination False: the volume stays, detached.
        self.assertEqual('available',
                         self.cinder.volumes[rows[0]['volume_id']]['status'])

    def test_delete_releases_and_deletes_volumes(self):
        keep = self.cinder.add_volume(size=1)
        bdms = [{'source_type': 'blank', 'destination_type': 'volume',
                 'volume_size': 1, 'boot_index': 0,
                 'delete_on_termination': True},
                {'source_type': 'volume', 'uuid': keep['id'],
                 'destination_type': 'volume'}]
        instance = self.boot_from_volume(bdms)
        root_volume = self.db.bdm_get_by_instance(
            instance['uuid'])[0]['volume_id']
        self.api.delete(self.ctx, instance)
        fakes.wait_for(lambda: not self.db.instance_get_all(),
                       message='instance deleted')
        self.assertEqual([root_volume], self.cinder.deleted_volumes)
        self.assertEqual('available', self.cinder.volumes[keep['id']]
                         ['status'])
        self.assertEqual({}, self.cinder.attachments)

    def test_volume_with_snapshots_is_left_at_once(self):
        # Cinder refuses for good (the volume is available, its snapshots
        # stay): the delete does not wait CLEANUP_WAIT for nothing.
        bdms = [{'source_type': 'blank', 'destination_type': 'volume',
                 'volume_size': 1, 'boot_index': 0,
                 'delete_on_termination': True}]
        instance = self.boot_from_volume(bdms)
        root_volume = self.db.bdm_get_by_instance(
            instance['uuid'])[0]['volume_id']
        self.cinder.create_snapshot_force(self.ctx, root_volume, 'held')
        started = time.monotonic()
        self.api.delete(self.ctx, instance)
        fakes.wait_for(lambda: not self.db.instance_get_all(),
                       message='instance deleted', timeout=20)
        self.assertLess(time.monotonic() - started, 10)
        self.assertEqual([], self.cinder.deleted_volumes)
        self.assertEqual('available',
                         self.cinder.volumes[root_volume]['status'])

    def test_restore_expands_image_mapping(self):
        mapping = [
            dict(dict.fromkeys(block_device.IMAGE_MAPPING_KEYS),
                 source_type='snapshot', destination_type='volume',
                 snapshot_id=self.cinder.create_snapshot_force(
                     self.ctx, self.cinder.add_volume(size=5)['id'],
                     'a')['id'],
                 boot_index=0, device_name='/dev/vda',
                 delete_on_termination=True, volume_size=5,
                 device_type='disk', disk_bus='virtio', volume_id='old-1'),
            dict(dict.fromkeys(block_device.IMAGE_MAPPING_KEYS),
                 source_type='snapshot', destination_type='volume',
                 snapshot_id=self.cinder.create_snapshot_force(
                     self.ctx, self.cinder.add_volume(size=2)['id'],
                     'b')['id'],
                 boot_index=None, device_name='/dev/vdb',
                 delete_on_termination=False, volume_size=2,
                 device_type='disk', disk_bus='virtio'),
        ]
        image = self.image_api.add_image(
            name='vb-snap', size=0, disk_format='raw',
            block_device_mapping=json.dumps(mapping), bdm_v2='True',
            root_device_name='/dev/vda', hw_qemu_guest_agent='yes',
            min_disk=20)
        instance = self.boot_from_volume(None, image_ref=image['id'])
        self.assertEqual(image['id'], instance['image_ref'])
        self.assertTrue(self.api.is_volume_backed(self.ctx, instance))
        rows = self.db.bdm_get_by_instance(instance['uuid'])
        self.assertEqual([m['snapshot_id'] for m in mapping],
                         [r['snapshot_id'] for r in rows])
        self.assertEqual([5, 2], [r['volume_size'] for r in rows])
        self.assertEqual([True, False],
                         [r['delete_on_termination'] for r in rows])
        self.assertNotIn('old-1', [r['volume_id'] for r in rows])
        made = {r[3] for r in self.cinder.calls('create')}
        self.assertEqual({m['snapshot_id'] for m in mapping}, made)
        sysmeta = instance['system_metadata']
        self.assertEqual('yes', sysmeta['image_hw_qemu_guest_agent'])
        self.assertNotIn('image_block_device_mapping', sysmeta)

    def test_invalid_mappings_are_400(self):
        cases = [
            [{'source_type': 'blank', 'destination_type': 'volume',
              'boot_index': 0}],                       # no size
            [{'source_type': 'volume', 'destination_type': 'volume',
              'boot_index': 0}],                       # no uuid
            [{'source_type': 'blank', 'destination_type': 'volume',
              'volume_size': 1, 'boot_index': 1}],     # no boot index 0
            [{'source_type': 'blank', 'destination_type': 'local',
              'boot_index': 0}],                       # local blank
        ]
        for bdms in cases:
            with self.subTest(bdms=bdms):
                exc = self.raises(exception.Invalid, self.api.create,
                                  self.ctx, 'x', None, '1',
                                  block_device_mapping=bdms)
                self.assertEqual(400, exc.code)
        self.assertEqual([], self.db.instance_get_all())

    def test_image_backed_server_unchanged(self):
        instance = self.boot()
        self.assertEqual([], self.db.bdm_get_by_instance(instance['uuid']))
        self.assertFalse(self.api.is_volume_backed(self.ctx, instance))
        self.assertIsNone(self.driver.block_device_infos[instance['uuid']])


class AttachDetachTest(volume_fakes.VolumeComputeTestCase):

    def test_attach_then_detach(self):
        instance = self.boot()
        volume = self.cinder.add_volume(size=1)
        bdm = self.api.attach_volume(self.ctx, instance, volume['id'])
        self.assertEqual('/dev/vdb', bdm['device_name'])
        fakes.wait_for(lambda: self.cinder.volumes[volume['id']]['status']
                       == 'in-use', message='attached')
        self.assertIn('/dev/vdb', self.driver.attached[instance['uuid']])
        attachments = self.api.get_volume_attachments(self.ctx, instance)
        self.assertEqual([volume['id']], [a['volume_id']
                                          for a in attachments])
        exc = self.raises(exception.InvalidVolume, self.api.attach_volume,
                          self.ctx, instance, volume['id'])
        self.assertEqual(400, exc.code)

        self.api.detach_volume(self.ctx, instance, volume['id'])
        fakes.wait_for(lambda: not self.api.get_volume_attachments(
            self.ctx, instance), message='detached')
        self.assertEqual('available',
                         self.cinder.volumes[volume['id']]['status'])
        self.assertNotIn('/dev/vdb', self.driver.attached[instance['uuid']])
        self.assertRaises(exception.VolumeAttachmentNotFound,
                          self.api.detach_volume, self.ctx, instance,
                          volume['id'])

    def test_state_rules(self):
        instance = self.boot()
        volume = self.cinder.add_volume(size=1)
        suspended = self.db.instance_update(instance['uuid'],
                                            {'vm_state': 'suspended'})
        exc = self.raises(exception.InstanceInvalidState,
                          self.api.attach_volume, self.ctx, suspended,
                          volume['id'])
        self.assertEqual(409, exc.code)
        busy = self.db.instance_update(instance['uuid'],
                                       {'vm_state': 'active',
                                        'task_state': 'powering-off'})
        self.assertRaises(exception.InstanceInvalidState,
                          self.api.attach_volume, self.ctx, busy,
                          volume['id'])
        self.assertEqual({}, self.cinder.attachments)

    def test_root_volume_cannot_be_detached(self):
        bdms = [{'source_type': 'blank', 'destination_type': 'volume',
                 'volume_size': 1, 'boot_index': 0}]
        instance = self.boot_from_volume(bdms)
        root = self.db.bdm_get_by_instance(instance['uuid'])[0]
        exc = self.raises(exception.InvalidVolume, self.api.detach_volume,
                          self.ctx, instance, root['volume_id'])
        self.assertEqual(400, exc.code)


class BlockDeviceTest(unittest.TestCase):

    def test_snapshot_image_mapping_is_novas_shape(self):
        bdm = {'id': 7, 'instance_uuid': 'i', 'source_type': 'image',
               'destination_type': 'volume', 'image_id': 'img',
               'volume_id': 'v', 'boot_index': 0, 'device_name': 'sda',
               'disk_bus': 'scsi', 'device_type': 'disk', 'volume_size': 40,
               'delete_on_termination': 1, 'guest_format': 'ext4',
               'tag': 't', 'volume_type': 'ceph', 'attachment_id': 'a',
               'connection_info': '{}'}
        self.assertEqual(
            {'guest_format': None, 'boot_index': 0,
             'delete_on_termination': True, 'no_device': None,
             'snapshot_id': 'snap', 'volume_type': None,
             'device_name': '/dev/sda', 'disk_bus': 'scsi', 'image_id': None,
             'source_type': 'snapshot', 'tag': None, 'device_type': 'disk',
             'volume_id': None, 'destination_type': 'volume',
             'volume_size': 40},
            block_device.snapshot_image_mapping('snap', bdm))

    def test_device_names(self):
        rows = [{'boot_index': 0}, {'boot_index': None},
                {'boot_index': None, 'device_name': '/dev/vdb'}]
        block_device.assign_device_names(rows)
        self.assertEqual(['/dev/vda', '/dev/vdc', '/dev/vdb'],
                         [r['device_name'] for r in rows])
        self.assertEqual('/dev/vdaa', block_device.next_device_name(
            ['/dev/vd%s' % chr(c) for c in range(ord('a'), ord('z') + 1)]))


class BdmDatabaseTest(unittest.TestCase):

    def setUp(self):
        from nova_snapshot.db import api as db_api
        self.db = db_api.Database('sqlite://')
        self.db.create_schema()
        self.addCleanup(self.db.dispose)
        self.instance = self.db.instance_create({'name': 'x'})

    def test_update_and_destroy(self):
        bdm = self.db.bdm_create({'instance_uuid': self.instance['uuid'],
                                  'source_type': 'blank'})
        updated = self.db.bdm_update(bdm['id'], {'volume_id': 'v',
                                                 'attachment_id': 'a'})
        self.assertEqual(('v', 'a'), (updated['volume_id'],
                                      updated['attachment_id']))
        self.assertRaises(ValueError, self.db.bdm_update, bdm['id'],
                          {'instance_uuid': 'other'})
        self.db.bdm_destroy(bdm['id'])
        self.assertEqual([], self.db.bdm_get_by_instance(
            self.instance['uuid']))
        self.assertRaises(exception.NotFound, self.db.bdm_update, bdm['id'],
                          {'volume_id': 'w'})
