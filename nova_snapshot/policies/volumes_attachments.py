"""Policies for /servers/{server_id}/os-volume_attachments (Nova's names
and defaults: readers list and show, members attach and detach)."""

from oslo_policy import policy

from nova_snapshot.policies import base

PREFIX = 'os_compute_api:os-volumes-attachments:%s'
INDEX = PREFIX % 'index'
SHOW = PREFIX % 'show'
CREATE = PREFIX % 'create'
DELETE = PREFIX % 'delete'

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
]


def list_rules():
    return rules
