"""Nova's API-side rules for ``block_device_mapping_v2`` on server create.

The schema (``schemas/block_device_mapping.py``) checks each key alone;
this module applies the rules that tie keys together, with Nova's messages
(``nova/block_device.py`` ``BlockDeviceDict.from_api``/``_validate`` and
``compute/api.py`` ``_validate_bdm``), and returns the list handed to
``ComputeAPI.create(..., block_device_mapping=...)``: every entry carries
every key of the v2 form, with ``boot_index`` and ``volume_size`` as ints
(or None), ``delete_on_termination`` and ``no_device`` as bools and the
source id in ``uuid``. Whether the volumes, snapshots and images exist is
the compute API's business (it needs Cinder and Glance).

Deliberate differences from Nova, all stricter or simpler:

* ``destination_type: local`` is only the image root disk (Nova's
  ``image -> local`` with ``boot_index`` 0 next to ``imageRef``); we have no
  ephemeral or swap disks, so other local mappings are refused.
* ``connection_info`` (accepted by Nova's schema) is dropped: where a disk
  lives is for Cinder to say, never the client.
* ``disk_bus`` and ``device_type`` must be values libvirt knows.
* With ``imageRef`` and no boot index 0 the image is the root disk, so data
  volumes need no image mapping (Nova wants the client to add one).
"""

from oslo_utils import strutils

from nova_snapshot.api import faults

# Every key of the normalised form.
KEYS = ('source_type', 'destination_type', 'uuid', 'boot_index',
        'volume_size', 'delete_on_termination', 'device_name', 'disk_bus',
        'device_type', 'guest_format', 'volume_type', 'tag', 'no_device')
# Nova's libvirt driver values (blockinfo.SUPPORTED_DEVICE_BUSES/TYPES).
DISK_BUSES = ('virtio', 'scsi', 'ide', 'sata', 'usb', 'fdc')
DEVICE_TYPES = ('disk', 'cdrom', 'floppy', 'lun')
_SOURCE_ID_KEYS = {'volume': 'volume_id', 'snapshot': 'snapshot_id',
                   'image': 'image_id'}


def _invalid(details):
    """Nova's InvalidBDMFormat/InvalidBDM message, as a 400."""
    return faults.APIFault(400, 'Block Device Mapping is Invalid: %s'
                           % details)


def _boot_index(value):
    if value is None:
        return None
    index = int(value)  # the schema allows ints and "-?[0-9]+" strings
    return index if index >= 0 else None  # negative: not bootable


def _normalise(entry, image_uuid_specified):
    bdm = dict.fromkeys(KEYS)
    bdm['no_device'] = bool(entry.get('no_device'))
    bdm['device_name'] = entry.get('device_name')
    if bdm['no_device']:
        # Only says "drop the image's mapping on this device".
        bdm['delete_on_termination'] = False
        return bdm

    source = entry.get('source_type')
    if source is None:
        raise _invalid('Some required fields are missing')
    bdm['source_type'] = source
    # Nova's defaults: volumes and snapshots land on volumes, images and
    # blanks on the local disk.
    bdm['destination_type'] = entry.get('destination_type') or (
        'volume' if source in ('volume', 'snapshot') else 'local')
    uuid = entry.get('uuid')
    if source == 'blank' and uuid:
        raise _invalid('Invalid device UUID.')
    if source != 'blank':
        if not uuid:
            raise _invalid('Missing device UUID.')
        bdm['uuid'] = uuid
    bdm['boot_index'] = _boot_index(entry.get('boot_index'))

    if source == 'image' and bdm['destination_type'] == 'local':
        if not (image_uuid_specified and bdm['boot_index'] == 0):
            raise _invalid('Mapping image to local is not supported.')
    elif bdm['destination_type'] == 'local':
        raise _invalid('Only volumes and the image root disk are supported '
                       'as block devices.')
    if bdm['destination_type'] == 'local' and entry.get('volume_type'):
        raise _invalid('Specifying a volume_type with destination_type='
                       'local is not supported.')
    if source == 'volume' and entry.get('volume_type'):
        raise _invalid('Specifying volume type to existing volume is not '
                       'supported.')
    if bdm['device_name'] is not None and ' ' in bdm['device_name']:
        raise _invalid('Device name contains spaces.')

    if entry.get('volume_size') is not None:
        bdm['volume_size'] = int(entry['volume_size'])
    if (source in ('image', 'blank') and bdm['destination_type'] == 'volume'
            and not bdm['volume_size']):
        if source == 'image':
            raise _invalid("Images with destination_type 'volume' need to "
                           "have a non-zero size specified")
        raise _invalid("Blank volumes (source: 'blank', dest: 'volume') "
                       "need to have non-zero size")
    bdm['delete_on_termination'] = strutils.bool_from_string(
        entry.get('delete_on_termination', False), strict=True)
    for key, allowed in (('disk_bus', DISK_BUSES),
                         ('device_type', DEVICE_TYPES)):
        value = entry.get(key)
        if value is not None and value not in allowed:
            raise _invalid('%s %s is not supported (one of: %s).'
                           % (key, value, ', '.join(allowed)))
        bdm[key] = value
    for key in ('guest_format', 'volume_type', 'tag'):
        bdm[key] = entry.get(key)
    return bdm


def _check_boot_sequence(bdms, image_ref):
    """Boot indexes 0, 1, 2... without gaps or repeats; without an image
    the root must be a mapping."""
    indexes = sorted(b['boot_index'] for b in bdms
                     if not b['no_device'] and b['boot_index'] is not None)
    if indexes != list(range(len(indexes))) or (
            not image_ref and not indexes):
        raise _invalid('Boot sequence for the instance and image/block '
                       'device mapping combination is not valid.')


def from_request(server):
    """Validate the mappings of a create body (``server`` object, already
    schema-checked); return (image_ref, normalised list).

    :raises faults.APIFault: 400 with Nova's message.
    """
    legacy = server.get('block_device_mapping')
    v2 = server.get('block_device_mapping_v2')
    if legacy and v2:
        raise faults.APIFault(400, 'Using different block_device_mapping '
                                   'syntaxes is not allowed in the same '
                                   'request.')
    if legacy:
        # Our choice: no conversion of the pre-2013 format; every client
        # in use speaks v2.
        raise faults.APIFault(400, 'block_device_mapping (the legacy v1 '
                                   'format) is not supported; use '
                                   'block_device_mapping_v2.')
    image_ref = server.get('imageRef') or ''
    if not v2:
        if not image_ref:
            raise faults.APIFault(400, 'Missing imageRef attribute')
        return image_ref, []
    # Nova's bug 1433609: "imageRef present" (even "") decides whether the
    # image -> local root mapping novaclient adds is acceptable.
    image_uuid_specified = server.get('imageRef') is not None
    bdms = [_normalise(entry, image_uuid_specified) for entry in v2]
    for bdm, entry in zip(bdms, v2):
        if bdm['source_type'] and not bdm['no_device']:
            # The legacy id keys of the v2 item name the same thing as uuid.
            key = _SOURCE_ID_KEYS.get(bdm['source_type'])
            if key and entry.get(key) and entry[key] != bdm['uuid']:
                raise _invalid('%s and uuid name different sources.' % key)
    _check_boot_sequence(bdms, image_ref)
    return image_ref, bdms


def is_volume_backed_request(bdms):
    """True when the root disk of the new server is a volume."""
    return any(b['boot_index'] == 0 and b['destination_type'] == 'volume'
               for b in bdms)
