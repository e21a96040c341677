"""Request and response schemas for os-volume_attachments, per
microversion: ``tag`` on create from 2.49 and shown from 2.70,
``delete_on_termination`` on create and shown from 2.79, ``attachment_id``
and ``bdm_uuid`` instead of ``id`` from 2.89 (list and show), no create
body from 2.101; the update (PUT) body takes only ``volumeId`` before 2.85
and every field a show has from 2.85 (only ``delete_on_termination`` may
change)."""

import copy

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

CREATE_V249 = copy.deepcopy(CREATE)
CREATE_V249['properties']['volumeAttachment']['properties'][
    'tag'] = bdm_schema.TAG
CREATE_V279 = copy.deepcopy(CREATE_V249)
CREATE_V279['properties']['volumeAttachment']['properties'][
    'delete_on_termination'] = bdm_schema.BOOLEAN


# PUT .../os-volume_attachments/{volume_id}: Nova's swap body before 2.85
# (create's without "device"), the fields of a show from 2.85.
UPDATE = copy.deepcopy(CREATE)
del UPDATE['properties']['volumeAttachment']['properties']['device']
UPDATE_V285 = copy.deepcopy(CREATE_V279)
UPDATE_V285['properties']['volumeAttachment']['properties'].update({
    'serverId': bdm_schema.UUID,
    'id': bdm_schema.UUID,
})


def update_schema(version):
    return UPDATE_V285 if version.matches((2, 85)) else UPDATE


def create_schema(version):
    if version.matches((2, 79)):
        return CREATE_V279
    if version.matches((2, 49)):
        return CREATE_V249
    return CREATE


# GET .../os-volume_attachments: Nova's limit and offset (unknown
# parameters are a 400 from 2.75).
_NON_NEGATIVE = {'type': 'array', 'items': {
    'type': 'string', 'pattern': '^[0-9]{1,20}$'}}
INDEX_QUERY = {
    'type': 'object',
    'properties': {'limit': _NON_NEGATIVE, 'offset': _NON_NEGATIVE},
    'additionalProperties': True,
}
INDEX_QUERY_V275 = dict(INDEX_QUERY, additionalProperties=False)

# Every field any version shows; the handler picks them per version.
ATTACHMENT = {
    'type': 'object',
    'properties': {
        'id': {'type': 'string'},
        'serverId': {'type': 'string'},
        'volumeId': {'type': 'string'},
        'device': {'type': ['string', 'null']},
        'tag': {'type': ['string', 'null']},
        'delete_on_termination': {'type': 'boolean'},
        'attachment_id': {'type': ['string', 'null']},
        'bdm_uuid': {'type': 'string', 'format': 'uuid'},
    },
    'required': ['serverId', 'volumeId'],
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

for _schema in (CREATE, CREATE_V249, CREATE_V279, UPDATE, UPDATE_V285,
                INDEX_QUERY,
                INDEX_QUERY_V275, SHOW_RESPONSE, INDEX_RESPONSE):
    validation.check_schema(_schema)
