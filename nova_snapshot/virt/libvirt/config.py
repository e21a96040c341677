"""Libvirt domain XML for one instance, built from a small description.

Everything that may come from a user (names, paths, the kernel command line
from an image property) goes in through ElementTree, which escapes it: the
XML is never assembled with string formatting.
"""

import dataclasses
from xml.etree import ElementTree

GUEST_AGENT_CHANNEL = 'org.qemu.guest_agent.0'
ROOT_DEVICE = 'vda'


@dataclasses.dataclass
class NetworkDisk:
    """A disk QEMU opens over the network (an RBD image of a volume).

    :param name: ``pool/image`` as the storage names it.
    :param hosts: ``(host, port)`` pairs of the monitors.
    :param auth_username: with ``secret_uuid``, the cephx user whose key
        is in the libvirt secret of that UUID; None means no auth.
    """

    name: str
    hosts: list
    target_dev: str
    target_bus: str = 'virtio'
    protocol: str = 'rbd'
    serial: str | None = None
    auth_username: str | None = None
    secret_uuid: str | None = None
    secret_type: str = 'ceph'
    # writeback as Nova uses for RBD: librbd's cache honours flushes, so
    # a guest's fsync still reaches the cluster.
    cache: str = 'writeback'
    discard: bool = True
    read_only: bool = False


@dataclasses.dataclass
class GuestConfig:
    """What the driver knows about a guest when it defines the domain.

    :param name: libvirt domain name (``instance-<uuid>``, never the
        user's server name).
    :param disk_path: the root disk image, attached as virtio ``vda``;
        None when the root disk is a volume (one of ``volumes``).
    :param volumes: :class:`NetworkDisk` list, in target order.
    :param console_log: file the serial console is written to.
    :param kernel: with ``initrd`` and ``cmdline``, boot this kernel
        directly instead of from the disk.
    :param guest_agent: add the virtio channel qemu-ga talks on.
    """

    name: str
    uuid: str
    memory_mb: int
    vcpus: int
    disk_path: str | None
    console_log: str
    virt_type: str = 'qemu'
    disk_format: str = 'qcow2'
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    guest_agent: bool = False
    volumes: list = dataclasses.field(default_factory=list)


def _sub(parent, tag, text=None, **attrs):
    elem = ElementTree.SubElement(parent, tag, attrs)
    if text is not None:
        elem.text = str(text)
    return elem


def _os(domain, guest):
    os_elem = _sub(domain, 'os')
    _sub(os_elem, 'type', 'hvm', arch='x86_64')
    if guest.kernel:
        _sub(os_elem, 'kernel', guest.kernel)
        if guest.initrd:
            _sub(os_elem, 'initrd', guest.initrd)
        if guest.cmdline:
            _sub(os_elem, 'cmdline', guest.cmdline)
    else:
        _sub(os_elem, 'boot', dev='hd')


def network_disk_element(disk, parent=None):
    """The ``<disk type='network'>`` element of a :class:`NetworkDisk`."""
    attrs = {'type': 'network', 'device': 'disk'}
    if parent is None:
        elem = ElementTree.Element('disk', attrs)
    else:
        elem = _sub(parent, 'disk', **attrs)
    driver = {'name': 'qemu', 'type': 'raw', 'cache': disk.cache}
    if disk.discard:
        driver['discard'] = 'unmap'
    _sub(elem, 'driver', **driver)
    source = _sub(elem, 'source', protocol=disk.protocol, name=disk.name)
    for host, port in disk.hosts:
        host_attrs = {'name': str(host)}
        if port not in (None, ''):
            host_attrs['port'] = str(port)
        _sub(source, 'host', **host_attrs)
    if disk.auth_username:
        auth = _sub(elem, 'auth', username=disk.auth_username)
        _sub(auth, 'secret', type=disk.secret_type, uuid=disk.secret_uuid)
    _sub(elem, 'target', dev=disk.target_dev, bus=disk.target_bus)
    if disk.serial:
        _sub(elem, 'serial', disk.serial)
    if disk.read_only:
        _sub(elem, 'readonly')
    return elem


def network_disk_xml(disk):
    """The disk alone, for ``attachDeviceFlags``/``detachDeviceFlags``."""
    return ElementTree.tostring(network_disk_element(disk),
                                encoding='unicode')


def ceph_secret_xml(secret_uuid, usage_name):
    """A private, persistent libvirt secret of usage type ceph."""
    secret = ElementTree.Element('secret', ephemeral='no', private='yes')
    _sub(secret, 'uuid', secret_uuid)
    usage = _sub(secret, 'usage', type='ceph')
    _sub(usage, 'name', usage_name)
    return ElementTree.tostring(secret, encoding='unicode')


def _devices(domain, guest):
    devices = _sub(domain, 'devices')

    if guest.disk_path:
        disk = _sub(devices, 'disk', type='file', device='disk')
        _sub(disk, 'driver', name='qemu', type=guest.disk_format)
        _sub(disk, 'source', file=guest.disk_path)
        _sub(disk, 'target', dev=ROOT_DEVICE, bus='virtio')
    for volume in guest.volumes:
        network_disk_element(volume, devices)
    if any(v.target_bus == 'scsi' for v in guest.volumes):
        _sub(devices, 'controller', type='scsi', index='0',
             model='virtio-scsi')

    # A file (not a pty) so that the console can be read after the fact;
    # append keeps what earlier boots printed, as Nova's console log does.
    serial = _sub(devices, 'serial', type='file')
    _sub(serial, 'source', path=guest.console_log, append='on')
    _sub(serial, 'target', port='0')

    if guest.guest_agent:
        # libvirt picks the socket path itself and connects to it.
        channel = _sub(devices, 'channel', type='unix')
        _sub(channel, 'source', mode='bind')
        _sub(channel, 'target', type='virtio', name=GUEST_AGENT_CHANNEL)

    # Nothing in the test guest uses a balloon; one device less to boot.
    _sub(devices, 'memballoon', model='none')


def domain_xml(guest):
    """Return the ``<domain>`` document of ``guest`` as a string."""
    domain = ElementTree.Element('domain', type=guest.virt_type)
    _sub(domain, 'name', guest.name)
    _sub(domain, 'uuid', guest.uuid)
    _sub(domain, 'memory', int(guest.memory_mb), unit='MiB')
    _sub(domain, 'vcpu', int(guest.vcpus))
    _os(domain, guest)
    features = _sub(domain, 'features')
    _sub(features, 'acpi')
    _sub(features, 'apic')
    _sub(domain, 'on_poweroff', 'destroy')
    _sub(domain, 'on_reboot', 'restart')
    _sub(domain, 'on_crash', 'destroy')
    _devices(domain, guest)
    return ElementTree.tostring(domain, encoding='unicode')
