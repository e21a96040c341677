"""Policies of the os-shelve actions (Nova's names and defaults)."""

from nova_snapshot.policies import base

POLICY_ROOT = 'os_compute_api:os-shelve:%s'
SHELVE = POLICY_ROOT % 'shelve'
UNSHELVE = POLICY_ROOT % 'unshelve'
UNSHELVE_TO_HOST = POLICY_ROOT % 'unshelve_to_host'
SHELVE_OFFLOAD = POLICY_ROOT % 'shelve_offload'
# One rule per action body key.
_action = base.server_action

rules = [
    _action(SHELVE, 'shelve', base.PROJECT_MEMBER_OR_ADMIN, 'Shelve server'),
    _action(UNSHELVE, 'unshelve', base.PROJECT_MEMBER_OR_ADMIN,
            'Unshelve (restore) shelved server'),
    _action(UNSHELVE_TO_HOST, 'unshelve', base.ADMIN,
            'Unshelve (restore) shelve offloaded server to a specific host'),
    _action(SHELVE_OFFLOAD, 'shelveOffload', base.ADMIN,
            'Shelf-offload (remove) server'),
]


def list_rules():
    return rules
