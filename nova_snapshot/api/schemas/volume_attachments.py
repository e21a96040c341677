"""Request and response schemas for os-volume_attachments (Nova 2.1 shape;
``tag`` (2.49) and later fields are above our maximum version)."""

from nova_snapshot.api.schemas import block_device_mapping as bdm_schema
from nova_snapshot.api import validation

CREATE = {
    'type': 'object',
    'properties': {
        'volumeAttachment': {
            'type': 'object',
            'properties': {
                'volumeId': bdm_schema.UUID,
                # Nova's pattern; the hypervisor may pick another name.
                'device': {
                    'type': ['string', 'null'],
                    'pattern': '(^/dev/x{0,1}[a-z]{0,1}d{0,1})([a-z]+)[0-9]*$',
                    # The BDM's device_name column (ours: Nova has none).
                    'maxLength': 255,
                },
            },
            'required': ['volumeId'],
            'additionalProperties': False,
        },
    },
    'required': ['volumeAttachment'],
    'additionalProperties': False,
}

ATTACHMENT = {
    'type': 'object',
    'properties': {
        'id': {'type': 'string'},
        'serverId': {'type': 'string'},
        'volumeId': {'type': 'string'},
        'device': {'type': ['string', 'null']},
    },
    'required': ['id', 'serverId', 'volumeId'],
    'additionalProperties': False,
}

SHOW_RESPONSE = {
    'type': 'object',
    'properties': {'volumeAttachment': ATTACHMENT},
    'required': ['volumeAttachment'],
    'additionalProperties': False,
}

INDEX_RESPONSE = {
    'type': 'object',
    'properties': {
        'volumeAttachments': {'type': 'array', 'items': ATTACHMENT},
    },
    'required': ['volumeAttachments'],
    'additionalProperties': False,
}

for _schema in (CREATE, SHOW_RESPONSE, INDEX_RESPONSE):
    validation.check_schema(_schema)
