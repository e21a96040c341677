"""Policy of the rebuild server action (Nova's rule name and default)."""

from oslo_policy import policy

from nova_snapshot.policies import base

REBUILD = 'os_compute_api:servers:rebuild'

rules = [
    policy.DocumentedRuleDefault(
        name=REBUILD, check_str=base.PROJECT_MEMBER_OR_ADMIN,
        description='Rebuild a server from an image (its root disk is '
                    'replaced).',
        operations=[{'method': 'POST',
                     'path': '/servers/{server_id}/action (rebuild)'}],
        scope_types=['project']),
]


def list_rules():
    return rules
