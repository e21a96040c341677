"""Cinder connection info -> libvirt disks, and the cephx secrets they use.

Cinder hands out ``connection_info`` in two shapes: Nova's, ``{'driver_volume_type':
'rbd', 'data': {...}}``, and the flat one of the attachments API as
cinderclient returns it (``driver_volume_type`` beside the data keys).
Both are accepted. Only ``rbd`` is supported: QEMU opens the image itself
through librbd, so nothing is attached on the host.

Everything in ``connection_info`` comes from Cinder, and the device name may
come from a user: both are validated here and reach libvirt only through
ElementTree (see :mod:`config`).
"""

import base64
import re
import uuid as uuidlib

import libvirt

from nova_snapshot import exception
from nova_snapshot.virt.libvirt import config as vconfig

SUPPORTED_TYPES = ('rbd',)
# What a bus is called in a device name when the caller gives no bus.
BUS_BY_PREFIX = {'vd': 'virtio', 'sd': 'scsi', 'hd': 'ide', 'xvd': 'xen'}
BUSES = ('virtio', 'scsi', 'sata', 'ide', 'usb')
DEVICE_RE = re.compile(r'^(?:/dev/)?((?:vd|sd|hd|xvd)[a-z]{1,2})$')
# pool/image, optionally pool/namespace/image; RBD names are tame.
RBD_NAME_RE = re.compile(r'^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+){1,2}$')


def split_connection_info(connection_info):
    """Return ``(driver_volume_type, data)`` for either shape."""
    if not isinstance(connection_info, dict):
        raise exception.InvalidConnectionInfo(
            reason='connection_info must be a dict')
    driver_type = connection_info.get('driver_volume_type')
    data = connection_info.get('data')
    if not isinstance(data, dict):
        data = connection_info
    if driver_type not in SUPPORTED_TYPES:
        raise exception.VolumeDriverNotFound(driver_type=driver_type)
    return driver_type, data


def target_dev(mountpoint):
    """``/dev/vdb`` or ``vdb`` -> ``vdb``; anything else is refused."""
    match = DEVICE_RE.match(str(mountpoint or ''))
    if not match:
        raise exception.InvalidDevicePath(path=mountpoint)
    return match.group(1)


def bus_for(dev, disk_bus=None):
    if disk_bus:
        if disk_bus not in BUSES:
            raise exception.InvalidConnectionInfo(
                reason='disk bus %s is not supported' % disk_bus)
        return disk_bus
    for prefix, bus in BUS_BY_PREFIX.items():
        if dev.startswith(prefix):
            return 'virtio' if bus == 'xen' else bus
    return 'virtio'


def network_disk(connection_info, mountpoint, disk_bus=None, serial=None):
    """Build the :class:`config.NetworkDisk` of a volume.

    :param serial: what the guest sees as the disk's serial; default the
        volume id from the connection info, as Nova does.
    """
    _type, data = split_connection_info(connection_info)
    name = data.get('name')
    if not isinstance(name, str) or not RBD_NAME_RE.match(name):
        raise exception.InvalidConnectionInfo(
            reason='rbd image name %r is not pool/image' % (name,))
    hosts = list(data.get('hosts') or [])
    ports = list(data.get('ports') or [])
    if ports and len(ports) != len(hosts):
        raise exception.InvalidConnectionInfo(
            reason='%d hosts but %d ports' % (len(hosts), len(ports)))
    dev = target_dev(mountpoint)
    disk = vconfig.NetworkDisk(
        name=name,
        hosts=list(zip(hosts, ports or [None] * len(hosts))),
        target_dev=dev,
        target_bus=bus_for(dev, disk_bus),
        serial=serial or data.get('volume_id') or
        connection_info.get('serial'),
        discard=bool(data.get('discard', True)),
        read_only=data.get('access_mode') == 'ro',
    )
    if _auth_enabled(data):
        username = data.get('auth_username')
        secret_uuid = data.get('secret_uuid')
        if not username or not secret_uuid:
            raise exception.InvalidConnectionInfo(
                reason='auth_enabled without auth_username and secret_uuid')
        try:
            secret_uuid = str(uuidlib.UUID(str(secret_uuid)))
        except ValueError:
            raise exception.InvalidConnectionInfo(
                reason='secret_uuid %r is not a UUID' % (secret_uuid,))
        disk.auth_username = str(username)
        disk.secret_uuid = secret_uuid
        disk.secret_type = data.get('secret_type') or 'ceph'
    return disk


def _auth_enabled(data):
    value = data.get('auth_enabled')
    if isinstance(value, str):
        return value.strip().lower() in ('1', 'true', 'yes')
    return bool(value)


def ensure_secret(conn, disk, connection_info):
    """Make sure the libvirt secret a cephx disk names exists.

    Cinder's RBD driver sends the secret's UUID (``rbd_secret_uuid``), not
    the key: as in Nova the operator defines that secret once per host.
    When the connection info does carry the key (``data['secret']`` or
    ``data['keyring']``, base64), the secret is defined from it instead.
    No-op for a disk without auth.
    """
    if not disk.auth_username:
        return None
    _type, data = split_connection_info(connection_info)
    key = data.get('secret') or data.get('keyring')
    try:
        secret = conn.secretLookupByUUIDString(disk.secret_uuid)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_SECRET:
            raise exception.HypervisorError(reason=str(exc))
        secret = None
    if secret is not None and not key:
        return secret
    if not key:
        raise exception.VolumeSecretMissing(
            secret_uuid=disk.secret_uuid, user=disk.auth_username)
    try:
        raw_key = base64.b64decode(str(key), validate=True)
    except ValueError:
        raise exception.InvalidConnectionInfo(
            reason='the cephx key is not base64')
    try:
        if secret is None:
            secret = conn.secretDefineXML(vconfig.ceph_secret_xml(
                disk.secret_uuid,
                'client.%s secret %s' % (disk.auth_username,
                                         disk.secret_uuid)))
        secret.setValue(raw_key)
    except libvirt.libvirtError as exc:
        raise exception.HypervisorError(
            reason='cannot define secret %s: %s' % (disk.secret_uuid, exc))
    return secret
