"""Request and response schemas of the compute images proxy.

Named after Nova's (``schemas/images.py`` and ``schemas/image_metadata.py``):
metadata bodies use Nova's ``parameter_types.metadata`` (keys of 1-255
characters from ``[a-zA-Z0-9-_:. ]``, string values up to 255), a single
item exactly one key. Query parameters are checked in the handler.
"""

from nova_snapshot.api.schemas import servers as server_schemas
from nova_snapshot.api import validation

METADATA = server_schemas.METADATA

_SINGLE_ITEM = dict(METADATA, minProperties=1, maxProperties=1)

# POST /images/{id}/metadata (merge) and PUT (replace): the same body.
CREATE_METADATA = {
    'type': 'object',
    'properties': {'metadata': METADATA},
    'required': ['metadata'],
    'additionalProperties': False,
}
UPDATE_ALL_METADATA = CREATE_METADATA

# PUT /images/{id}/metadata/{key}
UPDATE_METADATA_ITEM = {
    'type': 'object',
    'properties': {'meta': _SINGLE_ITEM},
    'required': ['meta'],
    'additionalProperties': False,
}

# -- responses ---------------------------------------------------------------

_LINK = {
    'type': 'object',
    'properties': {
        'rel': {'type': 'string', 'enum': ['self', 'bookmark', 'alternate']},
        'href': {'type': 'string'},
        'type': {'type': 'string', 'enum': ['application/vnd.openstack.image']},
    },
    'required': ['rel', 'href'],
    'additionalProperties': False,
}
_IMAGE_LINKS = {'type': 'array', 'items': _LINK, 'minItems': 3,
                'maxItems': 3}
# Glance properties are strings, but Nova decodes block_device_mapping
# (a list) for the view, and Glance has no length limit on values.
_ANY_METADATA = {
    'type': 'object',
    'patternProperties': {'^.+$': {}},
    'additionalProperties': False,
}

IMAGE = {
    'type': 'object',
    'properties': {
        'id': {'type': 'string'},
        'name': {'type': ['string', 'null']},
        'status': {'type': 'string',
                   'enum': ['ACTIVE', 'SAVING', 'DELETED', 'ERROR',
                            'UNKNOWN']},
        'progress': {'type': 'integer', 'enum': [0, 25, 50, 100]},
        'minDisk': {'type': 'integer', 'minimum': 0},
        'minRam': {'type': 'integer', 'minimum': 0},
        'metadata': _ANY_METADATA,
        'created': {'type': ['string', 'null']},
        'updated': {'type': ['string', 'null']},
        'OS-EXT-IMG-SIZE:size': {'type': 'integer'},
        'OS-DCF:diskConfig': server_schemas.DISK_CONFIG,
        'links': _IMAGE_LINKS,
        'server': {
            'type': 'object',
            'properties': {
                'id': {'type': 'string'},
                'links': server_schemas.SERVER['properties']['links'],
            },
            'required': ['id', 'links'],
            'additionalProperties': False,
        },
    },
    'required': ['id', 'name', 'status', 'progress', 'minDisk', 'minRam',
                 'metadata', 'created', 'updated', 'OS-EXT-IMG-SIZE:size',
                 'links'],
    'additionalProperties': False,
}

SHOW_RESPONSE = {
    'type': 'object',
    'properties': {'image': IMAGE},
    'required': ['image'],
    'additionalProperties': False,
}

INDEX_RESPONSE = {
    'type': 'object',
    'properties': {
        'images': {
            'type': 'array',
            'items': {
                'type': 'object',
                'properties': {
                    'id': {'type': 'string'},
                    'name': {'type': ['string', 'null']},
                    'links': _IMAGE_LINKS,
                },
                'required': ['id', 'name', 'links'],
                'additionalProperties': False,
            },
        },
        'images_links': server_schemas.NEXT_LINKS,
    },
    'required': ['images'],
    'additionalProperties': False,
}

DETAIL_RESPONSE = {
    'type': 'object',
    'properties': {
        'images': {'type': 'array', 'items': IMAGE},
        'images_links': server_schemas.NEXT_LINKS,
    },
    'required': ['images'],
    'additionalProperties': False,
}

METADATA_RESPONSE = {
    'type': 'object',
    'properties': {'metadata': _ANY_METADATA},
    'required': ['metadata'],
    'additionalProperties': False,
}

META_RESPONSE = {
    'type': 'object',
    'properties': {
        'meta': dict(_ANY_METADATA, minProperties=1, maxProperties=1),
    },
    'required': ['meta'],
    'additionalProperties': False,
}

for _schema in (CREATE_METADATA, UPDATE_METADATA_ITEM, SHOW_RESPONSE,
                INDEX_RESPONSE, DETAIL_RESPONSE, METADATA_RESPONSE,
                META_RESPONSE):
    validation.check_schema(_schema)
