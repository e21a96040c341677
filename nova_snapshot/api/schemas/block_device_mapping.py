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
# Nova's parameter_types.volume_size (db.MAX_INT as the maximum).
VOLUME_SIZE = {
    'type': ['integer', 'string'], 'pattern': '^[0-9]+$',
    'minimum': 1, 'maximum': 0x7FFFFFFF,
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
    # None is accepted for the legacy v2 API's sake, as in Nova.
    'boot_index': {
        'type': ['integer', 'string', 'null'], 'pattern': '^-?[0-9]+$',
    },
})

ITEM_WITH_TAG = copy.deepcopy(ITEM)
ITEM_WITH_TAG['properties']['tag'] = TAG


def v2_list(version):
    """The ``block_device_mapping_v2`` schema for an APIVersion."""
    with_tag = version.matches((2, 32), (2, 32)) or version.matches((2, 42))
    return {'type': 'array',
            'items': ITEM_WITH_TAG if with_tag else ITEM}


LEGACY_LIST = {'type': 'array', 'items': LEGACY_ITEM}
