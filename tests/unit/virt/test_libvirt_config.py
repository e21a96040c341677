"""Domain XML built by nova_snapshot.virt.libvirt.config."""

import unittest
from xml.etree import ElementTree

from nova_snapshot.virt.libvirt import config

UUID = '0b3c6f5e-8a8e-4b8f-9a39-6a3f8f1b2c4d'


def make_guest(**kwargs):
    values = dict(name='instance-' + UUID, uuid=UUID, memory_mb=128, vcpus=2,
                  disk_path='/var/lib/ns/instances/%s/disk' % UUID,
                  console_log='/var/lib/ns/instances/%s/console.log' % UUID)
    values.update(kwargs)
    return config.GuestConfig(**values)


def parse(guest):
    return ElementTree.fromstring(config.domain_xml(guest))


class DomainXMLTest(unittest.TestCase):

    def test_identity_and_size(self):
        root = parse(make_guest())
        self.assertEqual('domain', root.tag)
        self.assertEqual('qemu', root.get('type'))
        self.assertEqual('instance-' + UUID, root.findtext('name'))
        self.assertEqual(UUID, root.findtext('uuid'))
        self.assertEqual('128', root.findtext('memory'))
        self.assertEqual('MiB', root.find('memory').get('unit'))
        self.assertEqual('2', root.findtext('vcpu'))

    def test_virt_type_from_config(self):
        self.assertEqual('kvm', parse(make_guest(virt_type='kvm')).get('type'))

    def test_root_disk_is_virtio_vda_qcow2(self):
        disks = parse(make_guest()).findall('./devices/disk')
        self.assertEqual(1, len(disks))
        disk = disks[0]
        self.assertEqual('file', disk.get('type'))
        self.assertEqual('disk', disk.get('device'))
        self.assertEqual('qcow2', disk.find('driver').get('type'))
        self.assertEqual('/var/lib/ns/instances/%s/disk' % UUID,
                         disk.find('source').get('file'))
        self.assertEqual('vda', disk.find('target').get('dev'))
        self.assertEqual('virtio', disk.find('target').get('bus'))

    def test_serial_console_goes_to_a_file(self):
        serials = parse(make_guest()).findall('./devices/serial')
        self.assertEqual(1, len(serials))
        self.assertEqual('file', serials[0].get('type'))
        self.assertEqual('/var/lib/ns/instances/%s/console.log' % UUID,
                         serials[0].find('source').get('path'))

    def test_no_network(self):
        self.assertEqual([],
                         parse(make_guest()).findall('./devices/interface'))

    def test_boot_from_disk_without_kernel(self):
        os_elem = parse(make_guest()).find('os')
        self.assertEqual('hvm', os_elem.findtext('type'))
        self.assertIsNone(os_elem.find('kernel'))
        self.assertEqual('hd', os_elem.find('boot').get('dev'))

    def test_direct_kernel_boot(self):
        os_elem = parse(make_guest(kernel='/i/kernel', initrd='/i/ramdisk',
                                   cmdline='console=ttyS0 quiet')).find('os')
        self.assertEqual('/i/kernel', os_elem.findtext('kernel'))
        self.assertEqual('/i/ramdisk', os_elem.findtext('initrd'))
        self.assertEqual('console=ttyS0 quiet', os_elem.findtext('cmdline'))
        self.assertIsNone(os_elem.find('boot'))

    def test_guest_agent_channel_only_when_asked(self):
        self.assertEqual([], parse(make_guest()).findall('./devices/channel'))
        channels = parse(make_guest(guest_agent=True)).findall(
            './devices/channel')
        self.assertEqual(1, len(channels))
        self.assertEqual('unix', channels[0].get('type'))
        target = channels[0].find('target')
        self.assertEqual('virtio', target.get('type'))
        self.assertEqual('org.qemu.guest_agent.0', target.get('name'))

    def test_user_text_is_escaped_not_interpreted(self):
        evil = "a</cmdline><devices><disk type='file'/></devices><x>&'\""
        xml = config.domain_xml(make_guest(kernel='/k', cmdline=evil))
        root = ElementTree.fromstring(xml)
        self.assertEqual(evil, root.find('os').findtext('cmdline'))
        self.assertEqual(1, len(root.findall('./devices/disk')))
        self.assertEqual(1, len(root.findall('devices')))
