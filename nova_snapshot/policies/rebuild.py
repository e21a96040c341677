"""Policy of the rebuild server action (Nova's rule name and default)."""

from nova_snapshot.policies import base

REBUILD = 'os_compute_api:servers:rebuild'

rules = [
    base.server_action(
        REBUILD, 'rebuild', base.PROJECT_MEMBER_OR_ADMIN,
        'Rebuild a server from an image (its root disk is replaced).'),
]


def list_rules():
    return rules
