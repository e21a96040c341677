"""Policies of the deferred delete actions, restore and forceDelete
(Nova's names and defaults)."""

from nova_snapshot.policies import base

POLICY_ROOT = 'os_compute_api:os-deferred-delete:%s'
RESTORE = POLICY_ROOT % 'restore'
FORCE = POLICY_ROOT % 'force'
# One rule per action body key.
_action = base.server_action

rules = [
    _action(RESTORE, 'restore', base.PROJECT_MEMBER_OR_ADMIN,
            'Restore a soft deleted server'),
    _action(FORCE, 'forceDelete', base.PROJECT_MEMBER_OR_ADMIN,
            'Force delete a server before deferred cleanup'),
]


def list_rules():
    return rules
