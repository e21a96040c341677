"""Inspection of untrusted disk images before QEMU or qemu-img opens them.

An image file comes from a user (through Glance) and QEMU follows what its
headers say: a qcow2 header can name an external data file or a backing
file anywhere on the host (``/etc/passwd``, another server's disk) and
``qemu-img convert`` or the guest would then read that file's bytes; a
VMDK descriptor can name extent files the same way; a raw image whose
first bytes are a qcow2 header turns into a qcow2 if anything ever probes
it. So, before anything of QEMU's touches a downloaded file:

1. oslo.utils' format inspector (pure Python, reads the headers itself)
   detects what the bytes are. The detected format must be the
   ``disk_format`` Glance recorded: a qcow2 declared raw, or a raw that is
   really VMDK, LUKS, qcow2... is refused. A raw disk that starts with a
   partition table (gpt/MBR) or is an ISO is still raw, as Nova accepts.
   Data that matches two formats at once (a header hidden in another) is
   refused.
2. The inspector's safety checks for that format run: no backing file, no
   data file, no unknown qcow2 feature bits, VMDK descriptors without
   paths, sane partition tables...
3. The virtual size is positive and at most a configured cap.
4. Only then ``qemu-img info`` runs (under process limits, with the format
   given): it must agree with the inspector on format and virtual size and
   report no backing file, no data file and no encryption, which the
   service cannot open.

Refusals raise :class:`~nova_snapshot.exception.ImageUnacceptable` with a
reason that names the check, never a path the image names: the reason
ends up in the server's fault, which the user sees, and a path from the
header could be another tenant's.
"""

import dataclasses
import os

from oslo_log import log as logging
from oslo_utils.imageutils import format_inspector

from nova_snapshot import exception
from nova_snapshot.virt.libvirt import qemu_img

LOG = logging.getLogger(__name__)

GiB = 1024 ** 3
# Formats the libvirt driver boots from.
SUPPORTED_FORMATS = ('qcow2', 'raw')
# What the inspector may see in an image declared raw: a whole-disk image
# with a partition table, or an ISO 9660 file system. Both are read as raw
# bytes by QEMU (the driver always says -f raw), as Nova accepts them.
RAW_LOOKALIKES = ('gpt', 'iso')
# Default cap on an image's virtual size: Glance's own default cap on an
# image's size (image_size_cap, 1 TiB).
DEFAULT_MAX_VIRTUAL_SIZE = 1024 * GiB


@dataclasses.dataclass(frozen=True)
class InspectedImage:
    """What the inspection established about a local image file."""
    disk_format: str        # the declared format, which the data matches
    detected_format: str    # what the inspector saw (e.g. gpt for raw)
    virtual_size: int       # bytes the guest sees
    file_size: int          # bytes of the file on the host


def _refuse(image_id, reason):
    raise exception.ImageUnacceptable(image_id=image_id, reason=reason)


def check_disk_format(image_id, disk_format):
    """Refuse a ``disk_format`` the driver never boots (before download)."""
    if disk_format not in SUPPORTED_FORMATS:
        _refuse(image_id, 'disk_format %s is not supported (only %s)'
                % (disk_format, ', '.join(SUPPORTED_FORMATS)))


def _detect(path, image_id):
    try:
        inspector = format_inspector.detect_file_format(path)
    except format_inspector.ImageFormatError:
        # More than one inspector matched: one header hidden in another.
        _refuse(image_id, 'its data matches more than one disk format')
    except Exception:
        # A crash of the parser on crafted data is a refusal too.
        LOG.exception('Format inspection of image %s failed', image_id)
        _refuse(image_id, 'its data could not be inspected')
    if inspector is None:
        _refuse(image_id, 'its data could not be inspected')
    return inspector


def _safety_check(inspector, image_id):
    try:
        inspector.safety_check()
    except format_inspector.SafetyCheckFailed as exc:
        # The check names (backing_file, data_file...) say what is wrong
        # without repeating anything the image wrote.
        _refuse(image_id, 'it fails the %s safety checks: %s' % (
            inspector, ', '.join(sorted(exc.failures))))
    except format_inspector.ImageFormatError:
        _refuse(image_id, 'its %s data is incomplete or corrupt' % inspector)
    except Exception:
        LOG.exception('Safety check of image %s failed', image_id)
        _refuse(image_id, 'its data could not be inspected')


def _check_qemu_img_info(path, disk_format, virtual_size, image_id):
    """qemu-img's own reading must agree with the inspector's.

    :returns: the larger of the two virtual sizes.
    """
    try:
        info = qemu_img.info(path, disk_format)
    except exception.QemuImgFailed as exc:
        LOG.warning('qemu-img info refused image %s: %s', image_id,
                    exc.format_message())
        _refuse(image_id, 'qemu-img cannot read it as %s' % disk_format)
    if info.get('format') != disk_format:
        _refuse(image_id, 'qemu-img reads it as %s, not %s' % (
            info.get('format'), disk_format))
    if info.get('backing-filename') or info.get('full-backing-filename'):
        _refuse(image_id, 'it has a backing file')
    specific = (info.get('format-specific') or {}).get('data') or {}
    if specific.get('data-file') or specific.get('data-file-raw'):
        _refuse(image_id, 'it has an external data file')
    if info.get('encrypted') or specific.get('encrypt'):
        _refuse(image_id, 'encrypted images are not supported')
    qemu_size = info.get('virtual-size')
    # QEMU counts whole 512-byte sectors: a raw file of 1000 bytes is a
    # 1024-byte disk to it, a qcow2 header's odd size is rounded down.
    if not isinstance(qemu_size, int) or abs(qemu_size - virtual_size) >= 512:
        _refuse(image_id, 'its virtual size is inconsistent (%s bytes in the '
                'header, %s bytes per qemu-img)' % (virtual_size, qemu_size))
    return max(qemu_size, virtual_size)


def inspect(path, disk_format, image_id,
            max_virtual_size=DEFAULT_MAX_VIRTUAL_SIZE):
    """Check the image file at ``path`` before anything of QEMU's opens it.

    :param disk_format: the format Glance recorded for the image.
    :param max_virtual_size: bytes; a larger virtual size is refused.
    :returns: :class:`InspectedImage`
    :raises ImageUnacceptable: the image must not be used; nothing of the
        file but its headers has been read, by this process only.
    """
    check_disk_format(image_id, disk_format)
    file_size = os.path.getsize(path)
    inspector = _detect(path, image_id)
    detected = str(inspector)
    if disk_format == 'raw' and detected in RAW_LOOKALIKES:
        pass
    elif detected != disk_format:
        _refuse(image_id, 'its data is %s, not %s' % (detected, disk_format))
    _safety_check(inspector, image_id)
    if disk_format == 'raw':
        # Whatever the data says (a partition table's or an ISO's size),
        # QEMU sees the file's bytes.
        virtual_size = file_size
    else:
        virtual_size = inspector.virtual_size
    if virtual_size <= 0:
        _refuse(image_id, 'its virtual size is zero')
    if virtual_size > max_virtual_size:
        _refuse(image_id, 'its virtual size %d bytes is above the limit of '
                '%d bytes' % (virtual_size, max_virtual_size))
    virtual_size = _check_qemu_img_info(path, disk_format, virtual_size,
                                        image_id)
    return InspectedImage(disk_format=disk_format, detected_format=detected,
                          virtual_size=virtual_size, file_size=file_size)


def check_local_disk(path, disk_format, image_id='-'):
    """Header checks of a disk already in use (an instance's root disk).

    Reads only the headers (no qemu-img: the guest may be running) and
    refuses a backing or data file, which a snapshot's ``qemu-img convert``
    would otherwise copy into the user's image.

    :param image_id: the image the disk came from, for the message.
    """
    inspector_class = format_inspector.get_inspector(disk_format)
    if disk_format not in SUPPORTED_FORMATS or inspector_class is None:
        _refuse(image_id, 'disk_format %s is not supported' % disk_format)
    if disk_format == 'raw':
        return
    try:
        inspector = inspector_class.from_file(path)
    except format_inspector.ImageFormatError:
        _refuse(image_id, 'the disk is not %s' % disk_format)
    _safety_check(inspector, image_id)
