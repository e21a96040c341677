"""The libvirt connection after libvirtd restarted: a cached connection
that still says isAlive() fails its first call; the lookup is made again
on a new connection instead of failing the caller's action."""

import unittest
from unittest import mock

import libvirt

from nova_snapshot import exception
from nova_snapshot.virt.libvirt import host as vhost

UUID = '6b0d6f4e-2b1c-4c8e-9a43-0d3c3f8f1a11'


def _libvirt_error(domain, code, message):
    exc = libvirt.libvirtError(message)
    exc.err = (code, domain, message, 2, None, None, None, 0, 0)
    return exc


class Connection(object):

    def __init__(self, error=None):
        self.error = error
        self.lookups = 0

    def isAlive(self):
        return True

    def lookupByUUIDString(self, key):
        self.lookups += 1
        if self.error is not None:
            raise self.error
        return 'domain-%s' % key


class ReconnectTest(unittest.TestCase):

    def host_with(self, *connections):
        host = vhost.Host('qemu:///system')
        opened = iter(connections)
        patcher = mock.patch.object(libvirt, 'open',
                                    side_effect=lambda uri: next(opened))
        patcher.start()
        self.addCleanup(patcher.stop)
        return host

    def test_a_dead_connection_is_replaced_and_the_lookup_retried(self):
        dead = Connection(_libvirt_error(
            libvirt.VIR_FROM_RPC, libvirt.VIR_ERR_SYSTEM_ERROR,
            'Cannot write data: Broken pipe'))
        fresh = Connection()
        host = self.host_with(dead, fresh)
        self.assertEqual('domain-%s' % UUID, host.get_domain(UUID))
        self.assertEqual((1, 1), (dead.lookups, fresh.lookups))
        # The new connection is kept.
        host.get_domain(UUID)
        self.assertEqual(2, fresh.lookups)

    def test_other_errors_are_not_retried(self):
        missing = Connection(_libvirt_error(
            libvirt.VIR_FROM_QEMU, libvirt.VIR_ERR_NO_DOMAIN, 'no domain'))
        host = self.host_with(missing)
        self.assertRaises(exception.InstanceNotFound, host.get_domain, UUID)
        self.assertEqual(1, missing.lookups)


class UnreachableTest(ReconnectTest):
    """libvirtd down or restarting is HypervisorUnavailable (the caller
    may try again: a delete retries it, a console read waits it out); any
    other libvirt error stays a HypervisorError."""

    def test_a_refused_connection_is_unavailable(self):
        host = vhost.Host('qemu:///system')
        refused = _libvirt_error(
            libvirt.VIR_FROM_RPC, libvirt.VIR_ERR_SYSTEM_ERROR,
            "Failed to connect socket to '/run/libvirt/libvirt-sock': "
            'Connection refused')
        with mock.patch.object(libvirt, 'open', side_effect=refused), \
                self.assertRaises(exception.HypervisorUnavailable) as caught:
            host.get_domain(UUID)
        exc = caught.exception
        self.assertEqual(503, exc.code)
        self.assertIsInstance(exc, exception.HypervisorError)

    def test_a_connection_lost_twice_is_unavailable(self):
        lost = _libvirt_error(libvirt.VIR_FROM_RPC,
                              libvirt.VIR_ERR_SYSTEM_ERROR,
                              'Cannot recv data: Connection reset by peer')
        host = self.host_with(Connection(lost), Connection(lost))
        self.assertRaises(exception.HypervisorUnavailable, host.get_domain,
                          UUID)

    def test_other_errors_are_hypervisor_errors(self):
        broken = Connection(_libvirt_error(
            libvirt.VIR_FROM_QEMU, libvirt.VIR_ERR_INTERNAL_ERROR, 'boom'))
        host = self.host_with(broken)
        with self.assertRaises(exception.HypervisorError) as caught:
            host.get_domain(UUID)
        self.assertNotIsInstance(caught.exception,
                                 exception.HypervisorUnavailable)


if __name__ == '__main__':
    unittest.main()
