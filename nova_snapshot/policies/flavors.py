"""Policies for /flavors.

Nova lets any authenticated user read flavors without a rule; we still put
a reader rule in front so every route is policed (and operators can close
it).
"""

from oslo_policy import policy

from nova_snapshot.policies import base

PREFIX = 'os_compute_api:flavors:%s'
INDEX = PREFIX % 'index'
SHOW = PREFIX % 'show'

rules = [
    policy.DocumentedRuleDefault(
        name=INDEX, check_str=base.PROJECT_READER_OR_ADMIN,
        description='List flavors.',
        operations=[{'method': 'GET', 'path': '/flavors'},
                    {'method': 'GET', 'path': '/flavors/detail'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name=SHOW, check_str=base.PROJECT_READER_OR_ADMIN,
        description='Show a flavor.',
        operations=[{'method': 'GET', 'path': '/flavors/{flavor_id}'}],
        scope_types=['project']),
]


def list_rules():
    return rules
