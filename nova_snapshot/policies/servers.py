"""Policies for /servers and its actions (Nova's rule names)."""

from oslo_policy import policy

from nova_snapshot.policies import base

SERVERS = 'os_compute_api:servers:%s'
INDEX = SERVERS % 'index'
DETAIL = SERVERS % 'detail'
INDEX_ALL_TENANTS = SERVERS % 'index:get_all_tenants'
DETAIL_ALL_TENANTS = SERVERS % 'detail:get_all_tenants'
ALLOW_ALL_FILTERS = SERVERS % 'allow_all_filters'
SHOW = SERVERS % 'show'
CREATE = SERVERS % 'create'
CREATE_ATTACH_VOLUME = SERVERS % 'create:attach_volume'
CREATE_FORCED_HOST = SERVERS % 'create:forced_host'
# Nova's name has no os_compute_api prefix.
REQUESTED_DESTINATION = 'compute:servers:create:requested_destination'
DELETE = SERVERS % 'delete'
UPDATE = SERVERS % 'update'
STOP = SERVERS % 'stop'
START = SERVERS % 'start'
CREATE_IMAGE = SERVERS % 'create_image'
CREATE_IMAGE_VOLUME_BACKED = SERVERS % 'create_image:allow_volume_backed'
EXTENDED_ATTRIBUTES = 'os_compute_api:os-extended-server-attributes'
PAUSE = 'os_compute_api:os-pause-server:pause'
UNPAUSE = 'os_compute_api:os-pause-server:unpause'
SUSPEND = 'os_compute_api:os-suspend-server:suspend'
RESUME = 'os_compute_api:os-suspend-server:resume'
CONSOLE_OUTPUT = 'os_compute_api:os-console-output'
# One rule per action body key.
_action = base.server_action

rules = [
    policy.DocumentedRuleDefault(
        name=INDEX, check_str=base.PROJECT_READER_OR_ADMIN,
        description='List servers.',
        operations=[{'method': 'GET', 'path': '/servers'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name=DETAIL, check_str=base.PROJECT_READER_OR_ADMIN,
        description='List servers with details.',
        operations=[{'method': 'GET', 'path': '/servers/detail'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name=INDEX_ALL_TENANTS, check_str=base.ADMIN,
        description='List the servers of every project (all_tenants).',
        operations=[{'method': 'GET', 'path': '/servers'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name=DETAIL_ALL_TENANTS, check_str=base.ADMIN,
        description='List the servers of every project with details '
                    '(all_tenants).',
        operations=[{'method': 'GET', 'path': '/servers/detail'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name=ALLOW_ALL_FILTERS, check_str=base.ADMIN,
        description='Filter server lists by every filter (host, '
                    'project_id, ...); others are ignored for the rest.',
        operations=[{'method': 'GET', 'path': '/servers'},
                    {'method': 'GET', 'path': '/servers/detail'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name=SHOW, check_str=base.PROJECT_READER_OR_ADMIN,
        description='Show a server.',
        operations=[{'method': 'GET', 'path': '/servers/{server_id}'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name=CREATE, check_str=base.PROJECT_MEMBER_OR_ADMIN,
        description='Create a server.',
        operations=[{'method': 'POST', 'path': '/servers'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name=CREATE_FORCED_HOST, check_str=base.ADMIN,
        description='Create a server on a given host or node: the host '
                    'part of availability_zone "zone:host", "zone::node" '
                    'or "zone:host:node"; checked in addition to create.',
        operations=[{'method': 'POST', 'path': '/servers'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name=REQUESTED_DESTINATION, check_str=base.ADMIN,
        description='Create a server on the requested compute host and/or '
                    'node ("host", "hypervisor_hostname", from microversion '
                    '2.74); checked in addition to create.',
        operations=[{'method': 'POST', 'path': '/servers'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name=CREATE_ATTACH_VOLUME, check_str=base.PROJECT_MEMBER_OR_ADMIN,
        description='Create a server with block_device_mapping_v2 (boot '
                    'from volume, data volumes); checked in addition to '
                    'create.',
        operations=[{'method': 'POST', 'path': '/servers'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name=DELETE, check_str=base.PROJECT_MEMBER_OR_ADMIN,
        description='Delete a server.',
        operations=[{'method': 'DELETE', 'path': '/servers/{server_id}'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name=UPDATE, check_str=base.PROJECT_MEMBER_OR_ADMIN,
        description='Update a server (name, description, access '
                    'addresses, diskConfig, hostname, pinned availability '
                    'zone).',
        operations=[{'method': 'PUT', 'path': '/servers/{server_id}'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name=EXTENDED_ATTRIBUTES, check_str=base.ADMIN,
        description='Return the OS-EXT-SRV-ATTR fields (host and others) '
                    'in the server body.',
        operations=[{'method': 'GET', 'path': '/servers/{server_id}'},
                    {'method': 'GET', 'path': '/servers/detail'}],
        scope_types=['project']),
    _action(STOP, 'os-stop', base.PROJECT_MEMBER_OR_ADMIN, 'Stop a server.'),
    _action(START, 'os-start', base.PROJECT_MEMBER_OR_ADMIN,
            'Start a server.'),
    _action(CREATE_IMAGE, 'createImage', base.PROJECT_MEMBER_OR_ADMIN,
            'Create an image (snapshot) from a server.'),
    _action(CREATE_IMAGE_VOLUME_BACKED, 'createImage',
            base.PROJECT_MEMBER_OR_ADMIN,
            'Create an image from a volume-backed server; checked in '
            'addition to create_image for those servers only.'),
    _action(PAUSE, 'pause', base.PROJECT_MEMBER_OR_ADMIN, 'Pause a server.'),
    _action(UNPAUSE, 'unpause', base.PROJECT_MEMBER_OR_ADMIN,
            'Unpause a paused server.'),
    _action(SUSPEND, 'suspend', base.PROJECT_MEMBER_OR_ADMIN,
            'Suspend a server.'),
    _action(RESUME, 'resume', base.PROJECT_MEMBER_OR_ADMIN,
            'Resume a suspended server.'),
    _action(CONSOLE_OUTPUT, 'os-getConsoleOutput',
            base.PROJECT_MEMBER_OR_ADMIN, 'Show the console output of a '
            'server.'),
]


def list_rules():
    return rules
