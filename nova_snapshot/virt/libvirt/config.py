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
class GuestConfig:
    """What the driver knows about a guest when it defines the domain.

    :param name: libvirt domain name (``instance-<uuid>``, never the
        user's server name).
    :param disk_path: the root disk image, attached as virtio ``vda``.
    :param console_log: file the serial console is written to.
    :param kernel: with ``initrd`` and ``cmdline``, boot this kernel
        directly instead of from the disk.
    :param guest_agent: add the virtio channel qemu-ga talks on.
    """

    name: str
    uuid: str
    memory_mb: int
    vcpus: int
    disk_path: str
    console_log: str
    virt_type: str = 'qemu'
    disk_format: str = 'qcow2'
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    guest_agent: bool = False


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


def _devices(domain, guest):
    devices = _sub(domain, 'devices')

    disk = _sub(devices, 'disk', type='file', device='disk')
    _sub(disk, 'driver', name='qemu', type=guest.disk_format)
    _sub(disk, 'source', file=guest.disk_path)
    _sub(disk, 'target', dev=ROOT_DEVICE, bus='virtio')

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
