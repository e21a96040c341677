"""The inspection of untrusted images, on real files (real qemu-img)."""

import os
import shutil
import struct
import subprocess
import tempfile
import unittest
from unittest import mock

from nova_snapshot import exception
from nova_snapshot.virt import image_inspection
from nova_snapshot.virt.libvirt import qemu_img
from tests import crafted_images

MiB = 1024 ** 2
MARKER = b'HOST-SECRET-4c1d9e'
# The crafted images that really leak the host file through qemu-img when
# nothing inspects them (checked below, so these tests can fail).
LEAKING = ('qcow2-data-file-host-file', 'qcow2-data-file-raw-host-file',
           'qcow2-data-file-other-server-disk', 'qcow2-backing-host-file',
           'qcow2-backing-other-server-disk', 'qcow2-backing-json-protocol')


class InspectionTestBase(unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix='ns-inspect-')
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.tmp, name)

    def write(self, name, data):
        with open(self.path(name), 'wb') as f:
            f.write(data)
        return self.path(name)

    def qemu_img_create(self, name, fmt, size):
        subprocess.run(['qemu-img', 'create', '-f', fmt, self.path(name),
                        str(size)], check=True, capture_output=True)
        return self.path(name)


class CraftedImagesTest(InspectionTestBase):

    def setUp(self):
        super().setUp()
        self.host_file = self.write('host-secret', (MARKER + b'\n') * 65536)
        self.other_disk = self.path('other-disk')
        subprocess.run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2',
                        self.host_file, self.other_disk], check=True)
        self.images = crafted_images.build_all(
            self.write_dir('crafted'), self.host_file, self.other_disk)

    def write_dir(self, name):
        os.mkdir(self.path(name))
        return self.path(name)

    def test_at_least_twenty_crafted_images(self):
        self.assertGreaterEqual(len(self.images), 20)
        self.assertEqual(len(self.images),
                         len({c.name for c in self.images}))

    def test_the_leaking_ones_leak_without_inspection(self):
        # What qemu-img does with them when nothing looks first: the host
        # file's bytes end up in the output (CVE-2024-32498's class).
        for crafted in self.images:
            if crafted.name not in LEAKING:
                continue
            with self.subTest(crafted.name):
                out = self.path('out-%s.raw' % crafted.name)
                subprocess.run(['qemu-img', 'convert', '-f', 'qcow2', '-O',
                                'raw', crafted.path, out], check=True,
                               capture_output=True)
                with open(out, 'rb') as f:
                    self.assertIn(MARKER, f.read())

    def test_every_crafted_image_refused_without_leaking_paths(self):
        secret_paths = (self.host_file, self.other_disk, '/etc/passwd',
                        self.tmp)
        for crafted in self.images:
            if crafted.refused_by != 'inspection':
                continue
            with self.subTest(crafted.name):
                with mock.patch.object(qemu_img, 'info',
                                       wraps=qemu_img.info) as info:
                    with self.assertRaises(
                            exception.ImageUnacceptable) as cm:
                        image_inspection.inspect(
                            crafted.path, crafted.disk_format, 'img-1')
                message = cm.exception.format_message()
                self.assertTrue(message.startswith(
                    'Image img-1 is unacceptable: '), message)
                for path in secret_paths:
                    self.assertNotIn(path, message)
                # Only the encrypted one gets as far as qemu-img (which
                # does not follow data or backing files for info).
                if crafted.name != 'qcow2-aes-encrypted':
                    self.assertEqual(0, info.call_count, crafted.name)

    def test_size_checked_one_is_a_valid_image(self):
        crafted = [c for c in self.images if c.refused_by == 'size'][0]
        image = image_inspection.inspect(crafted.path, crafted.disk_format,
                                         'img-1')
        self.assertEqual(5 * 1024 ** 3, image.virtual_size)


class AcceptedImagesTest(InspectionTestBase):

    def test_qcow2(self):
        path = self.qemu_img_create('disk.qcow2', 'qcow2', 64 * MiB)
        image = image_inspection.inspect(path, 'qcow2', 'img')
        self.assertEqual(('qcow2', 'qcow2', 64 * MiB),
                         (image.disk_format, image.detected_format,
                          image.virtual_size))
        self.assertEqual(os.path.getsize(path), image.file_size)

    def test_raw(self):
        path = self.write('disk.raw', b'\x01' * MiB)
        image = image_inspection.inspect(path, 'raw', 'img')
        self.assertEqual(('raw', 'raw', MiB, MiB),
                         (image.disk_format, image.detected_format,
                          image.virtual_size, image.file_size))

    def test_raw_of_odd_size(self):
        # QEMU rounds the disk up to whole sectors; that is not a mismatch.
        path = self.write('odd.raw', b'\x01' * 1000)
        image = image_inspection.inspect(path, 'raw', 'img')
        self.assertEqual((1024, 1000), (image.virtual_size, image.file_size))

    def test_raw_with_a_partition_table_is_raw(self):
        # A whole-disk image: an MBR with one Linux partition.
        data = bytearray(MiB)
        data[446:462] = bytes([0, 0, 2, 0, 0x83, 0xfe, 0xff, 0xff]) + \
            (2048).to_bytes(4, 'little') + (8).to_bytes(4, 'little')
        data[510:512] = b'\x55\xaa'
        path = self.write('disk.raw', bytes(data))
        image = image_inspection.inspect(path, 'raw', 'img')
        self.assertEqual(('raw', 'gpt', MiB),
                         (image.disk_format, image.detected_format,
                          image.virtual_size))

    def test_iso_declared_raw_is_raw(self):
        data = crafted_images._iso_over(bytes(64 * 1024))
        path = self.write('cd.iso', data)
        image = image_inspection.inspect(path, 'raw', 'img')
        self.assertEqual('iso', image.detected_format)
        self.assertEqual(len(data), image.virtual_size)


class RefusalsTest(InspectionTestBase):

    def assert_refused(self, path, disk_format, text, **kwargs):
        with self.assertRaises(exception.ImageUnacceptable) as cm:
            image_inspection.inspect(path, disk_format, 'img', **kwargs)
        self.assertIn(text, cm.exception.format_message())

    def test_unsupported_disk_format_before_reading(self):
        self.assert_refused(self.path('absent'), 'vmdk',
                            'disk_format vmdk is not supported')
        self.assertRaises(exception.ImageUnacceptable,
                          image_inspection.check_disk_format, 'img', 'iso')

    def test_raw_declared_qcow2(self):
        path = self.write('disk', b'\0' * MiB)
        self.assert_refused(path, 'qcow2', 'its data is raw, not qcow2')

    def test_virtual_size_cap(self):
        path = self.qemu_img_create('disk.qcow2', 'qcow2', 64 * MiB)
        self.assert_refused(path, 'qcow2', 'above the limit',
                            max_virtual_size=64 * MiB - 512)
        image_inspection.inspect(path, 'qcow2', 'img',
                                 max_virtual_size=64 * MiB)

    def test_zero_virtual_size(self):
        self.assert_refused(self.write('empty', b''), 'raw',
                            'virtual size is zero')

    def test_qemu_img_must_agree(self):
        path = self.qemu_img_create('disk.qcow2', 'qcow2', 64 * MiB)
        for info, text in (
                ({'format': 'raw', 'virtual-size': 64 * MiB},
                 'qemu-img reads it as raw'),
                ({'format': 'qcow2', 'virtual-size': MiB},
                 'virtual size is inconsistent'),
                ({'format': 'qcow2', 'virtual-size': 64 * MiB,
                  'backing-filename': '/x'}, 'it has a backing file'),
                ({'format': 'qcow2', 'virtual-size': 64 * MiB,
                  'format-specific': {'type': 'qcow2', 'data': {
                      'data-file': '/x'}}}, 'external data file')):
            with self.subTest(text):
                with mock.patch.object(qemu_img, 'info', return_value=info):
                    self.assert_refused(path, 'qcow2', text)

    def test_qemu_img_failure_is_a_refusal(self):
        path = self.qemu_img_create('disk.qcow2', 'qcow2', 64 * MiB)
        with mock.patch.object(qemu_img, 'info', side_effect=(
                exception.QemuImgFailed(command='info', reason='killed'))):
            self.assert_refused(path, 'qcow2', 'qemu-img cannot read it')

    def test_inspector_crash_is_a_refusal(self):
        path = self.write('disk', b'\0' * MiB)
        with mock.patch.object(image_inspection.format_inspector,
                               'detect_file_format',
                               side_effect=struct.error('short buffer')):
            self.assert_refused(path, 'raw', 'could not be inspected')


class LocalDiskCheckTest(InspectionTestBase):

    def test_clean_qcow2_and_raw_pass(self):
        path = self.qemu_img_create('disk.qcow2', 'qcow2', MiB)
        image_inspection.check_local_disk(path, 'qcow2')
        image_inspection.check_local_disk(self.write('r', b'x'), 'raw')

    def test_data_and_backing_files_refused(self):
        for name, data in (
                ('data', crafted_images.qcow2(MiB, data_file='/etc/passwd')),
                ('backing', crafted_images.qcow2(MiB, backing='/etc/passwd'))):
            with self.subTest(name):
                path = self.write(name, data)
                with self.assertRaises(exception.ImageUnacceptable) as cm:
                    image_inspection.check_local_disk(path, 'qcow2',
                                                      image_id='base')
                self.assertNotIn('/etc/passwd', str(cm.exception))
                self.assertIn('Image base', str(cm.exception))

    def test_not_qcow2(self):
        self.assertRaises(exception.ImageUnacceptable,
                          image_inspection.check_local_disk,
                          self.write('r', b'\0' * 1024), 'qcow2')
