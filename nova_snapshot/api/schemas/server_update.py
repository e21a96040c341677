"""``PUT /servers/{server_id}``: the request body by microversion (Nova's
``schemas/servers.py`` update, update_v219, ...) and the response.

Versions: 2.1 name, OS-DCF:diskConfig, accessIPv4, accessIPv6; 2.19
description; 2.90 hostname; 2.94 the hostname may be an FQDN; 2.104
pinned_availability_zone (a zone name or null). ``server`` may be empty:
nothing is changed and the server is returned.
"""

import copy

from nova_snapshot.api.schemas import rebuild
from nova_snapshot.api.schemas import servers as server_schema
from nova_snapshot.api import validation

UPDATE = {
    'type': 'object',
    'properties': {
        'server': {
            'type': 'object',
            'properties': {
                'name': server_schema.NAME,
                'OS-DCF:diskConfig': server_schema.DISK_CONFIG,
                'accessIPv4': server_schema.ACCESS_IPV4,
                'accessIPv6': server_schema.ACCESS_IPV6,
            },
            'additionalProperties': False,
        },
    },
    'required': ['server'],
    'additionalProperties': False,
}


def _with(schema, **fields):
    new = copy.deepcopy(schema)
    new['properties']['server']['properties'].update(fields)
    return new


UPDATE_V219 = _with(UPDATE, description=server_schema.DESCRIPTION)
UPDATE_V290 = _with(UPDATE_V219, hostname=server_schema.HOSTNAME)
UPDATE_V294 = _with(UPDATE_V290, hostname=server_schema.FQDN)
# Nova's parameter_types.name_or_none.
UPDATE_V2104 = _with(UPDATE_V294, pinned_availability_zone={'oneOf': [
    {'type': 'string', 'minLength': 1, 'maxLength': 255},
    {'type': 'null'}]})


def update_schema(version):
    """The update body schema for an APIVersion."""
    for minimum, schema in (((2, 104), UPDATE_V2104), ((2, 94), UPDATE_V294),
                            ((2, 90), UPDATE_V290), ((2, 19), UPDATE_V219)):
        if version.matches(minimum):
            return schema
    return UPDATE


# The 200 body is rebuild's: the server of GET /servers/{id}, Nova's reduced
# body below 2.75.
UPDATE_RESPONSE = rebuild.REBUILD_RESPONSE

for _schema in (UPDATE, UPDATE_V219, UPDATE_V290, UPDATE_V294, UPDATE_V2104,
                UPDATE_RESPONSE):
    validation.check_schema(_schema)
