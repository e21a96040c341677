"""Policy of the reboot server action (Nova's rule name and default)."""

from oslo_policy import policy

from nova_snapshot.policies import base

REBOOT = 'os_compute_api:servers:reboot'

rules = [
    policy.DocumentedRuleDefault(
        name=REBOOT, check_str=base.PROJECT_MEMBER_OR_ADMIN,
        description='Reboot a server (soft or hard).',
        operations=[{'method': 'POST',
                     'path': '/servers/{server_id}/action (reboot)'}],
        scope_types=['project']),
]


def list_rules():
    return rules
