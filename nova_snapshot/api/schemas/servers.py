"""Request and response schemas for /servers and its actions.

Named after Nova's (``nova/api/openstack/compute/schemas/servers.py``);
every object is closed with ``additionalProperties: False`` (checked at
import by ``validation.check_schema``).
"""

from nova_snapshot.api.schemas import block_device_mapping as bdm_schema
from nova_snapshot.api import validation

UUID_PATTERN = ('^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-'
                '[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')

# Nova parameter_types.name.
NAME = {
    'type': 'string', 'minLength': 1, 'maxLength': 255, 'format': 'name',
}

# Nova parameter_types.metadata: no count limit in the schema.
METADATA = {
    'type': 'object',
    'patternProperties': {
        '^[a-zA-Z0-9-_:. ]{1,255}$': {'type': 'string', 'maxLength': 255},
    },
    'additionalProperties': False,
}

# Nova's parameter_types.accessIPv4/accessIPv6/disk_config.
ACCESS_IPV4 = {'type': 'string', 'format': 'ipv4'}
ACCESS_IPV6 = {'type': 'string', 'format': 'ipv6'}
DISK_CONFIG = {'type': 'string', 'enum': ['AUTO', 'MANUAL']}

_NETWORK_LIST = {
    'type': 'array',
    'items': {
        'type': 'object',
        'properties': {
            'uuid': {'type': 'string'},
            'port': {'type': ['string', 'null']},
            'fixed_ip': {'type': 'string'},
            'tag': bdm_schema.TAG,
        },
        'additionalProperties': False,
    },
}
_NETWORK_KEYWORD = {'type': 'string', 'enum': ['none', 'auto']}


# Nova's image_id_or_empty_string: "" when booting from a volume.
_IMAGE_REF = {'oneOf': [{'type': 'string', 'pattern': UUID_PATTERN},
                        {'type': 'string', 'maxLength': 0}]}


# Nova's parameter_types.positive_integer (min_count, max_count; the
# minimum applies to a digit string too, api/validation.py), with at most
# 20 digits (ours: int() stays cheap; any larger count is lowered to
# [api] max_servers_per_request anyway).
COUNT = {'type': ['integer', 'string'], 'pattern': '^[0-9]*$',
         'minimum': 1, 'minLength': 1, 'maxLength': 20}
# Nova's parameter_types.boolean.
BOOLEAN = bdm_schema.BOOLEAN

# Nova's parameter_types.hostname (2.90) and fqdn (from 2.94).
HOSTNAME = {'type': 'string', 'minLength': 2, 'maxLength': 63,
            'pattern': '^[a-zA-Z0-9]+[a-zA-Z0-9-]*[a-zA-Z0-9]+$'}
FQDN = {'type': 'string', 'minLength': 1, 'maxLength': 255,
        'pattern': '^[a-zA-Z0-9-._]*$'}
# Nova's parameter_types.description (create, update and rebuild from 2.19).
DESCRIPTION = {'type': ['string', 'null'], 'minLength': 0,
               'maxLength': 255, 'pattern': '^[^\\x00-\\x1f\\x7f]*$'}


def _create(networks, networks_required, bdm_v2=None, hostname=None,
            description=None, destination=False):
    server = {
        'type': 'object',
        'properties': {
            'name': NAME,
            # Optional: a mapping with boot_index 0 may be the root disk
            # (api/block_device.py says when it must be there).
            'imageRef': _IMAGE_REF,
            # Nova's flavor_ref; a flavor id is at most 255 characters
            # (ours: Nova has no maximum). It is looked up, never stored.
            'flavorRef': {'type': ['string', 'integer'], 'minLength': 1,
                          'maxLength': 255},
            'metadata': METADATA,
            'networks': networks,
            # os-multiple-create (compute/multiple_create.py).
            'min_count': COUNT,
            'max_count': COUNT,
            'return_reservation_id': BOOLEAN,
            'block_device_mapping': bdm_schema.LEGACY_LIST,
            'block_device_mapping_v2': bdm_v2 or {
                'type': 'array', 'items': bdm_schema.ITEM},
            # "zone", or an admin's "zone:host", "zone::node",
            # "zone:host:node" (compute/scheduler.py).
            'availability_zone': NAME,
            # A keypair of the caller's user (os-keypairs).
            'key_name': NAME,
            # Nova takes any string and never stores it; it is returned
            # in the create response ([api] enable_instance_password).
            'adminPass': {'type': 'string'},
            'accessIPv4': ACCESS_IPV4,
            'accessIPv6': ACCESS_IPV6,
            'OS-DCF:diskConfig': DISK_CONFIG,
        },
        'required': ['name', 'flavorRef'],
        'additionalProperties': False,
    }
    if networks_required:
        server['required'] = server['required'] + ['networks']
    if hostname is not None:
        server['properties']['hostname'] = hostname
    if description is not None:
        server['properties']['description'] = description
    if destination:
        # 2.74: an admin's requested host and/or node (Nova's fqdn).
        server['properties']['host'] = FQDN
        server['properties']['hypervisor_hostname'] = FQDN
    return {
        'type': 'object',
        'properties': {'server': server},
        'required': ['server'],
        'additionalProperties': False,
    }


# Before 2.37 networks is an optional list; from 2.37 it is required and may
# be the keywords "none" or "auto" (we have no networking: both are no-ops).
CREATE = _create(_NETWORK_LIST, networks_required=False)
CREATE_V237 = _create({'oneOf': [_NETWORK_LIST, _NETWORK_KEYWORD]},
                      networks_required=True)


def create_schema(version):
    """The create body schema for an APIVersion (``description`` from
    2.19, networks from 2.37, the BDM ``tag`` at 2.32 and from 2.42, its
    ``volume_type`` from 2.67, ``host`` and ``hypervisor_hostname`` from
    2.74, ``hostname`` from 2.90, an FQDN from 2.94).
    """
    bdm_v2 = bdm_schema.v2_list(version)
    description = DESCRIPTION if version.matches((2, 19)) else None
    hostname = None
    if version.matches((2, 94)):
        hostname = FQDN
    elif version.matches((2, 90)):
        hostname = HOSTNAME
    if version.matches((2, 37)):
        return _create({'oneOf': [_NETWORK_LIST, _NETWORK_KEYWORD]},
                       networks_required=True, bdm_v2=bdm_v2,
                       hostname=hostname, description=description,
                       destination=version.matches((2, 74)))
    return _create(_NETWORK_LIST, networks_required=False, bdm_v2=bdm_v2,
                   description=description)


CREATE_IMAGE = {
    'type': 'object',
    'properties': {
        'createImage': {
            'type': 'object',
            'properties': {
                'name': NAME,
                'metadata': METADATA,
            },
            'required': ['name'],
            'additionalProperties': False,
        },
    },
    'required': ['createImage'],
    'additionalProperties': False,
}


def _no_argument_action(key):
    # Nova's schemas for these actions take any value ({} and null
    # included); it means nothing.
    return {
        'type': 'object',
        'properties': {key: {}},
        'required': [key],
        'additionalProperties': False,
    }


STOP = _no_argument_action('os-stop')
START = _no_argument_action('os-start')
PAUSE = _no_argument_action('pause')
UNPAUSE = _no_argument_action('unpause')
SUSPEND = _no_argument_action('suspend')
RESUME = _no_argument_action('resume')

GET_CONSOLE_OUTPUT = {
    'type': 'object',
    'properties': {
        'os-getConsoleOutput': {
            'type': 'object',
            'properties': {
                'length': {
                    'type': ['integer', 'string', 'null'],
                    'pattern': '^-?[0-9]+$',
                    # -1 means the whole log, as in Nova; the upper
                    # bound (ours) keeps int() of the string cheap.
                    'maxLength': 10,
                    'minimum': -1, 'maximum': bdm_schema.MAX_INT,
                },
            },
            'additionalProperties': False,
        },
    },
    'required': ['os-getConsoleOutput'],
    'additionalProperties': False,
}

# -- responses -------------------------------------------------------------

CREATE_IMAGE_RESPONSE = {'type': 'null'}
CREATE_IMAGE_RESPONSE_V245 = {
    'type': 'object',
    'properties': {
        'image_id': {'type': ['string', 'null'], 'pattern': UUID_PATTERN},
    },
    'required': ['image_id'],
    'additionalProperties': False,
}

_LINKS = {
    'type': 'array',
    'items': {
        'type': 'object',
        'properties': {
            'href': {'type': 'string'},
            'rel': {'type': 'string'},
            'type': {'type': 'string'},
        },
        'required': ['href', 'rel'],
        'additionalProperties': False,
    },
}

_REF = {
    'type': 'object',
    'properties': {'id': {'type': 'string'}, 'links': _LINKS},
    'required': ['id', 'links'],
    'additionalProperties': False,
}

_FAULT = {
    'type': 'object',
    'properties': {
        'code': {'type': 'integer'},
        'message': {'type': 'string'},
        'created': {'type': 'string'},
        'details': {'type': ['string', 'null']},
    },
    'required': ['code', 'message', 'created'],
    'additionalProperties': False,
}

_NULLABLE_STRING = {'type': ['string', 'null']}

# The image of a server body: a link, and from 2.98 the boot image's
# standard properties.
_IMAGE_REF_V298 = {
    'type': 'object',
    'properties': {
        'id': {'type': 'string'}, 'links': _LINKS,
        'properties': {
            'type': 'object',
            'patternProperties': {
                '^[a-zA-Z0-9_:. ]{1,255}$': {'type': ['string', 'null'],
                                             'maxLength': 255},
            },
            'additionalProperties': False,
        },
    },
    'required': ['id', 'links'],
    'additionalProperties': False,
}

# The flavor of a server body from 2.47.
_EMBEDDED_FLAVOR = {
    'type': 'object',
    'properties': {
        'vcpus': {'type': 'integer'}, 'ram': {'type': 'integer'},
        'disk': {'type': 'integer'}, 'ephemeral': {'type': 'integer'},
        'swap': {'type': 'integer'}, 'original_name': {'type': 'string'},
        'extra_specs': {
            'type': 'object',
            'patternProperties': {'^.+$': {'type': 'string'}},
            'additionalProperties': False,
        },
    },
    'required': ['vcpus', 'ram', 'disk', 'ephemeral', 'swap',
                 'original_name'],
    'additionalProperties': False,
}

SERVER = {
    'type': 'object',
    'properties': {
        'id': {'type': 'string', 'pattern': UUID_PATTERN},
        'name': {'type': 'string'},
        'status': {'type': 'string'},
        'tenant_id': {'type': 'string'},
        'user_id': {'type': 'string'},
        'metadata': {
            'type': 'object',
            'patternProperties': {'^.+$': {'type': 'string'}},
            'additionalProperties': False,
        },
        'hostId': {'type': 'string'},
        'image': {'oneOf': [_IMAGE_REF_V298,
                            {'type': 'string', 'enum': ['']}]},
        'flavor': {'oneOf': [_REF, _EMBEDDED_FLAVOR]},
        'created': {'type': 'string'},
        'updated': {'type': 'string'},
        'addresses': {'type': 'object', 'additionalProperties': False},
        'accessIPv4': {'oneOf': [ACCESS_IPV4, {'enum': ['']}]},
        'accessIPv6': {'oneOf': [ACCESS_IPV6, {'enum': ['']}]},
        'links': _LINKS,
        'progress': {'type': 'integer'},
        'key_name': {'type': ['string', 'null']},
        'config_drive': {'type': 'string'},
        'security_groups': {
            'type': 'array',
            'items': {
                'type': 'object',
                'properties': {'name': {'type': 'string'}},
                'additionalProperties': False,
            },
        },
        'fault': _FAULT,
        'locked': {'type': 'boolean'},
        'locked_reason': _NULLABLE_STRING,
        'trusted_image_certificates': {'type': 'null'},
        'server_groups': {'type': 'array', 'maxItems': 0},
        'pinned_availability_zone': _NULLABLE_STRING,
        'scheduler_hints': {'type': 'object', 'additionalProperties': False},
        # The rebuild body only (2.57 and the new password).
        'user_data': {'type': 'null'},
        'adminPass': {'type': 'string'},
        'description': _NULLABLE_STRING,
        'tags': {'type': 'array', 'items': {'type': 'string'}},
        'OS-DCF:diskConfig': DISK_CONFIG,
        'OS-EXT-AZ:availability_zone': {'type': 'string'},
        'OS-EXT-STS:task_state': _NULLABLE_STRING,
        'OS-EXT-STS:vm_state': {'type': 'string'},
        'OS-EXT-STS:power_state': {'type': 'integer'},
        'OS-SRV-USG:launched_at': _NULLABLE_STRING,
        'OS-SRV-USG:terminated_at': _NULLABLE_STRING,
        'os-extended-volumes:volumes_attached': {
            'type': 'array',
            'items': {
                'type': 'object',
                'properties': {'id': {'type': 'string'},
                               'delete_on_termination': {'type': 'boolean'}},
                'additionalProperties': False,
            },
        },
        'OS-EXT-SRV-ATTR:host': _NULLABLE_STRING,
        'OS-EXT-SRV-ATTR:hypervisor_hostname': _NULLABLE_STRING,
        'OS-EXT-SRV-ATTR:instance_name': {'type': 'string'},
        'OS-EXT-SRV-ATTR:hostname': _NULLABLE_STRING,
        'OS-EXT-SRV-ATTR:reservation_id': _NULLABLE_STRING,
        'OS-EXT-SRV-ATTR:launch_index': {'type': ['integer', 'null']},
        'OS-EXT-SRV-ATTR:kernel_id': _NULLABLE_STRING,
        'OS-EXT-SRV-ATTR:ramdisk_id': _NULLABLE_STRING,
        'OS-EXT-SRV-ATTR:root_device_name': _NULLABLE_STRING,
        'OS-EXT-SRV-ATTR:user_data': _NULLABLE_STRING,
    },
    'required': ['id', 'name', 'status', 'tenant_id', 'user_id', 'metadata',
                 'image', 'flavor', 'created', 'updated', 'addresses',
                 'links', 'OS-EXT-STS:task_state', 'OS-EXT-STS:vm_state',
                 'OS-EXT-STS:power_state'],
    'additionalProperties': False,
}

SHOW_RESPONSE = {
    'type': 'object',
    'properties': {'server': SERVER},
    'required': ['server'],
    'additionalProperties': False,
}

DETAIL_RESPONSE = {
    'type': 'object',
    'properties': {'servers': {'type': 'array', 'items': SERVER}},
    'required': ['servers'],
    'additionalProperties': False,
}

INDEX_RESPONSE = {
    'type': 'object',
    'properties': {
        'servers': {
            'type': 'array',
            'items': {
                'type': 'object',
                'properties': {
                    'id': {'type': 'string'},
                    'name': {'type': 'string'},
                    'links': _LINKS,
                },
                'required': ['id', 'name', 'links'],
                'additionalProperties': False,
            },
        },
    },
    'required': ['servers'],
    'additionalProperties': False,
}

CREATE_RESPONSE = {
    'type': 'object',
    'properties': {
        'server': {
            'type': 'object',
            'properties': {
                'id': {'type': 'string', 'pattern': UUID_PATTERN},
                'links': _LINKS,
                'OS-DCF:diskConfig': DISK_CONFIG,
                'security_groups': SERVER['properties']['security_groups'],
                'adminPass': {'type': 'string'},
            },
            'required': ['id', 'links'],
            'additionalProperties': False,
        },
    },
    'required': ['server'],
    'additionalProperties': False,
}

# return_reservation_id: the request's reservation id, no server.
CREATE_RESERVATION_RESPONSE = {
    'type': 'object',
    'properties': {'reservation_id': {'type': 'string'}},
    'required': ['reservation_id'],
    'additionalProperties': False,
}

CONSOLE_OUTPUT_RESPONSE = {
    'type': 'object',
    'properties': {'output': {'type': 'string'}},
    'required': ['output'],
    'additionalProperties': False,
}

for _schema in (CREATE, CREATE_V237, CREATE_IMAGE, STOP, START, PAUSE,
                UNPAUSE, SUSPEND, RESUME, GET_CONSOLE_OUTPUT,
                CREATE_IMAGE_RESPONSE_V245, SHOW_RESPONSE, DETAIL_RESPONSE,
                INDEX_RESPONSE, CREATE_RESPONSE, CREATE_RESERVATION_RESPONSE,
                CONSOLE_OUTPUT_RESPONSE):
    validation.check_schema(_schema)


# The ``<collection>_links`` of a full page: one "next" link (Nova's
# servers_links, images_links).
NEXT_LINKS = {
    'type': 'array',
    'items': {
        'type': 'object',
        'properties': {'rel': {'type': 'string', 'enum': ['next']},
                       'href': {'type': 'string'}},
        'required': ['rel', 'href'],
        'additionalProperties': False,
    },
    'minItems': 1,
    'maxItems': 1,
}
