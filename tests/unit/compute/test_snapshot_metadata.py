import unittest

from nova_snapshot.compute import snapshot_metadata as sm
from nova_snapshot import context as ns_context
from tests.unit.compute import fakes


class SystemMetadataTest(unittest.TestCase):

    def test_from_image(self):
        image = {'id': 'base', 'name': 'cirros', 'status': 'active',
                 'owner': 'p', 'size': 10, 'checksum': 'c', 'tags': ['a'],
                 'min_ram': 32, 'min_disk': 0, 'disk_format': 'qcow2',
                 'container_format': 'bare', 'hw_disk_bus': 'virtio',
                 'long': 'x' * 300, 'none': None}
        sysmeta = sm.system_metadata_from_image(image, {'root_gb': 5})
        self.assertEqual({
            'image_hw_disk_bus': 'virtio', 'image_long': 'x' * 255,
            'image_min_ram': '32', 'image_min_disk': '5',
            'image_disk_format': 'qcow2', 'image_container_format': 'bare',
            'image_base_image_ref': 'base'}, sysmeta)

    def test_larger_image_min_disk_kept(self):
        sysmeta = sm.system_metadata_from_image(
            {'id': 'b', 'min_disk': 8}, {'root_gb': 1})
        self.assertEqual('8', sysmeta['image_min_disk'])


class SnapshotImageMetaTest(unittest.TestCase):

    def setUp(self):
        self.conf = fakes.make_conf()
        self.ctx = ns_context.RequestContext(user_id='u1', project_id='p1')
        self.instance = {'uuid': 'i1', 'project_id': 'p1', 'system_metadata': {
            'image_hw_disk_bus': 'virtio', 'image_min_ram': '64',
            'image_min_disk': '1', 'image_disk_format': 'qcow2',
            'image_container_format': 'bare', 'image_base_image_ref': 'b',
            'image_img_signature': 's', 'image_img_signature_key_type': 'k',
            'image_cinder_encryption_key_id': 'e', 'image_cache_in_nova': 'y',
            'image_bittorrent': 'y', 'image_os_glance_import_task': 't',
            'image_block_device_mapping': '[]', 'image_mappings': '[]',
            'password_0': 'secret', 'owner_user_name': 'bob',
            'snapshot_image_id': 'other', 'image_custom': 'c'}}

    def test_inheritance_and_additions(self):
        meta = sm.snapshot_image_meta(self.conf, self.ctx, self.instance,
                                      'snap', {})
        self.assertEqual({
            'name': 'snap', 'visibility': 'private', 'min_ram': 64,
            'min_disk': 1, 'hw_disk_bus': 'virtio', 'base_image_ref': 'b',
            'custom': 'c', 'image_type': 'snapshot', 'instance_uuid': 'i1',
            'user_id': 'u1'}, meta)

    def test_configured_non_inheritable(self):
        self.conf.set_override('non_inheritable_image_properties',
                               ['custom'], 'compute')
        meta = sm.snapshot_image_meta(self.conf, self.ctx, self.instance,
                                      'snap', {})
        self.assertNotIn('custom', meta)
        # The built-in default list no longer applies once replaced.
        self.assertEqual('y', meta['cache_in_nova'])

    def test_user_metadata_last(self):
        meta = sm.snapshot_image_meta(
            self.conf, self.ctx, self.instance, 'snap',
            {'image_type': 'test', 'user_id': 'x', 'hw_disk_bus': 'scsi',
             'visibility': 'public', 'owner': 'evil'})
        self.assertEqual(('test', 'x', 'scsi', 'private'),
                         (meta['image_type'], meta['user_id'],
                          meta['hw_disk_bus'], meta['visibility']))
        self.assertNotIn('owner', meta)

    def test_backup_keeps_formats(self):
        meta = sm.snapshot_image_meta(self.conf, self.ctx, self.instance,
                                      'b', {}, image_type='backup')
        self.assertEqual(('qcow2', 'bare'), (meta['disk_format'],
                                             meta['container_format']))

    def test_cross_project(self):
        admin = ns_context.RequestContext(user_id='a', project_id='ap',
                                          is_admin=True)
        meta = sm.snapshot_image_meta(self.conf, admin, self.instance, 's',
                                      {})
        self.assertEqual(('shared', 'p1'), (meta['visibility'],
                                            meta['instance_owner']))
