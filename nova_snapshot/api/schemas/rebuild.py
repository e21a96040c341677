"""The rebuild action's request body by microversion (Nova's
``schemas/servers.py`` rebuild, rebuild_v219, ...).

Versions: 2.19 description, 2.54 key_name, 2.57 user_data (personality
gone), 2.63 trusted_image_certificates, 2.90 hostname (2.94 an FQDN; kept
in system metadata). ``description`` is stored (null removes it).
Fields this service does not keep (personality, user_data) are accepted
as Nova's schema accepts them and ignored; trusted_image_certificates can
only be null (the handler refuses a value).
``key_name`` names a keypair of the caller's user (null removes it).
"""

import copy

from nova_snapshot.api.schemas import servers as server_schema

# Nova's parameter_types.image_id: a string (looked up in Glance; any id
# Glance does not know is a 400 there).
_IMAGE_REF = {'type': 'string', 'minLength': 1, 'maxLength': 255}
# Nova's parameter_types.personality (removed from rebuild at 2.57).
_PERSONALITY = {
    'type': 'array',
    'items': {
        'type': 'object',
        'properties': {
            'path': {'type': 'string'},
            'contents': {'type': 'string', 'format': 'base64'},
        },
        'additionalProperties': False,
    },
}
DESCRIPTION = server_schema.DESCRIPTION
# Nova's parameter_types.boolean.
BOOLEAN = {'type': ['boolean', 'string'],
           'enum': [True, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on',
                    'YES', 'Yes', 'yes', 'y', 't',
                    False, 'False', 'FALSE', 'false', '0', 'OFF', 'Off',
                    'off', 'NO', 'No', 'no', 'n', 'f']}

REBUILD = {
    'type': 'object',
    'properties': {
        'rebuild': {
            'type': 'object',
            'properties': {
                'name': server_schema.NAME,
                'imageRef': _IMAGE_REF,
                # Nova's admin_password: any string, only returned.
                'adminPass': {'type': 'string'},
                'metadata': server_schema.METADATA,
                'preserve_ephemeral': BOOLEAN,
                'OS-DCF:diskConfig': server_schema.DISK_CONFIG,
                'accessIPv4': server_schema.ACCESS_IPV4,
                'accessIPv6': server_schema.ACCESS_IPV6,
                'personality': _PERSONALITY,
            },
            'required': ['imageRef'],
            'additionalProperties': False,
        },
    },
    'required': ['rebuild'],
    'additionalProperties': False,
}

# 2.19: description.
REBUILD_V219 = copy.deepcopy(REBUILD)
REBUILD_V219['properties']['rebuild']['properties'][
    'description'] = DESCRIPTION

# 2.54: key_name (Nova's name_or_none: null removes the server's key).
REBUILD_V254 = copy.deepcopy(REBUILD_V219)
REBUILD_V254['properties']['rebuild']['properties']['key_name'] = {
    'type': ['string', 'null'], 'minLength': 1, 'maxLength': 255,
    'format': 'name'}

# 2.57: personality removed; user_data (base64, null resets it).
REBUILD_V257 = copy.deepcopy(REBUILD_V254)
REBUILD_V257['properties']['rebuild']['properties'].pop('personality')
REBUILD_V257['properties']['rebuild']['properties']['user_data'] = {
    'type': ['string', 'null'], 'format': 'base64', 'maxLength': 65535}

# 2.63: trusted_image_certificates (Nova's parameter_types.trusted_certs;
# certificates are not verified here: the handler refuses a list).
REBUILD_V263 = copy.deepcopy(REBUILD_V257)
REBUILD_V263['properties']['rebuild']['properties'][
    'trusted_image_certificates'] = {
        'type': ['array', 'null'], 'minItems': 1, 'maxItems': 50,
        'uniqueItems': True,
        'items': {'type': 'string', 'minLength': 1}}

# What server_actions checks before the handler picks the version's schema.
ANY_VERSION = {
    'type': 'object',
    'properties': {'rebuild': {}},
    'required': ['rebuild'],
    'additionalProperties': False,
}


# 2.90: hostname (Nova's parameter_types.hostname); 2.94: an FQDN.
REBUILD_V290 = copy.deepcopy(REBUILD_V263)
REBUILD_V290['properties']['rebuild']['properties'][
    'hostname'] = server_schema.HOSTNAME
REBUILD_V294 = copy.deepcopy(REBUILD_V290)
REBUILD_V294['properties']['rebuild']['properties'][
    'hostname'] = server_schema.FQDN


def rebuild_schema(version):
    """The rebuild body schema for an APIVersion."""
    for minimum, schema in (((2, 94), REBUILD_V294), ((2, 90), REBUILD_V290),
                            ((2, 63), REBUILD_V263), ((2, 57), REBUILD_V257),
                            ((2, 54), REBUILD_V254), ((2, 19), REBUILD_V219)):
        if version.matches(minimum):
            return schema
    return REBUILD


# The 202 body: the server of GET /servers/{id}, but below 2.75 Nova's
# reduced rebuild body leaves out the OS-EXT-STS fields (and others that
# are optional there anyway), so they are not required here.
_SERVER = copy.deepcopy(server_schema.SERVER)
_SERVER['required'] = [key for key in _SERVER['required']
                       if not key.startswith('OS-EXT-STS:')]
REBUILD_RESPONSE = {
    'type': 'object',
    'properties': {'server': _SERVER},
    'required': ['server'],
    'additionalProperties': False,
}
