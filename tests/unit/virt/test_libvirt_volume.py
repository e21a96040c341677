"""connection_info -> libvirt RBD disk XML, and cephx secrets."""

import base64
import unittest
from unittest import mock
from xml.etree import ElementTree

import libvirt

from nova_snapshot import exception
from nova_snapshot.virt.libvirt import config as vconfig
from nova_snapshot.virt.libvirt import volume as vvolume

SECRET = '4b5fd580-360c-4f8c-abb5-c83bb9a3f964'


def connection_info(**data):
    base = {'name': 'volumes/volume-11111111-2222-3333-4444-555555555555',
            'hosts': ['127.0.0.1'], 'ports': ['6789'],
            'auth_enabled': False, 'auth_username': None,
            'secret_type': 'ceph', 'secret_uuid': SECRET,
            'volume_id': '11111111-2222-3333-4444-555555555555',
            'discard': True, 'access_mode': 'rw'}
    base.update(data)
    return {'driver_volume_type': 'rbd', 'data': base}


def parse(disk):
    return ElementTree.fromstring(vconfig.network_disk_xml(disk))


def libvirt_error(code, message='boom'):
    exc = libvirt.libvirtError(message)
    exc.get_error_code = lambda: code
    return exc


class NetworkDiskXMLTest(unittest.TestCase):

    def test_rbd_without_auth(self):
        disk = vvolume.network_disk(connection_info(), '/dev/vdb')
        elem = parse(disk)
        self.assertEqual({'type': 'network', 'device': 'disk'}, elem.attrib)
        self.assertEqual({'name': 'qemu', 'type': 'raw', 'cache': 'writeback',
                          'discard': 'unmap'}, elem.find('driver').attrib)
        source = elem.find('source')
        self.assertEqual('rbd', source.get('protocol'))
        self.assertEqual(
            'volumes/volume-11111111-2222-3333-4444-555555555555',
            source.get('name'))
        self.assertEqual([{'name': '127.0.0.1', 'port': '6789'}],
                         [h.attrib for h in source.findall('host')])
        self.assertEqual({'dev': 'vdb', 'bus': 'virtio'},
                         elem.find('target').attrib)
        self.assertEqual('11111111-2222-3333-4444-555555555555',
                         elem.find('serial').text)
        self.assertIsNone(elem.find('auth'))
        self.assertIsNone(elem.find('readonly'))

    def test_cephx_auth(self):
        disk = vvolume.network_disk(
            connection_info(auth_enabled=True, auth_username='cinder'),
            'vdc')
        auth = parse(disk).find('auth')
        self.assertEqual('cinder', auth.get('username'))
        self.assertEqual({'type': 'ceph', 'uuid': SECRET},
                         auth.find('secret').attrib)

    def test_cephx_needs_user_and_secret(self):
        self.assertRaises(exception.InvalidConnectionInfo,
                          vvolume.network_disk,
                          connection_info(auth_enabled=True), 'vdb')
        self.assertRaises(exception.InvalidConnectionInfo,
                          vvolume.network_disk,
                          connection_info(auth_enabled=True,
                                          auth_username='c',
                                          secret_uuid='not a uuid'), 'vdb')

    def test_flat_attachment_shape_and_several_hosts(self):
        ci = connection_info(hosts=['10.0.0.1', '10.0.0.2'],
                             ports=['6789', '3300'], discard=False,
                             access_mode='ro')['data']
        ci['driver_volume_type'] = 'rbd'
        elem = parse(vvolume.network_disk(ci, 'sdb', serial='vol-x'))
        self.assertEqual([('10.0.0.1', '6789'), ('10.0.0.2', '3300')],
                         [(h.get('name'), h.get('port'))
                          for h in elem.find('source').findall('host')])
        self.assertNotIn('discard', elem.find('driver').attrib)
        self.assertIsNotNone(elem.find('readonly'))
        self.assertEqual('scsi', elem.find('target').get('bus'))
        self.assertEqual('vol-x', elem.find('serial').text)

    def test_unsupported_driver_type(self):
        ci = connection_info()
        ci['driver_volume_type'] = 'iscsi'
        with self.assertRaises(exception.VolumeDriverNotFound) as cm:
            vvolume.network_disk(ci, 'vdb')
        self.assertIn('iscsi', str(cm.exception))
        self.assertRaises(exception.VolumeDriverNotFound,
                          vvolume.network_disk, {'data': {}}, 'vdb')

    def test_hostile_values_are_refused(self):
        for name in ('volumes/../../etc', "volumes/x'/><evil", 'noslash',
                     None):
            self.assertRaises(exception.InvalidConnectionInfo,
                              vvolume.network_disk,
                              connection_info(name=name), 'vdb')
        for dev in ('/dev/../vdb', 'vdb; rm', 'nvme0n1', '', None, 'vd'):
            self.assertRaises(exception.InvalidDevicePath,
                              vvolume.network_disk, connection_info(), dev)
        self.assertRaises(exception.InvalidConnectionInfo,
                          vvolume.network_disk,
                          connection_info(ports=['1', '2']), 'vdb')
        self.assertRaises(exception.InvalidConnectionInfo,
                          vvolume.network_disk, connection_info(), 'vdb',
                          disk_bus='floppy')

    def test_domain_with_root_volume_has_no_file_disk(self):
        root = vvolume.network_disk(connection_info(), 'vda')
        data = vvolume.network_disk(
            connection_info(name='volumes/volume-data'), 'sdb')
        guest = vconfig.GuestConfig(
            name='instance-x', uuid='11111111-2222-3333-4444-555555555555',
            memory_mb=128, vcpus=1, disk_path=None, console_log='/c.log',
            kernel='/k', initrd='/i', cmdline='console=ttyS0',
            volumes=[root, data])
        dom = ElementTree.fromstring(vconfig.domain_xml(guest))
        disks = dom.findall('./devices/disk')
        self.assertEqual(['network', 'network'],
                         [d.get('type') for d in disks])
        self.assertEqual(['vda', 'sdb'],
                         [d.find('target').get('dev') for d in disks])
        # A scsi disk needs its controller.
        self.assertEqual('virtio-scsi', dom.find(
            "./devices/controller[@type='scsi']").get('model'))
        self.assertEqual('/k', dom.find('./os/kernel').text)


class EnsureSecretTest(unittest.TestCase):

    def setUp(self):
        self.conn = mock.Mock()

    def disk(self, **data):
        ci = connection_info(auth_enabled=True, auth_username='cinder',
                             **data)
        return vvolume.network_disk(ci, 'vdb'), ci

    def test_no_auth_needs_no_secret(self):
        ci = connection_info()
        disk = vvolume.network_disk(ci, 'vdb')
        self.assertIsNone(vvolume.ensure_secret(self.conn, disk, ci))
        self.conn.secretLookupByUUIDString.assert_not_called()

    def test_existing_secret_is_used(self):
        disk, ci = self.disk()
        secret = self.conn.secretLookupByUUIDString.return_value
        self.assertIs(secret, vvolume.ensure_secret(self.conn, disk, ci))
        self.conn.secretLookupByUUIDString.assert_called_once_with(SECRET)
        self.conn.secretDefineXML.assert_not_called()
        secret.setValue.assert_not_called()

    def test_missing_secret_without_key_is_a_clear_error(self):
        disk, ci = self.disk()
        self.conn.secretLookupByUUIDString.side_effect = libvirt_error(
            libvirt.VIR_ERR_NO_SECRET)
        with self.assertRaises(exception.VolumeSecretMissing) as cm:
            vvolume.ensure_secret(self.conn, disk, ci)
        self.assertIn(SECRET, str(cm.exception))
        self.assertIn('cinder', str(cm.exception))

    def test_missing_secret_is_defined_from_the_key(self):
        key = base64.b64encode(b'k' * 16).decode()
        disk, ci = self.disk(secret=key)
        self.conn.secretLookupByUUIDString.side_effect = libvirt_error(
            libvirt.VIR_ERR_NO_SECRET)
        secret = self.conn.secretDefineXML.return_value
        self.assertIs(secret, vvolume.ensure_secret(self.conn, disk, ci))
        xml = ElementTree.fromstring(self.conn.secretDefineXML.call_args[0][0])
        self.assertEqual('yes', xml.get('private'))
        self.assertEqual(SECRET, xml.find('uuid').text)
        self.assertEqual('ceph', xml.find('usage').get('type'))
        secret.setValue.assert_called_once_with(b'k' * 16)

    def test_bad_key_and_other_libvirt_errors(self):
        disk, ci = self.disk(secret='***')
        self.conn.secretLookupByUUIDString.side_effect = libvirt_error(
            libvirt.VIR_ERR_NO_SECRET)
        self.assertRaises(exception.InvalidConnectionInfo,
                          vvolume.ensure_secret, self.conn, disk, ci)
        disk, ci = self.disk()
        self.conn.secretLookupByUUIDString.side_effect = libvirt_error(
            libvirt.VIR_ERR_INTERNAL_ERROR)
        self.assertRaises(exception.HypervisorError,
                          vvolume.ensure_secret, self.conn, disk, ci)


if __name__ == '__main__':
    unittest.main()
