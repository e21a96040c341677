"""Policies for /os-services (Nova's rule names; admin only)."""

from oslo_policy import policy

from nova_snapshot.policies import base

PREFIX = 'os_compute_api:os-services:%s'
LIST = PREFIX % 'list'
UPDATE = PREFIX % 'update'
DELETE = PREFIX % 'delete'

rules = [
    policy.DocumentedRuleDefault(
        name=LIST, check_str=base.ADMIN,
        description='List compute services (status, state, reason).',
        operations=[{'method': 'GET', 'path': '/os-services'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name=UPDATE, check_str=base.ADMIN,
        description='Enable, disable (with a reason) or force down a '
                    'compute service.',
        operations=[{'method': 'PUT', 'path': '/os-services/enable'},
                    {'method': 'PUT', 'path': '/os-services/disable'},
                    {'method': 'PUT',
                     'path': '/os-services/disable-log-reason'},
                    {'method': 'PUT', 'path': '/os-services/force-down'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name=DELETE, check_str=base.ADMIN,
        description='Delete a compute service (refused while it hosts '
                    'servers).',
        operations=[{'method': 'DELETE',
                     'path': '/os-services/{service_id}'}],
        scope_types=['project']),
]


def list_rules():
    return rules
