"""Block device mappings: the one normaliser, shared by the API and the
compute side.

Three shapes of one thing, converted and checked here so they cannot
drift apart:

* ``block_device_mapping_v2`` as a client sends it (``uuid`` names the
  source; schema-checked by the HTTP layer, then :func:`normalise_request`
  applies the rules that tie keys together, with Nova's messages);
* a BDM row (``db.bdm_create`` values: ``volume_id``/``snapshot_id``/
  ``image_id`` instead of ``uuid``, device names with ``/dev/``), from
  :func:`from_api` or, for a restore, :func:`from_image_mapping`;
* Nova's *image mapping* (``BlockDeviceDict.get_image_mapping()``), the JSON
  list a volume-backed snapshot image carries in ``block_device_mapping``
  and that a restore turns back into rows.

Whatever the shape, a disk bus, device type or device name the libvirt
driver cannot build is refused here (:func:`check_device`), so the API
answers 400 instead of a 202 and a server in ERROR at spawn. Every rule
raises :class:`exception.InvalidBDM` ("Block Device Mapping is Invalid:
..."), which the API turns into a 400.
"""

import json
import re

from oslo_utils import strutils

from nova_snapshot import exception

ROOT_DEVICE_NAME = '/dev/vda'
SOURCE_TYPES = ('image', 'volume', 'snapshot', 'blank')
DESTINATION_TYPES = ('volume', 'local')
_SOURCE_ID_FIELD = {'image': 'image_id', 'volume': 'volume_id',
                    'snapshot': 'snapshot_id'}

# What the libvirt driver can build (virt/libvirt/volume.py BUSES and
# DEVICE_RE; virt/libvirt/config.py renders every volume as a
# device="disk"): Nova's list also has fdc, xen, uml, lxc and cdrom,
# floppy, lun, which this driver refuses or ignores at spawn.
DISK_BUSES = ('virtio', 'scsi', 'sata', 'ide', 'usb')
DEVICE_TYPES = ('disk',)
DEVICE_NAME_RE = re.compile(r'^/dev/(vd|sd|hd|xvd)([a-z]{1,2})$')
# The bus a device name implies when no disk_bus is given (the driver's
# BUS_BY_PREFIX; xvd disks are virtio under KVM).
BUS_BY_PREFIX = {'vd': 'virtio', 'sd': 'scsi', 'hd': 'ide', 'xvd': 'virtio'}
# Two IDE channels of two units each on the i440fx machine: hda..hdd.
IDE_UNITS = 4
# Buses a running guest can take a new disk on (attach).
HOTPLUG_BUSES = ('virtio', 'scsi', 'usb')

# Nova's bdm_new_fields as they appear in an image mapping (the exact key
# set of ``snapshot_from_bdm(...).get_image_mapping()`` for this service).
IMAGE_MAPPING_KEYS = ('guest_format', 'boot_index', 'delete_on_termination',
                      'no_device', 'snapshot_id', 'volume_type', 'device_name',
                      'disk_bus', 'image_id', 'source_type', 'tag',
                      'device_type', 'volume_id', 'destination_type',
                      'volume_size')
# What snapshot_from_bdm copies from the volume's BDM; the rest is None.
_SNAPSHOT_COPIED = ('disk_bus', 'device_type', 'boot_index',
                    'delete_on_termination', 'volume_size', 'device_name')
# Row columns a client may set through block_device_mapping_v2.
_ROW_FIELDS = IMAGE_MAPPING_KEYS
# Every key of the normalised v2 form (normalise_request).
V2_KEYS = ('source_type', 'destination_type', 'uuid', 'boot_index',
           'volume_size', 'delete_on_termination', 'device_name', 'disk_bus',
           'device_type', 'guest_format', 'volume_type', 'tag', 'no_device')
_V2_SOURCE_ID_KEYS = _SOURCE_ID_FIELD


def normalize_device_name(name):
    """'vdb' -> '/dev/vdb' (Nova's BlockDeviceDict does the same)."""
    if not name:
        return None
    name = str(name).strip()
    return name if name.startswith('/dev/') else '/dev/' + name


def strip_dev(name):
    return name[len('/dev/'):] if name and name.startswith('/dev/') else name


def _boot_index(value):
    if value is None or value == '':
        return None
    try:
        index = int(value)
    except (TypeError, ValueError):
        raise exception.InvalidBDM(reason='boot_index must be an integer')
    # Nova: a negative boot index means "not bootable".
    return index if index >= 0 else None


def _size(value, what):
    if value is None or value == '':
        return None
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise exception.InvalidBDM(reason='%s must be an integer' % what)
    if size < 1:
        raise exception.InvalidBDM(reason='%s must be at least 1' % what)
    return size


def _bool(value, default=False):
    if value is None:
        return default
    return strutils.bool_from_string(value, strict=False, default=default)


def _invalid(reason):
    return exception.InvalidBDM(reason=reason)


def _device_index(letters):
    """'a' -> 0, 'z' -> 25, 'aa' -> 26: the unit a device name asks for."""
    index = 0
    for letter in letters:
        index = index * 26 + ord(letter) - ord('a') + 1
    return index - 1


def check_device(disk_bus=None, device_type=None, device_name=None):
    """Refuse what the libvirt driver cannot build.

    :param device_name: with or without ``/dev/``; None when the name will
        be assigned (:func:`next_device_name` names are always usable).
    :returns: the bus the disk will be on (given, or implied by the name).
    :raises: InvalidBDM
    """
    for key, value, allowed in (('disk_bus', disk_bus, DISK_BUSES),
                                ('device_type', device_type, DEVICE_TYPES)):
        if value is not None and value not in allowed:
            raise _invalid('%s %s is not supported (one of: %s).'
                           % (key, value, ', '.join(allowed)))
    if device_name is None:
        return disk_bus or 'virtio'
    match = DEVICE_NAME_RE.match(normalize_device_name(device_name) or '')
    if match is None:
        raise _invalid('device name %s is not supported (/dev/vdX, sdX, '
                       'hdX or xvdX).' % device_name)
    bus = disk_bus or BUS_BY_PREFIX[match.group(1)]
    if bus == 'ide' and _device_index(match.group(2)) >= IDE_UNITS:
        raise _invalid('device name %s is not on the IDE bus (hda to hdd, '
                       'or another disk_bus).' % device_name)
    return bus


def attach_device_name(device):
    """The ``device`` of an attach request, checked as :func:`check_device`
    does and on a bus that takes a disk while the guest runs.

    :returns: the name with ``/dev/``, or None (the next free name).
    :raises: InvalidDevicePath (Nova's 400 for a name it cannot use)
    """
    if not device:
        return None
    try:
        bus = check_device(device_name=device)
    except exception.InvalidBDM:
        raise exception.InvalidDevicePath(path=device)
    if bus not in HOTPLUG_BUSES:
        raise exception.InvalidDevicePath(
            path='%s: the %s bus takes no disk while the guest runs'
            % (device, bus))
    return normalize_device_name(device)


# -- block_device_mapping_v2 of a create request (the API's side) --------

def _v2_boot_index(value):
    if value is None:
        return None
    index = int(value)  # the schema allows ints and "-?[0-9]+" strings
    return index if index >= 0 else None  # negative: not bootable


def _normalise_v2(entry, image_uuid_specified):
    bdm = dict.fromkeys(V2_KEYS)
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
    bdm['boot_index'] = _v2_boot_index(entry.get('boot_index'))

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
    bdm['disk_bus'] = entry.get('disk_bus')
    bdm['device_type'] = entry.get('device_type')
    if bdm['destination_type'] == 'volume':
        # The image root disk is the driver's own; what it cannot build
        # for a volume is refused before anything exists.
        check_device(bdm['disk_bus'], bdm['device_type'],
                     bdm['device_name'])
    else:
        check_device(bdm['disk_bus'], bdm['device_type'])
    for key in ('guest_format', 'volume_type', 'tag'):
        bdm[key] = entry.get(key)
    return bdm


def _check_v2_boot_sequence(bdms, image_ref):
    """Boot indexes 0, 1, 2... without gaps or repeats; without an image
    the root must be a mapping."""
    indexes = sorted(b['boot_index'] for b in bdms
                     if not b['no_device'] and b['boot_index'] is not None)
    if indexes != list(range(len(indexes))) or (
            not image_ref and not indexes):
        raise _invalid('Boot sequence for the instance and image/block '
                       'device mapping combination is not valid.')


def normalise_request(bdm_v2, image_ref, image_uuid_specified):
    """Nova's API rules for ``block_device_mapping_v2`` (``nova/
    block_device.py`` ``BlockDeviceDict.from_api``/``_validate`` and
    ``compute/api.py`` ``_validate_bdm``) over a schema-checked list.

    Returns the list ``ComputeAPI.create`` takes: every entry carries every
    key of :data:`V2_KEYS`, with ``boot_index`` and ``volume_size`` as ints
    (or None), ``delete_on_termination`` and ``no_device`` as bools and the
    source id in ``uuid``. Whether the sources exist is for the compute API
    to find out (Cinder and Glance, as the caller).

    :param image_uuid_specified: "imageRef" was in the request, even "":
        Nova's bug 1433609 decides on that whether novaclient's image ->
        local root mapping is acceptable.
    :raises: InvalidBDM
    """
    bdms = [_normalise_v2(entry, image_uuid_specified) for entry in bdm_v2]
    for bdm, entry in zip(bdms, bdm_v2):
        if bdm['source_type'] and not bdm['no_device']:
            # The legacy id keys of the v2 item name the same thing as uuid.
            key = _V2_SOURCE_ID_KEYS.get(bdm['source_type'])
            if key and entry.get(key) and entry[key] != bdm['uuid']:
                raise _invalid('%s and uuid name different sources.' % key)
    _check_v2_boot_sequence(bdms, image_ref)
    return bdms


# -- BDM rows (the compute side) ---------------------------------------------

def from_api(bdm_v2):
    """Validate ``block_device_mapping_v2`` and return BDM row values.

    Only volumes are supported as destinations, apart from Nova's
    ``image -> local`` root entry that just says "boot from imageRef".
    Device names that are missing are assigned later by
    :func:`assign_device_names`.
    """
    rows = []
    for entry in bdm_v2 or ():
        entry = dict(entry)
        source = entry.get('source_type')
        # Nova's default: volumes and snapshots land on a volume, images
        # and blanks on the local disk.
        dest = entry.get('destination_type') or (
            'volume' if source in ('volume', 'snapshot') else 'local')
        if source not in SOURCE_TYPES:
            raise exception.InvalidBDM(
                reason='source_type must be one of %s' % ', '.join(
                    SOURCE_TYPES))
        if dest not in DESTINATION_TYPES:
            raise exception.InvalidBDM(
                reason='destination_type must be volume or local')
        if entry.get('no_device'):
            continue
        row = {'source_type': source, 'destination_type': dest,
               'boot_index': _boot_index(entry.get('boot_index')),
               'device_name': normalize_device_name(entry.get('device_name')),
               'device_type': entry.get('device_type') or 'disk',
               'disk_bus': entry.get('disk_bus'),
               'guest_format': entry.get('guest_format'),
               'volume_size': _size(entry.get('volume_size'), 'volume_size'),
               'delete_on_termination': _bool(
                   entry.get('delete_on_termination')),
               'tag': entry.get('tag'),
               'volume_type': entry.get('volume_type'),
               'no_device': False}
        if dest == 'local':
            if not (source == 'image' and row['boot_index'] == 0):
                raise exception.InvalidBDM(
                    reason='only volumes and the image root disk are '
                           'supported as block devices')
        if source in _SOURCE_ID_FIELD:
            uuid = entry.get('uuid') or entry.get(_SOURCE_ID_FIELD[source])
            if not uuid:
                raise exception.InvalidBDM(
                    reason='source_type %s needs a uuid' % source)
            row[_SOURCE_ID_FIELD[source]] = str(uuid)
        if source in ('blank', 'image') and dest == 'volume' and \
                not row['volume_size']:
            # Nova: the size of a new volume is never guessed.
            raise exception.InvalidBDM(
                reason='a volume from source_type %s needs a non-zero '
                       'volume_size' % source)
        if source == 'volume' and row['volume_type']:
            raise exception.InvalidBDM(
                reason='volume_type cannot be given for an existing volume')
        if dest == 'volume':
            check_device(row['disk_bus'], row['device_type'],
                         row['device_name'])
        rows.append(row)
    check_boot_sequence(rows)
    return rows


def check_boot_sequence(rows):
    """Nova's rule: boot indexes are 0, 1, 2... without gaps or repeats."""
    indexes = sorted(row['boot_index'] for row in rows
                     if row.get('boot_index') is not None)
    if indexes != list(range(len(indexes))):
        raise exception.InvalidBDM(
            reason='Boot sequence for the instance and image/block device '
                   'mapping combination is not valid.')


def root_bdm(rows):
    for row in rows:
        if row.get('boot_index') == 0:
            return row
    return None


def is_volume(row):
    return row.get('destination_type') == 'volume' and not row.get('no_device')


def merge(image_rows, user_rows):
    """Nova's _merge_bdms_lists: a user mapping replaces the image's one on
    the same device; a user root replaces the image's root."""
    user_devices = {row['device_name'] for row in user_rows
                    if row.get('device_name')}
    user_has_root = root_bdm(user_rows) is not None
    kept = []
    for row in image_rows:
        if row.get('device_name') in user_devices:
            continue
        if user_has_root and row.get('boot_index') == 0:
            continue
        kept.append(row)
    return kept + list(user_rows)


def assign_device_names(rows, root_device_name=ROOT_DEVICE_NAME):
    """Give every volume without a device name the next free /dev/vdX; the
    root gets ``root_device_name``. Duplicates are a 400."""
    used = set()
    for row in rows:
        if row.get('boot_index') == 0 and not row.get('device_name'):
            row['device_name'] = root_device_name
        name = row.get('device_name')
        if name:
            if name in used:
                raise exception.InvalidBDM(
                    reason='device name %s is used twice' % name)
            used.add(name)
    if root_bdm(rows) is None:
        # An image-backed root occupies the root device.
        used.add(root_device_name)
    for row in rows:
        if not row.get('device_name'):
            row['device_name'] = next_device_name(used)
            used.add(row['device_name'])
        # The bus given with no name meets its name only now (an IDE disk
        # named /dev/vde would be a fifth IDE unit).
        if is_volume(row):
            check_device(row.get('disk_bus'), row.get('device_type'),
                         row['device_name'])
    return rows


def next_device_name(used, prefix='/dev/vd'):
    """The first /dev/vdX (X = b, c, ..., z, aa, ab...) not in ``used``."""
    used = {normalize_device_name(name) for name in used if name}
    for index in range(1, 26 * 27):
        if index < 26:
            suffix = chr(ord('a') + index)
        else:
            suffix = (chr(ord('a') + index // 26 - 1) +
                      chr(ord('a') + index % 26))
        name = prefix + suffix
        if name not in used:
            return name
    raise exception.InvalidBDM(reason='no free device name')


# The image mapping (volume-backed snapshots and their restore)

def snapshot_image_mapping(snapshot_id, bdm):
    """Nova's ``snapshot_from_bdm(snapshot_id, bdm).get_image_mapping()``."""
    mapping = dict.fromkeys(IMAGE_MAPPING_KEYS)
    for key in _SNAPSHOT_COPIED:
        mapping[key] = bdm.get(key)
    mapping.update(source_type='snapshot', destination_type='volume',
                   snapshot_id=snapshot_id)
    mapping['device_name'] = normalize_device_name(mapping['device_name'])
    mapping['delete_on_termination'] = bool(mapping['delete_on_termination'])
    return mapping


def local_image_mapping(bdm):
    """``get_image_mapping()`` of a non-volume BDM: every field as stored,
    without connection_info and the DB-only fields."""
    mapping = {key: bdm.get(key) for key in IMAGE_MAPPING_KEYS}
    mapping['device_name'] = normalize_device_name(mapping['device_name'])
    return mapping


def encode_image_mapping(mappings):
    """The property value Glance stores (v2 properties are strings)."""
    return json.dumps(list(mappings))


def image_has_mapping(image):
    """True for a volume-backed snapshot image (Nova's bdm_v2 image)."""
    return bool(image.get('block_device_mapping')) and _bool(
        image.get('bdm_v2'))


def from_image_mapping(value):
    """BDM row values from an image's ``block_device_mapping`` property
    (JSON string or list) for a restore."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise exception.InvalidBDM(
                reason='the image\'s block_device_mapping is not JSON')
    if not isinstance(value, list):
        raise exception.InvalidBDM(
            reason='the image\'s block_device_mapping is not a list')
    rows = []
    for entry in value:
        if not isinstance(entry, dict) or entry.get('no_device'):
            continue
        source = entry.get('source_type')
        if source not in SOURCE_TYPES:
            raise exception.InvalidBDM(
                reason='unknown source_type %r in the image\'s mapping'
                % (source,))
        row = {key: entry.get(key) for key in _ROW_FIELDS}
        row['boot_index'] = _boot_index(row['boot_index'])
        row['volume_size'] = _size(row['volume_size'], 'volume_size')
        row['device_name'] = normalize_device_name(row['device_name'])
        row['delete_on_termination'] = _bool(row['delete_on_termination'])
        row['no_device'] = False
        row['device_type'] = row['device_type'] or 'disk'
        row['destination_type'] = row['destination_type'] or 'volume'
        if row['destination_type'] == 'volume':
            # An image's properties are anybody's to write: a mapping the
            # driver cannot build is refused as a request's would be.
            check_device(row['disk_bus'], row['device_type'],
                         row['device_name'])
            # A restore makes new volumes; the ids of the source's volumes
            # must not be reused.
            if source == 'snapshot':
                row['volume_id'] = None
            if source == 'snapshot' and not row['snapshot_id']:
                raise exception.InvalidBDM(
                    reason='a snapshot mapping without snapshot_id')
        rows.append(row)
    return rows


def snapshot_ids_of_image(image):
    """The Cinder snapshot ids a volume-backed snapshot image records.

    :raises: InvalidBDM when its mapping cannot be read
    """
    if not image_has_mapping(image):
        return set()
    return {row['snapshot_id']
            for row in from_image_mapping(image['block_device_mapping'])
            if row.get('source_type') == 'snapshot'}
