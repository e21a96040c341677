"""Policies for /servers/{server_id}/os-instance-actions (Nova's names)."""

from oslo_policy import policy

from nova_snapshot.policies import base

PREFIX = 'os_compute_api:os-instance-actions:%s'
LIST = PREFIX % 'list'
SHOW = PREFIX % 'show'
EVENTS = PREFIX % 'events'

rules = [
    policy.DocumentedRuleDefault(
        name=LIST, check_str=base.PROJECT_READER_OR_ADMIN,
        description='List the actions recorded for a server.',
        operations=[{'method': 'GET',
                     'path': '/servers/{server_id}/os-instance-actions'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name=SHOW, check_str=base.PROJECT_READER_OR_ADMIN,
        description='Show one action of a server.',
        operations=[{'method': 'GET',
                     'path': '/servers/{server_id}/os-instance-actions/'
                             '{request_id}'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name=EVENTS, check_str=base.ADMIN,
        description='Include the events (with tracebacks) when showing an '
                    'action.',
        operations=[{'method': 'GET',
                     'path': '/servers/{server_id}/os-instance-actions/'
                             '{request_id}'}],
        scope_types=['project']),
]


def list_rules():
    return rules
