"""Request and response schemas for /os-services (Nova's: below 2.53 the
service is named by host and binary, from 2.53 by its UUID)."""

from nova_snapshot.api import validation

_HOST = {'type': 'string', 'minLength': 1, 'maxLength': 255}
_BINARY = {'type': 'string', 'minLength': 1, 'maxLength': 255}
_REASON = {'type': 'string', 'minLength': 1, 'maxLength': 255}


def _update(required=(), **extra):
    properties = {'host': _HOST, 'binary': _BINARY}
    properties.update(extra)
    return {
        'type': 'object',
        'properties': properties,
        'required': ['host', 'binary'] + list(required),
        'additionalProperties': False,
    }


# PUT /os-services/{enable,disable,disable-log-reason,force-down}
ENABLE = _update()
DISABLE = _update()
DISABLE_LOG_REASON = _update(('disabled_reason',), disabled_reason=_REASON)
FORCE_DOWN = _update(('forced_down',), forced_down={'type': 'boolean'})

# PUT /os-services/{service_uuid} from 2.53 (Nova's service_update_v253:
# nothing required; the handler refuses an empty update).
UPDATE_V253 = {
    'type': 'object',
    'properties': {
        'status': {'type': 'string', 'enum': ['enabled', 'disabled']},
        'disabled_reason': _REASON,
        'forced_down': {'type': 'boolean'},
    },
    'additionalProperties': False,
}

# GET /os-services: host and binary; anything else is a 400 from 2.75.
_STRINGS = {'type': 'array', 'items': {'type': 'string'}}
INDEX_QUERY_V275 = {
    'type': 'object',
    'properties': {'host': _STRINGS, 'binary': _STRINGS},
    'additionalProperties': False,
}

_NULLABLE_STRING = {'type': ['string', 'null']}

SERVICE = {
    'type': 'object',
    'properties': {
        # An integer below 2.53, a UUID from 2.53.
        'id': {'type': ['integer', 'string']},
        'binary': {'type': 'string'},
        'host': {'type': 'string'},
        'zone': {'type': 'string'},
        'status': {'enum': ['enabled', 'disabled']},
        'state': {'enum': ['up', 'down']},
        'updated_at': _NULLABLE_STRING,
        'disabled_reason': _NULLABLE_STRING,
        'forced_down': {'type': 'boolean'},
    },
    'required': ['id', 'binary', 'host', 'zone', 'status', 'state',
                 'updated_at', 'disabled_reason'],
    'additionalProperties': False,
}

INDEX_RESPONSE = {
    'type': 'object',
    'properties': {'services': {'type': 'array', 'items': SERVICE}},
    'required': ['services'],
    'additionalProperties': False,
}

SHOW_RESPONSE_V253 = {
    'type': 'object',
    'properties': {'service': SERVICE},
    'required': ['service'],
    'additionalProperties': False,
}

UPDATE_RESPONSE = {
    'type': 'object',
    'properties': {
        'service': {
            'type': 'object',
            'properties': {
                'host': {'type': 'string'},
                'binary': {'type': 'string'},
                'status': {'enum': ['enabled', 'disabled']},
                'disabled_reason': {'type': 'string'},
                'forced_down': {'type': 'boolean'},
            },
            'required': ['host', 'binary'],
            'additionalProperties': False,
        },
    },
    'required': ['service'],
    'additionalProperties': False,
}

for _schema in (ENABLE, DISABLE, DISABLE_LOG_REASON, FORCE_DOWN,
                UPDATE_V253, INDEX_QUERY_V275, INDEX_RESPONSE,
                SHOW_RESPONSE_V253, UPDATE_RESPONSE):
    validation.check_schema(_schema)
