"""Request, query and response schemas of /os-keypairs by microversion
(Nova's ``schemas/keypairs.py``).

Create: 2.2 adds ``type`` (ssh, x509), 2.10 ``user_id`` (an admin's
keypair for another user), 2.92 makes ``public_key`` required (no more
generation) and lets the name have ``@`` and ``.``. A name is Nova's
``name`` (printable, no leading or trailing whitespace, 1 to 255
characters) made of letters, digits, ``_``, ``-`` and spaces.

Queries: ``user_id`` from 2.10, ``limit`` and ``marker`` on the list from
2.35; unknown parameters are ignored up to 2.74 and a 400 from 2.75.
"""

import copy

from nova_snapshot.api.schemas import servers as server_schema
from nova_snapshot.api import validation

# Nova's parameter_types.keypair_name_special_chars(_v292).
NAME = {'allOf': [server_schema.NAME, {
    'type': 'string', 'pattern': r'^[_\- a-zA-Z0-9]+$',
    'minLength': 1, 'maxLength': 255}]}
NAME_V292 = {'allOf': [server_schema.NAME, {
    'type': 'string', 'pattern': r'^[_\-\@\. a-zA-Z0-9]+$',
    'minLength': 1, 'maxLength': 255}]}
TYPE = {'type': 'string', 'enum': ['ssh', 'x509']}


def _create(name, key_type=False, user_id=False, public_key_required=False):
    properties = {'name': name, 'public_key': {'type': 'string'}}
    if key_type:
        properties['type'] = TYPE
    if user_id:
        # Nova leaves it unbounded; its column (and ours) holds 255, so a
        # longer one is a 400 here instead of a database error (500).
        properties['user_id'] = {'type': 'string', 'minLength': 1,
                                 'maxLength': 255}
    return {
        'type': 'object',
        'properties': {'keypair': {
            'type': 'object',
            'properties': properties,
            'required': (['name', 'public_key'] if public_key_required
                         else ['name']),
            'additionalProperties': False,
        }},
        'required': ['keypair'],
        'additionalProperties': False,
    }


CREATE = _create(NAME)
CREATE_V22 = _create(NAME, key_type=True)
CREATE_V210 = _create(NAME, key_type=True, user_id=True)
CREATE_V292 = _create(NAME_V292, key_type=True, user_id=True,
                      public_key_required=True)


def create_schema(version):
    for minimum, schema in (((2, 92), CREATE_V292), ((2, 10), CREATE_V210),
                            ((2, 2), CREATE_V22)):
        if version.matches(minimum):
            return schema
    return CREATE


def _many(item):
    return {'type': 'array', 'items': item}


# Nova's pagination_parameters (limit: non_negative_integer; at most 20
# digits here, as in the server list, so int() never sees thousands).
_LIMIT = _many({'type': ['integer', 'string'], 'pattern': '^[0-9]*$',
                'minimum': 0, 'minLength': 1, 'maxLength': 20})
_QUERY_OPEN = {'type': 'object', 'properties': {},
               'additionalProperties': True}
_QUERY_V210 = {'type': 'object',
               'properties': {'user_id': _many({'type': 'string'})},
               'additionalProperties': True}
_INDEX_QUERY_V235 = copy.deepcopy(_QUERY_V210)
_INDEX_QUERY_V235['properties'].update(
    {'limit': _LIMIT, 'marker': _many({'type': 'string'})})
_INDEX_QUERY_V275 = dict(_INDEX_QUERY_V235, additionalProperties=False)
_QUERY_V275 = dict(_QUERY_V210, additionalProperties=False)


def index_query_schema(version):
    if version.matches((2, 75)):
        return _INDEX_QUERY_V275
    if version.matches((2, 35)):
        return _INDEX_QUERY_V235
    if version.matches((2, 10)):
        return _QUERY_V210
    return _QUERY_OPEN


def query_schema(version):
    """GET and DELETE /os-keypairs/{name}."""
    if version.matches((2, 75)):
        return _QUERY_V275
    if version.matches((2, 10)):
        return _QUERY_V210
    return _QUERY_OPEN


# Responses (what Nova's response schemas allow).
_FINGERPRINT = {'type': 'string'}
_PUBLIC_KEY = {'type': 'string'}
_USER_ID = {'type': 'string'}


def _body(key, properties, required):
    return {
        'type': 'object',
        'properties': {key: {
            'type': 'object', 'properties': properties,
            'required': required, 'additionalProperties': False}},
        'required': [key],
        'additionalProperties': False,
    }


def create_response(version):
    properties = {'name': {'type': 'string'}, 'fingerprint': _FINGERPRINT,
                  'public_key': _PUBLIC_KEY, 'user_id': _USER_ID}
    required = ['fingerprint', 'name', 'public_key', 'user_id']
    if not version.matches((2, 92)):
        properties['private_key'] = {'type': 'string'}
    if version.matches((2, 2)):
        properties['type'] = TYPE
        required.append('type')
    return _body('keypair', properties, required)


def show_response(version):
    properties = {
        'name': {'type': 'string'}, 'fingerprint': _FINGERPRINT,
        'public_key': _PUBLIC_KEY, 'user_id': _USER_ID,
        'created_at': {'type': 'string'},
        # Never soft-deleted, never updated: constant, as in Nova.
        'deleted': {'type': 'boolean', 'enum': [False]},
        'deleted_at': {'type': 'null'},
        'updated_at': {'type': 'null'},
        'id': {'type': 'integer'},
    }
    if version.matches((2, 2)):
        properties['type'] = TYPE
    return _body('keypair', properties, sorted(properties))


def index_response(version):
    properties = {'name': {'type': 'string'}, 'fingerprint': _FINGERPRINT,
                  'public_key': _PUBLIC_KEY}
    if version.matches((2, 2)):
        properties['type'] = TYPE
    item = _body('keypair', properties, sorted(properties))
    body = {
        'type': 'object',
        'properties': {'keypairs': {'type': 'array', 'items': item}},
        'required': ['keypairs'],
        'additionalProperties': False,
    }
    if version.matches((2, 35)):
        body['properties']['keypairs_links'] = {
            'type': 'array',
            'items': {
                'type': 'object',
                'properties': {'rel': {'type': 'string'},
                               'href': {'type': 'string'}},
                'required': ['rel', 'href'],
                'additionalProperties': False,
            },
        }
    return body


for _schema in (CREATE, CREATE_V22, CREATE_V210, CREATE_V292,
                _QUERY_OPEN, _QUERY_V210, _INDEX_QUERY_V235,
                _INDEX_QUERY_V275, _QUERY_V275):
    validation.check_schema(_schema)
