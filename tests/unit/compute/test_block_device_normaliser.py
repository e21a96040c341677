"""The one block-device-mapping normaliser (compute/block_device.py): the
API's request rules, the compute side's rows and a restore's image mapping
refuse the same things, and only what the libvirt driver can build passes.
"""

import json
import unittest

from nova_snapshot.compute import block_device
from nova_snapshot import exception
from nova_snapshot.virt.libvirt import volume as libvirt_volume
from tests.unit.compute import volume_fakes

VOL = '5f0c6e43-77ab-4e31-8a0b-3c2d1e0f9a88'
SNAP = '7a1d2c3b-4e5f-4a6b-8c7d-9e0f1a2b3c4d'


def _volume(**extra):
    return dict({'source_type': 'volume', 'destination_type': 'volume',
                 'uuid': VOL, 'boot_index': 0}, **extra)


class _Base(unittest.TestCase):

    def raises(self, exc, func, *args, **kwargs):
        """assertRaises that returns the exception."""
        try:
            func(*args, **kwargs)
        except exc as error:
            return error
        self.fail('%s not raised by %s%r'
                  % (exc.__name__, func.__name__, args))


class TestSupportedValues(_Base):

    def test_buses_are_the_drivers(self):
        # The driver refuses every other bus at spawn; the normaliser must
        # not let one through (nor refuse one the driver builds).
        self.assertEqual(set(libvirt_volume.BUSES),
                         set(block_device.DISK_BUSES))
        for bus in block_device.DISK_BUSES:
            self.assertEqual(bus, libvirt_volume.bus_for('vdb', bus))

    def test_device_names_are_the_drivers(self):
        for name in ('vdb', '/dev/vdb', 'sdc', 'hdd', 'xvdb', 'vdaa'):
            block_device.check_device(device_name=name)
            self.assertEqual(block_device.strip_dev(
                block_device.normalize_device_name(name)),
                libvirt_volume.target_dev(name))
        for name in ('fd0', '/dev/fd0', 'vdb1', 'nvme0n1', 'vd', 'vdaaa',
                     '/dev/../vdb', 'VDB'):
            with self.subTest(name=name):
                self.assertRaises(exception.InvalidBDM,
                                  block_device.check_device,
                                  device_name=name)
                self.assertRaises(exception.InvalidDevicePath,
                                  libvirt_volume.target_dev, name)

    def test_unsupported_bus_and_type(self):
        for bus in ('fdc', 'xen', 'uml', 'lxc', 'floppy', 'VIRTIO', ''):
            with self.subTest(bus=bus):
                error = self.raises(
                    exception.InvalidBDM, block_device.check_device,
                    disk_bus=bus)
                self.assertIn('disk_bus %s is not supported' % bus,
                              error.format_message())
        for device_type in ('cdrom', 'floppy', 'lun', 'tape'):
            with self.subTest(device_type=device_type):
                self.assertRaises(exception.InvalidBDM,
                                  block_device.check_device,
                                  device_type=device_type)
        self.assertEqual('virtio', block_device.check_device(
            'virtio', 'disk', '/dev/vdb'))

    def test_bus_from_name_and_ide_units(self):
        self.assertEqual('scsi', block_device.check_device(
            device_name='sdb'))
        self.assertEqual('ide', block_device.check_device(
            device_name='hdd'))
        self.assertEqual('virtio', block_device.check_device(
            device_name='xvdc'))
        for name, bus in (('hde', None), ('hdaa', None), ('vde', 'ide')):
            with self.subTest(name=name, bus=bus):
                self.assertRaises(exception.InvalidBDM,
                                  block_device.check_device, bus, None, name)
        self.assertEqual('ide', block_device.check_device('ide', None,
                                                          'vdd'))

    def test_attach_device_name(self):
        self.assertIsNone(block_device.attach_device_name(None))
        self.assertIsNone(block_device.attach_device_name(''))
        self.assertEqual('/dev/vdc', block_device.attach_device_name('vdc'))
        self.assertEqual('/dev/sdb',
                         block_device.attach_device_name('/dev/sdb'))
        for name in ('hdb', '/dev/hda', 'fd0', '/dev/sdb1'):
            with self.subTest(name=name):
                self.assertRaises(exception.InvalidDevicePath,
                                  block_device.attach_device_name, name)


class TestOneNormaliser(_Base):
    """The API's request rules, the rows and the image mapping agree."""

    BAD = [{'disk_bus': 'fdc'}, {'device_type': 'cdrom'},
           {'device_name': '/dev/fd0'}, {'device_name': 'hde'},
           {'disk_bus': 'ide', 'device_name': 'vdf'}]

    def test_request_rows_and_image_mapping_refuse_the_same(self):
        for extra in self.BAD:
            with self.subTest(**extra):
                self.assertRaises(
                    exception.InvalidBDM, block_device.normalise_request,
                    [_volume(**extra)], '', True)
                self.assertRaises(exception.InvalidBDM,
                                  block_device.from_api, [_volume(**extra)])
                mapping = dict({'source_type': 'snapshot',
                                'destination_type': 'volume',
                                'snapshot_id': SNAP, 'boot_index': 0,
                                'device_name': '/dev/vda'}, **extra)
                self.assertRaises(exception.InvalidBDM,
                                  block_device.from_image_mapping,
                                  json.dumps([mapping]))

    def test_request_output_is_accepted_by_the_rows(self):
        good = [_volume(disk_bus='scsi', device_name='sda',
                        delete_on_termination='yes', boot_index='0'),
                {'source_type': 'blank', 'destination_type': 'volume',
                 'volume_size': '2', 'boot_index': -1, 'disk_bus': 'sata'}]
        bdms = block_device.normalise_request(good, '', True)
        self.assertEqual(set(block_device.V2_KEYS), set(bdms[0]))
        self.assertEqual((0, True, 'scsi'), (
            bdms[0]['boot_index'], bdms[0]['delete_on_termination'],
            bdms[0]['disk_bus']))
        self.assertEqual((None, 2), (bdms[1]['boot_index'],
                                     bdms[1]['volume_size']))
        rows = block_device.assign_device_names(block_device.from_api(bdms))
        self.assertEqual(['/dev/sda', '/dev/vdb'],
                         [r['device_name'] for r in rows])
        self.assertEqual(VOL, rows[0]['volume_id'])

    def test_image_root_keeps_the_drivers_disk(self):
        # image -> local is the driver's own root disk: no volume rules,
        # but a bus it cannot build is still refused.
        image = {'source_type': 'image', 'destination_type': 'local',
                 'uuid': VOL, 'boot_index': 0}
        self.assertEqual(1, len(block_device.normalise_request(
            [image], VOL, True)))
        self.assertRaises(exception.InvalidBDM,
                          block_device.normalise_request,
                          [dict(image, disk_bus='fdc')], VOL, True)

    def test_assigned_names_are_checked_against_the_bus(self):
        # Four IDE disks after the root: the fourth gets /dev/vde, a fifth
        # IDE unit the driver cannot attach.
        rows = [dict(_volume(), volume_id=VOL, device_name=None,
                     device_type='disk', disk_bus=None)]
        rows += [{'source_type': 'blank', 'destination_type': 'volume',
                  'boot_index': None, 'device_name': None,
                  'disk_bus': 'ide', 'device_type': 'disk'}
                 for _ in range(4)]
        error = self.raises(exception.InvalidBDM,
                            block_device.assign_device_names, rows)
        self.assertIn('/dev/vde', error.format_message())
        block_device.assign_device_names(rows[:4])


class TestComputeAPIRefusesBeforeAnythingExists(
        volume_fakes.VolumeComputeTestCase):
    """ComputeAPI.create over the fakes: a request's mapping, or the
    mapping of an image anyone could have written, that the driver cannot
    build is a 400 with no server, volume or attachment made."""

    def _mapping_image(self, **overrides):
        snapshot = self.cinder.create_snapshot_force(
            self.ctx, self.cinder.add_volume(size=1)['id'], 'a')
        mapping = dict(dict.fromkeys(block_device.IMAGE_MAPPING_KEYS),
                       source_type='snapshot', destination_type='volume',
                       snapshot_id=snapshot['id'], boot_index=0,
                       device_name='/dev/vda', volume_size=1,
                       device_type='disk', disk_bus='virtio')
        mapping.update(overrides)
        return self.image_api.add_image(
            name='crafted', size=0, disk_format='raw',
            block_device_mapping=json.dumps([mapping]), bdm_v2='True',
            root_device_name='/dev/vda')

    def test_crafted_image_mapping_is_400(self):
        for overrides in ({'disk_bus': 'fdc'}, {'device_type': 'floppy'},
                          {'device_name': '/dev/fd0'}):
            image = self._mapping_image(**overrides)
            with self.subTest(**overrides):
                error = self.raises(exception.Invalid, self.api.create,
                                    self.ctx, 'x', image['id'], '1')
                self.assertEqual(400, error.code)
                self.assertIn('is not supported', error.format_message())
        self.assertEqual([], self.db.instance_get_all())
        self.assertEqual([], self.cinder.calls('create'))

    def test_request_mapping_is_400(self):
        error = self.raises(
            exception.Invalid, self.api.create, self.ctx, 'x', None, '1',
            block_device_mapping=[{
                'source_type': 'blank', 'destination_type': 'volume',
                'volume_size': 1, 'boot_index': 0, 'disk_bus': 'fdc'}])
        self.assertIn('disk_bus fdc is not supported',
                      error.format_message())
        self.assertEqual([], self.db.instance_get_all())
        self.assertEqual([], self.cinder.calls('create'))

    def test_a_good_image_mapping_still_restores(self):
        image = self._mapping_image(disk_bus='scsi', device_name='/dev/sda')
        instance = self.boot_from_volume(None, image_ref=image['id'])
        self.assertTrue(self.api.is_volume_backed(self.ctx, instance))
        rows = self.db.bdm_get_by_instance(instance['uuid'])
        self.assertEqual([('scsi', '/dev/sda')],
                         [(r['disk_bus'], r['device_name']) for r in rows])
