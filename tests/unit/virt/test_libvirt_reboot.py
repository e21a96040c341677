"""LibvirtDriver.reboot with libvirt's connection replaced by a fake whose
guest does (or does not) answer the ACPI shutdown request."""

import unittest
from unittest import mock

import libvirt

from nova_snapshot.compute import power_state
from tests.unit.virt import test_libvirt_driver as base

UUID = base.UUID


class RebootingDomain(base.FakeDomain):
    """A domain whose guest goes down on shutdown() only if it cooperates."""

    cooperative = True

    def shutdown(self):
        self.calls.append('shutdown')
        if self.cooperative:
            self.state_ = libvirt.VIR_DOMAIN_SHUTOFF

    def hasManagedSaveImage(self, flags):
        return self.managed_save

    def managedSaveRemove(self, flags):
        self.calls.append('managedSaveRemove')
        self.managed_save = False


class RebootConn(base.FakeConn):

    def defineXML(self, xml):
        dom = RebootingDomain(self, xml)
        self.domains[dom.UUIDString()] = dom
        return dom


class LibvirtRebootTest(unittest.TestCase):

    def setUp(self):
        super().setUp()
        # The driver tests' set-up (fake connection, qemu-img, Glance),
        # without running their tests here.
        self.base = base.LibvirtDriverTest('test_spawn_from_disk')
        self.base.setUp()
        self.addCleanup(self.base.doCleanups)
        self.conn, self.driver = self.base.conn, self.base.driver
        self.image_api, self.instance = self.base.image_api, self.base.instance
        self.conn.__class__ = RebootConn
        self.base.conf.set_override('wait_soft_reboot_seconds', 1,
                                    group='libvirt')
        self.driver.spawn(None, self.instance, self.base.meta())
        self.dom = self.conn.domains[UUID]
        self.dom.calls.clear()

    def domain_tree(self):
        return self.base.domain_tree()

    def test_soft_reboot_of_a_cooperative_guest(self):
        state = self.driver.reboot(self.instance, 'SOFT')
        self.assertEqual(power_state.RUNNING, state)
        self.assertEqual(['shutdown', 'create'], self.dom.calls)

    def test_soft_reboot_falls_back_to_hard_after_the_wait(self):
        self.dom.cooperative = False
        with mock.patch.object(base.libvirt_driver,
                               'SOFT_REBOOT_POLL_SECONDS', 0.05):
            state = self.driver.reboot(self.instance, 'SOFT')
        self.assertEqual(power_state.RUNNING, state)
        self.assertEqual('shutdown', self.dom.calls[0])
        self.assertEqual(['destroy', 'create'], self.dom.calls[-2:])

    def test_soft_reboot_of_a_paused_guest_is_hard(self):
        self.driver.pause(self.instance)
        self.dom.calls.clear()
        self.driver.reboot(self.instance, 'SOFT')
        self.assertEqual(['destroy', 'create'], self.dom.calls)

    def test_hard_reboot_keeps_the_disk_and_drops_saved_memory(self):
        disk = self.domain_tree().find('./devices/disk/source').get('file')
        self.driver.suspend(self.instance)
        self.assertTrue(self.dom.managed_save)
        self.dom.calls.clear()
        state = self.driver.reboot(self.instance, 'HARD')
        self.assertEqual(power_state.RUNNING, state)
        self.assertEqual(['managedSaveRemove', 'create'], self.dom.calls)
        # The same definition, the same disk file.
        self.assertIs(self.dom, self.conn.domains[UUID])
        self.assertEqual(disk, self.domain_tree().find(
            './devices/disk/source').get('file'))

    def test_hard_reboot_of_a_stopped_guest_starts_it(self):
        self.driver.power_off(self.instance)
        self.dom.calls.clear()
        self.driver.reboot(self.instance, 'HARD')
        self.assertEqual(['create'], self.dom.calls)

    def test_rebuild_replaces_the_disk_from_the_new_image(self):
        self.image_api.contents['new-img'] = b'new image data'
        state = self.driver.rebuild(None, self.instance,
                                    self.base.meta(id='new-img'))
        self.assertEqual(power_state.RUNNING, state)
        self.assertEqual(['img', 'new-img'], self.image_api.downloads)
        disk = self.domain_tree().find('./devices/disk/source').get('file')
        with open(disk, 'rb') as f:
            self.assertEqual(b'new image data', f.read())
