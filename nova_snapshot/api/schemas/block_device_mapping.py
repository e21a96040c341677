"""The ``block_device_mapping_v2`` item of a server create request.

Nova's shape (``nova/api/openstack/compute/schemas/servers.py``): the v2
keys on top of the legacy v1 ones, ``tag`` at 2.32 and again from 2.42
(2.33-2.41 refuse it), ``volume_type`` from 2.67 (above our maximum, so it
is always refused here, as Nova refuses it below 2.67). The rules that tie
keys together (uuid per source, sizes, the boot sequence) are not
expressible here; ``api/block_device.py`` applies them.
"""

import copy

# Nova's parameter_types.boolean: JSON booleans and oslo's strings.
BOOLEAN = {
    'type': ['boolean', 'string'],
    'enum': [True, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on',
             'YES', 'Yes', 'yes', 'y', 't',
             False, 'False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off',
             'NO', 'No', 'no', 'n', 'f'],
}
UUID = {'type': 'string', 'format': 'uuid'}
# Integer columns are 32-bit signed (Nova's db.MAX_INT).
MAX_INT = 0x7FFFFFFF
MIN_INT = -0x80000000
# Nova's parameter_types.volume_size (db.MAX_INT as the maximum). The range
# applies to the string form too (api/validation.py), and the string is at
# most as long as MAX_INT, so nothing converts a 5,000-digit string.
VOLUME_SIZE = {
    'type': ['integer', 'string'], 'pattern': '^[0-9]+$', 'maxLength': 10,
    'minimum': 1, 'maximum': MAX_INT,
}
# Nova's boot_index (None is accepted for the legacy v2 API's sake), bounded
# as volume_size is: a signed 32-bit integer, as an int or a string.
BOOT_INDEX = {
    'type': ['integer', 'string', 'null'], 'pattern': '^-?[0-9]+$',
    'maxLength': 11, 'minimum': MIN_INT, 'maximum': MAX_INT,
}
# Nova's parameter_types.tag.
TAG = {'type': 'string', 'maxLength': 60, 'pattern': '^[^,/]*$'}

_STRING_255 = {'type': 'string', 'maxLength': 255}

LEGACY_ITEM = {
    'type': 'object',
    'properties': {
        'virtual_name': _STRING_255,
        'volume_id': UUID,
        'snapshot_id': UUID,
        'volume_size': VOLUME_SIZE,
        # No empty names, no numbers, no spaces (Nova's from_api rules).
        'device_name': {
            'type': 'string', 'minLength': 1, 'maxLength': 255,
            'pattern': '^[a-zA-Z0-9._/-]*$',
        },
        'delete_on_termination': BOOLEAN,
        'no_device': {},
        'connection_info': {'type': 'string', 'maxLength': 16777215},
    },
    'additionalProperties': False,
}

ITEM = copy.deepcopy(LEGACY_ITEM)
ITEM['properties'].update({
    'source_type': {
        'type': 'string', 'enum': ['volume', 'image', 'snapshot', 'blank'],
    },
    'uuid': {
        'type': 'string', 'minLength': 1, 'maxLength': 255,
        'pattern': '^[a-zA-Z0-9._-]*$',
    },
    'image_id': UUID,
    'destination_type': {'type': 'string', 'enum': ['local', 'volume']},
    'guest_format': _STRING_255,
    'device_type': _STRING_255,
    'disk_bus': _STRING_255,
    'boot_index': BOOT_INDEX,
})

ITEM_WITH_TAG = copy.deepcopy(ITEM)
ITEM_WITH_TAG['properties']['tag'] = TAG


# From 2.67: the type of a volume the server's create makes (Nova's
# parameter_types.volume_type); compute/block_device.py refuses it for an
# existing volume or a local disk.
ITEM_V267 = copy.deepcopy(ITEM_WITH_TAG)
ITEM_V267['properties']['volume_type'] = {
    'type': ['string', 'null'], 'minLength': 0, 'maxLength': 255}


def v2_list(version):
    """The ``block_device_mapping_v2`` schema for an APIVersion."""
    if version.matches((2, 67)):
        return {'type': 'array', 'items': ITEM_V267}
    with_tag = version.matches((2, 32), (2, 32)) or version.matches((2, 42))
    return {'type': 'array',
            'items': ITEM_WITH_TAG if with_tag else ITEM}


LEGACY_LIST = {'type': 'array', 'items': LEGACY_ITEM}
