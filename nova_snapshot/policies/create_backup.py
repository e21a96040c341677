"""Policy of the createBackup server action (Nova's rule name and
default)."""

from nova_snapshot.policies import base

BASE_POLICY_NAME = 'os_compute_api:os-create-backup'

rules = [
    base.server_action(
        BASE_POLICY_NAME, 'createBackup', base.PROJECT_MEMBER_OR_ADMIN,
        'Create a backup image of a server (createBackup).'),
]


def list_rules():
    return rules
