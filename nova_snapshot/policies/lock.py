"""Policies of the lock and unlock server actions (Nova's
``os-lock-server`` rule names and defaults)."""

from nova_snapshot.policies import base

ROOT = 'os_compute_api:os-lock-server:%s'
LOCK = ROOT % 'lock'
UNLOCK = ROOT % 'unlock'
UNLOCK_OVERRIDE = ROOT % 'unlock:unlock_override'
# One rule per action body key.
_action = base.server_action

rules = [
    _action(LOCK, 'lock', base.PROJECT_MEMBER_OR_ADMIN,
            'Lock a server: non-admin users get 409 on its state-changing '
            'actions until it is unlocked.'),
    _action(UNLOCK, 'unlock', base.PROJECT_MEMBER_OR_ADMIN,
            'Unlock a server.'),
    _action(UNLOCK_OVERRIDE, 'unlock', base.ADMIN,
            'Unlock a server locked by someone on the other side (an '
            'owner\'s lock by an admin from another project, or an admin\'s '
            'lock by the owner); checked in addition to unlock.'),
]


def list_rules():
    return rules
