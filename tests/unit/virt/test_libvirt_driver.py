"""LibvirtDriver with libvirt's connection and qemu-img replaced by fakes."""

import os
import shutil
import tempfile
import unittest
from unittest import mock
from xml.etree import ElementTree

import libvirt

from nova_snapshot.compute import power_state
from nova_snapshot import conf as ns_conf
from nova_snapshot import exception
from nova_snapshot.virt import image_inspection
from nova_snapshot.virt.libvirt import driver as libvirt_driver
from nova_snapshot.virt.libvirt import host as libvirt_host

UUID = '3f1d8f3a-4a55-4c0e-9d59-0d7b1b7f1a01'
MiB = 1024 * 1024


def libvirt_error(code):
    err = libvirt.libvirtError('fake error %d' % code)
    err.err = (code, 0, 'fake error %d' % code, 0, None, None, None, 0, 0)
    return err


class FakeDomain:

    def __init__(self, conn, xml):
        self.conn = conn
        self.xml = xml
        root = ElementTree.fromstring(xml)
        self._uuid = root.findtext('uuid')
        self._name = root.findtext('name')
        self.state_ = libvirt.VIR_DOMAIN_SHUTOFF
        self.managed_save = False
        self.calls = []

    def UUIDString(self):
        return self._uuid

    def name(self):
        return self._name

    def state(self):
        return [self.state_, 0]

    def isActive(self):
        return self.state_ != libvirt.VIR_DOMAIN_SHUTOFF

    def create(self):
        self.calls.append('create')
        self.state_ = libvirt.VIR_DOMAIN_RUNNING
        self.managed_save = False

    def destroy(self):
        self.calls.append('destroy')
        self.state_ = libvirt.VIR_DOMAIN_SHUTOFF

    def suspend(self):
        self.calls.append('suspend')
        self.state_ = libvirt.VIR_DOMAIN_PAUSED

    def resume(self):
        self.calls.append('resume')
        self.state_ = libvirt.VIR_DOMAIN_RUNNING

    def managedSave(self, flags):
        self.calls.append('managedSave')
        self.state_ = libvirt.VIR_DOMAIN_SHUTOFF
        self.managed_save = True

    def undefineFlags(self, flags):
        self.calls.append(('undefineFlags', flags))
        del self.conn.domains[self._uuid]


class FakeConn:

    def __init__(self):
        self.domains = {}

    def isAlive(self):
        return True

    def defineXML(self, xml):
        dom = FakeDomain(self, xml)
        self.domains[dom.UUIDString()] = dom
        return dom

    def lookupByUUIDString(self, uuid):
        try:
            return self.domains[uuid]
        except KeyError:
            raise libvirt_error(libvirt.VIR_ERR_NO_DOMAIN)

    def listAllDomains(self, flags):
        return list(self.domains.values())


class FakeImageAPI:

    def __init__(self):
        self.downloads = []
        self.missing = set()
        self.contents = {}

    def download(self, context, image_id, dest_path):
        if image_id in self.missing:
            raise exception.ImageNotFound(image_id=image_id)
        self.downloads.append(image_id)
        with open(dest_path, 'wb') as f:
            f.write(self.contents.get(image_id,
                                      b'data of ' + image_id.encode()))
        return 1


class LibvirtDriverTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.conf = ns_conf.new_conf([])
        self.conf.set_override('instances_path', self.tmp)
        self.conn = FakeConn()
        patcher = mock.patch.object(libvirt_host.libvirt, 'open',
                                    return_value=self.conn)
        patcher.start()
        self.addCleanup(patcher.stop)
        self.qemu_img_calls = []
        self.image_info = {'virtual-size': 64 * MiB}
        for name, fake in (('convert', self.fake_convert),
                           ('resize', self.fake_resize)):
            patcher = mock.patch.object(libvirt_driver.qemu_img, name,
                                        side_effect=fake)
            patcher.start()
            self.addCleanup(patcher.stop)
        # The inspection has tests of its own (test_image_inspection); here
        # it reports image_info's size for the fake downloads.
        self.inspect = mock.patch.object(
            libvirt_driver.image_inspection, 'inspect',
            side_effect=self.fake_inspect)
        self.inspect.start()
        self.addCleanup(self.inspect.stop)
        self.image_api = FakeImageAPI()
        self.driver = libvirt_driver.LibvirtDriver(self.conf, self.image_api)
        self.instance = {
            'uuid': UUID, 'name': 'evil </name> & name',
            'flavor': {'memory_mb': 96, 'vcpus': 2, 'root_gb': 1}}

    def fake_convert(self, src, src_format, dest, dest_format):
        self.qemu_img_calls.append(['convert', '-f', src_format, '-O',
                                    dest_format, src, dest])
        shutil.copyfile(src, dest)

    def fake_resize(self, path, fmt, size):
        self.qemu_img_calls.append(['resize', '-f', fmt, path, str(size)])

    def fake_inspect(self, path, disk_format, image_id, max_virtual_size):
        return image_inspection.InspectedImage(
            disk_format=disk_format, detected_format=disk_format,
            virtual_size=self.image_info['virtual-size'],
            file_size=os.path.getsize(path))

    def meta(self, **extra):
        meta = {'id': 'img', 'disk_format': 'qcow2',
                'container_format': 'bare'}
        meta.update(extra)
        return meta

    def inst_dir(self):
        return os.path.join(self.tmp, UUID)

    def domain_tree(self):
        return ElementTree.fromstring(self.conn.domains[UUID].xml)

    def test_spawn_from_disk(self):
        state = self.driver.spawn(None, self.instance, self.meta())
        self.assertEqual(power_state.RUNNING, state)
        self.assertEqual(['img'], self.image_api.downloads)
        tree = self.domain_tree()
        self.assertEqual('instance-' + UUID, tree.findtext('name'))
        self.assertNotIn('evil', self.conn.domains[UUID].xml)
        self.assertEqual('96', tree.findtext('memory'))
        self.assertEqual('2', tree.findtext('vcpu'))
        disk = os.path.join(self.inst_dir(), 'disk')
        self.assertEqual(disk, tree.find('./devices/disk/source').get('file'))
        self.assertTrue(os.path.exists(disk))
        self.assertFalse(os.path.exists(disk + '.download'))
        self.assertIsNone(tree.find('./os/kernel'))
        self.assertEqual([], tree.findall('./devices/channel'))
        # Grown to the flavor's root disk; the format is never probed.
        self.assertIn(['resize', '-f', 'qcow2', disk, str(1024 ** 3)],
                      self.qemu_img_calls)
        for argv in self.qemu_img_calls:
            self.assertIn('-f', argv)

    def test_spawn_direct_kernel_boot_and_agent(self):
        self.driver.spawn(None, self.instance, self.meta(
            kernel_id='k', ramdisk_id='r', hw_qemu_guest_agent='True'))
        self.assertEqual(['img', 'k', 'r'], self.image_api.downloads)
        tree = self.domain_tree()
        self.assertEqual(os.path.join(self.inst_dir(), 'kernel'),
                         tree.findtext('./os/kernel'))
        self.assertEqual(os.path.join(self.inst_dir(), 'ramdisk'),
                         tree.findtext('./os/initrd'))
        self.assertEqual('console=ttyS0', tree.findtext('./os/cmdline'))
        self.assertEqual(1, len(tree.findall('./devices/channel')))

    def test_spawn_uses_os_command_line(self):
        self.driver.spawn(None, self.instance, self.meta(
            kernel_id='k', os_command_line='console=ttyS0 quiet'))
        self.assertEqual('console=ttyS0 quiet',
                         self.domain_tree().findtext('./os/cmdline'))
        self.assertIsNone(self.domain_tree().find('./os/initrd'))

    def test_spawn_converts_raw(self):
        self.image_info = {'virtual-size': 2 * 1024 ** 3}
        self.instance['flavor']['root_gb'] = 0
        self.driver.spawn(None, self.instance, self.meta(disk_format='raw'))
        convert = [a for a in self.qemu_img_calls if a[0] == 'convert']
        self.assertEqual(1, len(convert))
        self.assertEqual(['-f', 'raw', '-O', 'qcow2'], convert[0][1:5])
        # root_gb 0: the disk is the image's size (Nova's rule).
        self.assertEqual([], [a for a in self.qemu_img_calls
                              if a[0] == 'resize'])

    def test_spawn_refuses_image_larger_than_flavor_disk(self):
        self.image_info = {'virtual-size': 1024 ** 3 + 512}
        with self.assertRaises(exception.FlavorDiskSmallerThanImage) as cm:
            self.driver.spawn(None, self.instance, self.meta())
        exc = cm.exception
        self.assertIn("Flavor's disk is too small for requested image. "
                      "Flavor disk is 1073741824 bytes, image is "
                      "1073742336 bytes.", str(exc))
        self.assertEqual([], self.qemu_img_calls)
        self.assertEqual({}, self.conn.domains)
        self.assertFalse(os.path.exists(self.inst_dir()))

    def test_spawn_inspects_before_qemu_img_and_cleans_up(self):
        # The real inspection on a real qcow2 whose header names a backing
        # file: refused before any qemu-img call, nothing left behind.
        self.inspect.stop()
        self.addCleanup(self.inspect.start)
        header = bytearray(512)
        header[0:4] = b'QFI\xfb'
        header[4:8] = (3).to_bytes(4, 'big')
        header[8:16] = (512 - 16).to_bytes(8, 'big')   # backing offset
        header[16:20] = (11).to_bytes(4, 'big')        # its length
        header[20:24] = (16).to_bytes(4, 'big')        # cluster bits
        header[24:32] = MiB.to_bytes(8, 'big')
        header[-16:-5] = b'/etc/shadow'
        self.image_api.contents['img'] = bytes(header)
        with self.assertRaises(exception.ImageUnacceptable) as cm:
            self.driver.spawn(None, self.instance, self.meta())
        exc = cm.exception
        self.assertIn('backing_file', str(exc))
        self.assertNotIn('/etc/shadow', str(exc))
        self.assertEqual([], self.qemu_img_calls)
        self.assertEqual({}, self.conn.domains)
        self.assertFalse(os.path.exists(self.inst_dir()))

    def test_spawn_refuses_other_formats(self):
        self.assertRaises(exception.ImageUnacceptable, self.driver.spawn,
                          None, self.instance, self.meta(disk_format='vmdk'))
        self.assertEqual([], self.image_api.downloads)
        self.assertFalse(os.path.exists(self.inst_dir()))

    def test_spawn_missing_kernel_cleans_up(self):
        self.image_api.missing.add('k')
        self.assertRaises(exception.ImageNotFound, self.driver.spawn, None,
                          self.instance, self.meta(kernel_id='k'))
        self.assertEqual({}, self.conn.domains)
        self.assertFalse(os.path.exists(self.inst_dir()))

    def test_power_operations(self):
        self.driver.spawn(None, self.instance, self.meta())
        dom = self.conn.domains[UUID]
        self.driver.pause(self.instance)
        self.assertEqual(power_state.PAUSED,
                         self.driver.get_power_state(self.instance))
        self.driver.unpause(self.instance)
        self.driver.suspend(self.instance)
        self.assertTrue(dom.managed_save)
        self.assertEqual(power_state.SHUTDOWN,
                         self.driver.get_power_state(self.instance))
        self.driver.resume(self.instance)
        self.assertEqual(power_state.RUNNING,
                         self.driver.get_power_state(self.instance))
        self.driver.power_off(self.instance)
        self.driver.power_off(self.instance)
        self.driver.power_on(None, self.instance)
        self.driver.power_on(None, self.instance)
        self.assertEqual(['create', 'suspend', 'resume', 'managedSave',
                          'create', 'destroy', 'create'], dom.calls)

    def test_unknown_instance(self):
        for call in (self.driver.get_power_state, self.driver.power_off,
                     self.driver.pause, self.driver.get_console_output):
            self.assertRaises(exception.InstanceNotFound, call, self.instance)
        self.assertRaises(exception.InstanceNotFound,
                          self.driver.get_power_state, {'uuid': '../etc'})

    def test_destroy_is_idempotent_and_removes_files(self):
        self.driver.spawn(None, self.instance, self.meta())
        scratch = os.path.join(self.conf.libvirt.snapshots_directory,
                               UUID + '-x')
        os.makedirs(scratch)
        other = os.path.join(self.conf.libvirt.snapshots_directory,
                             'ffffffff-0000-0000-0000-000000000000-x')
        os.makedirs(other)
        dom = self.conn.domains[UUID]
        self.driver.destroy(None, self.instance)
        self.assertEqual({}, self.conn.domains)
        flags = dom.calls[-1][1]
        self.assertTrue(flags & libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
        self.assertFalse(os.path.exists(self.inst_dir()))
        self.assertFalse(os.path.exists(scratch))
        self.assertTrue(os.path.exists(other))
        self.driver.destroy(None, self.instance)

    def test_console_output_is_the_tail_as_text(self):
        self.driver.spawn(None, self.instance, self.meta())
        self.assertEqual('', self.driver.get_console_output(self.instance))
        path = os.path.join(self.inst_dir(), 'console.log')
        with open(path, 'wb') as f:
            f.write(b'x' * (libvirt_driver.MAX_CONSOLE_BYTES + 10))
            f.write(b'end \xff\n')
        out = self.driver.get_console_output(self.instance)
        # One undecodable byte becomes one replacement character.
        self.assertEqual(libvirt_driver.MAX_CONSOLE_BYTES, len(out))
        self.assertTrue(out.endswith('end \ufffd\n'))

    def test_list_instance_uuids_only_ours(self):
        self.driver.spawn(None, self.instance, self.meta())
        self.conn.defineXML(
            '<domain><name>someone-else</name>'
            '<uuid>11111111-2222-3333-4444-555555555555</uuid></domain>')
        self.assertEqual([UUID], self.driver.list_instance_uuids())

    def test_repair_delegates_and_removes_scratch(self):
        self.driver.spawn(None, self.instance, self.meta())
        scratch = os.path.join(self.conf.libvirt.snapshots_directory,
                               UUID + '-y')
        os.makedirs(scratch)
        with mock.patch('nova_snapshot.virt.libvirt.snapshot.repair',
                        return_value=[]) as repair:
            self.driver.repair_after_crash(self.instance)
        repair.assert_called_once_with(self.conn.domains[UUID], self.instance,
                                       self.conf)
        self.assertFalse(os.path.exists(scratch))

    def test_snapshot_delegates(self):
        self.driver.spawn(None, self.instance, self.meta())
        with mock.patch('nova_snapshot.virt.libvirt.snapshot.take_snapshot',
                        return_value={'method': 'live'}) as take:
            facts = self.driver.snapshot('ctx', self.instance, 'image',
                                         'update', 'progress')
        self.assertEqual({'method': 'live'}, facts)
        take.assert_called_once_with(
            self.driver._host, self.conn.domains[UUID], self.instance,
            'image', self.image_api, self.conf, 'ctx', 'update', 'progress')


class PowerStateMapTest(unittest.TestCase):

    def test_every_libvirt_state_maps(self):
        expected = {
            libvirt.VIR_DOMAIN_RUNNING: power_state.RUNNING,
            libvirt.VIR_DOMAIN_BLOCKED: power_state.RUNNING,
            libvirt.VIR_DOMAIN_PAUSED: power_state.PAUSED,
            libvirt.VIR_DOMAIN_SHUTDOWN: power_state.SHUTDOWN,
            libvirt.VIR_DOMAIN_SHUTOFF: power_state.SHUTDOWN,
            libvirt.VIR_DOMAIN_CRASHED: power_state.CRASHED,
            libvirt.VIR_DOMAIN_PMSUSPENDED: power_state.SUSPENDED,
            libvirt.VIR_DOMAIN_NOSTATE: power_state.NOSTATE,
        }
        dom = mock.Mock()
        for lv_state, ours in expected.items():
            dom.state.return_value = [lv_state, 0]
            self.assertEqual(ours, libvirt_host.Host.power_state(dom))
