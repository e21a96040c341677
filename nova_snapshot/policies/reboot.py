"""Policy of the reboot server action (Nova's rule name and default)."""

from nova_snapshot.policies import base

REBOOT = 'os_compute_api:servers:reboot'

rules = [
    base.server_action(
        REBOOT, 'reboot', base.PROJECT_MEMBER_OR_ADMIN,
        'Reboot a server (soft or hard).'),
]


def list_rules():
    return rules
