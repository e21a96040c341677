"""Query parameters of GET /servers and /servers/detail, and their bodies.

Nova's query schemas: every parameter may repeat (the query string is
validated as a dict of lists). Unknown parameters are allowed and dropped
later up to 2.74; from 2.75 they are a 400, and so are the sort keys Nova
used to ignore. 2.66 adds changes-before, 2.73 the locked filter and sort
key.
"""

from nova_snapshot.api.schemas import servers
from nova_snapshot.api import validation


def _many(item):
    return {'type': 'array', 'items': item}


_STRING = _many({'type': 'string'})
# A filter the database matches as a regular expression; one that Python
# cannot compile is a 400, not a database error.
_REGEX = _many({'type': 'string', 'format': 'regex'})
# Nova's non_negative_integer; ours has at most 20 digits (any limit is
# capped at [api] max_limit anyway), so int() never sees 5,000 of them.
_NON_NEGATIVE = _many({'type': ['integer', 'string'], 'pattern': '^[0-9]*$',
                       'minimum': 0, 'minLength': 1, 'maxLength': 20})

# Nova's VALID_SORT_KEYS: anything else is a 400.
VALID_SORT_KEYS = (
    'access_ip_v4', 'access_ip_v6', 'auto_disk_config', 'availability_zone',
    'config_drive', 'created_at', 'display_description', 'display_name',
    'host', 'hostname', 'image_ref', 'instance_type_id', 'kernel_id',
    'key_name', 'launch_index', 'launched_at', 'locked_by', 'node',
    'power_state', 'progress', 'project_id', 'ramdisk_id',
    'root_device_name', 'task_state', 'terminated_at', 'updated_at',
    'user_id', 'uuid', 'vm_state',
    # Nova's SERVER_LIST_IGNORE_SORT_KEY: accepted, then dropped.
    'architecture', 'cell_name', 'cleaned', 'default_ephemeral_device',
    'default_swap_device', 'deleted', 'deleted_at', 'disable_terminate',
    'ephemeral_gb', 'ephemeral_key_uuid', 'id', 'key_data', 'launched_on',
    'locked', 'memory_mb', 'os_type', 'reservation_id', 'root_gb',
    'shutdown_terminate', 'user_data', 'vcpus', 'vm_mode',
)
IGNORED_SORT_KEYS = VALID_SORT_KEYS[VALID_SORT_KEYS.index('architecture'):]

QUERY = {
    'type': 'object',
    'properties': {
        'user_id': _STRING,
        'project_id': _STRING,
        'tenant_id': _STRING,
        'launch_index': _STRING,
        'image_ref': _STRING,
        'image': _STRING,
        'kernel_id': _REGEX,
        'ramdisk_id': _REGEX,
        'hostname': _REGEX,
        'key_name': _REGEX,
        'power_state': _REGEX,
        'vm_state': _STRING,
        'task_state': _STRING,
        'host': _STRING,
        'node': _REGEX,
        'flavor': _REGEX,
        'reservation_id': _REGEX,
        'launched_at': _REGEX,
        'terminated_at': _REGEX,
        'availability_zone': _REGEX,
        'name': _REGEX,
        'status': _STRING,
        # Parsed by the handler, whose 400 names the field as Nova's does.
        'changes-since': _STRING,
        'ip': _REGEX,
        'ip6': _REGEX,
        'created_at': _REGEX,
        'limit': _NON_NEGATIVE,
        'marker': _many({'type': 'string'}),
        'sort_key': _many({'type': 'string', 'enum': list(VALID_SORT_KEYS)}),
        'sort_dir': _STRING,
        'all_tenants': _STRING,
        'soft_deleted': _STRING,
        'deleted': _STRING,
        'uuid': _STRING,
        'description': _REGEX,
        'locked': _STRING,
        'tags': _STRING,
        'tags-any': _STRING,
        'not-tags': _STRING,
        'not-tags-any': _STRING,
    },
    'additionalProperties': True,
}

# Nova's parameters that name another table: known (so not a 400 from
# 2.75 for being unknown) and refused by the handler.
JOINED_TABLE_PARAMS = ('block_device_mapping', 'services', 'metadata',
                       'system_metadata', 'info_cache', 'security_groups',
                       'pci_devices')
# Sort keys from 2.73 ("locked" sorts) and from 2.75 (no ignored ones).
IGNORED_SORT_KEYS_V273 = tuple(k for k in IGNORED_SORT_KEYS if k != 'locked')
_VALID_SORT_KEYS_V275 = tuple(k for k in VALID_SORT_KEYS
                              if k not in IGNORED_SORT_KEYS_V273)


def _versioned(base, changes, closed=False):
    schema = dict(base, properties=dict(base['properties'], **changes))
    if closed:
        schema['additionalProperties'] = False
    return schema


QUERY_V266 = _versioned(QUERY, {'changes-before': _STRING})
QUERY_V273 = _versioned(QUERY_V266, {})
QUERY_V275 = _versioned(QUERY_V273, dict(
    {key: _STRING for key in JOINED_TABLE_PARAMS},
    sort_key=_many({'type': 'string', 'enum': list(_VALID_SORT_KEYS_V275)}),
    display_name=_REGEX, display_description=_REGEX, locked_by=_REGEX,
    root_device_name=_REGEX, config_drive=_REGEX, access_ip_v4=_REGEX,
    access_ip_v6=_REGEX, auto_disk_config=_REGEX, progress=_REGEX,
), closed=True)


def query_schema(version):
    if version.matches((2, 75)):
        return QUERY_V275
    if version.matches((2, 66)):
        return QUERY_V266
    return QUERY


def ignored_sort_keys(version):
    """Sort keys accepted then dropped (none from 2.75)."""
    if version.matches((2, 75)):
        return ()
    if version.matches((2, 73)):
        return IGNORED_SORT_KEYS_V273
    return IGNORED_SORT_KEYS


# The filters Nova lets a caller without allow_all_filters use; every other
# parameter is dropped for them, not refused.
USER_FILTERS = ('reservation_id', 'name', 'status', 'image', 'flavor', 'ip',
                'changes-since', 'all_tenants')
USER_FILTERS_V25 = USER_FILTERS + ('ip6',)
USER_FILTERS_V226 = USER_FILTERS_V25 + ('tags', 'tags-any', 'not-tags',
                                        'not-tags-any')
USER_FILTERS_V266 = USER_FILTERS_V226 + ('changes-before',)
USER_FILTERS_V273 = USER_FILTERS_V266 + ('locked',)
USER_FILTERS_V283 = USER_FILTERS_V273 + (
    'availability_zone', 'config_drive', 'key_name', 'created_at',
    'launched_at', 'terminated_at', 'power_state', 'task_state', 'vm_state',
    'progress', 'user_id')
USER_FILTERS_V290 = USER_FILTERS_V283 + ('hostname',)
PAGING_SORTING = ('sort_key', 'sort_dir', 'limit', 'marker')


def _with_links(schema):
    schema = dict(schema)
    schema['properties'] = dict(schema['properties'],
                                servers_links=servers.NEXT_LINKS)
    return schema


INDEX_RESPONSE = _with_links(servers.INDEX_RESPONSE)
DETAIL_RESPONSE = _with_links(servers.DETAIL_RESPONSE)

for _schema in (QUERY, QUERY_V266, QUERY_V275, INDEX_RESPONSE,
                DETAIL_RESPONSE):
    validation.check_schema(_schema)
