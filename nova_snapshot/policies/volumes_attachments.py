"""Policies for /servers/{server_id}/os-volume_attachments (Nova's names
and defaults: readers list and show, members attach, update (2.85) and
detach, admins swap)."""

from oslo_policy import policy

from nova_snapshot.policies import base

PREFIX = 'os_compute_api:os-volumes-attachments:%s'
INDEX = PREFIX % 'index'
SHOW = PREFIX % 'show'
CREATE = PREFIX % 'create'
DELETE = PREFIX % 'delete'
UPDATE = PREFIX % 'update'
SWAP = PREFIX % 'swap'

_COLLECTION = '/servers/{server_id}/os-volume_attachments'
_ITEM = _COLLECTION + '/{volume_id}'

rules = [
    policy.DocumentedRuleDefault(
        name=INDEX, check_str=base.PROJECT_READER_OR_ADMIN,
        description='List the volumes attached to a server.',
        operations=[{'method': 'GET', 'path': _COLLECTION}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name=CREATE, check_str=base.PROJECT_MEMBER_OR_ADMIN,
        description='Attach a volume to a server.',
        operations=[{'method': 'POST', 'path': _COLLECTION}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name=SHOW, check_str=base.PROJECT_READER_OR_ADMIN,
        description='Show one volume attachment of a server.',
        operations=[{'method': 'GET', 'path': _ITEM}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name=DELETE, check_str=base.PROJECT_MEMBER_OR_ADMIN,
        description='Detach a volume from a server.',
        operations=[{'method': 'DELETE', 'path': _ITEM}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name=UPDATE, check_str=base.PROJECT_MEMBER_OR_ADMIN,
        description='Update a volume attachment of a server (its '
                    'delete_on_termination, from microversion 2.85).',
        operations=[{'method': 'PUT', 'path': _ITEM}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name=SWAP, check_str=base.ADMIN,
        description='Swap the volume of an attachment for another (the '
                    'PUT before 2.85, or with another volumeId; Cinder '
                    'calls it while it migrates a volume).',
        operations=[{'method': 'PUT', 'path': _ITEM}],
        scope_types=['project']),
]


def list_rules():
    return rules
