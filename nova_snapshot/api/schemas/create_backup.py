"""createBackup request and response schemas (Nova's
``schemas/create_backup.py``; unchanged by every microversion after 2.1
except the 2.45 response)."""

from nova_snapshot.api.schemas import servers
from nova_snapshot.api import validation

# Nova's parameter_types.non_negative_integer: a JSON integer or a string
# of digits, never negative ("-1", -1, 1.5, "", true are 400s).
NON_NEGATIVE_INTEGER = {
    'type': ['integer', 'string'],
    'pattern': '^[0-9]*$',
    'minimum': 0,
    'minLength': 1,
}

CREATE_BACKUP = {
    'type': 'object',
    'properties': {
        'createBackup': {
            'type': 'object',
            'properties': {
                'name': servers.NAME,
                'backup_type': {'type': 'string'},
                'rotation': NON_NEGATIVE_INTEGER,
                'metadata': servers.METADATA,
            },
            'required': ['name', 'backup_type', 'rotation'],
            'additionalProperties': False,
        },
    },
    'required': ['createBackup'],
    'additionalProperties': False,
}

CREATE_BACKUP_RESPONSE = {'type': 'null'}
CREATE_BACKUP_RESPONSE_V245 = {
    'type': 'object',
    'properties': {
        'image_id': {'type': 'string', 'pattern': servers.UUID_PATTERN},
    },
    'required': ['image_id'],
    'additionalProperties': False,
}

for _schema in (CREATE_BACKUP, CREATE_BACKUP_RESPONSE_V245):
    validation.check_schema(_schema)
