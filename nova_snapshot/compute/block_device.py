"""Block device mappings: the API's v2 list, the stored rows, the image form.

Three shapes of one thing, converted here so they cannot drift apart:

* ``block_device_mapping_v2`` as a client sends it (``uuid`` names the
  source; schema-checked by the HTTP layer);
* a BDM row (``db.bdm_create`` values: ``volume_id``/``snapshot_id``/
  ``image_id`` instead of ``uuid``, device names with ``/dev/``);
* Nova's *image mapping* (``BlockDeviceDict.get_image_mapping()``), the JSON
  list a volume-backed snapshot image carries in ``block_device_mapping``
  and that a restore turns back into rows.
"""

import json

from oslo_utils import strutils

from nova_snapshot import exception

ROOT_DEVICE_NAME = '/dev/vda'
SOURCE_TYPES = ('image', 'volume', 'snapshot', 'blank')
DESTINATION_TYPES = ('volume', 'local')
_SOURCE_ID_FIELD = {'image': 'image_id', 'volume': 'volume_id',
                    'snapshot': 'snapshot_id'}

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
