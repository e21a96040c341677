"""Policies of /os-keypairs (Nova's rule names and defaults).

Every rule's target is ``{'user_id': <the keypair's user>}``: the caller's
own user, or the one an admin names with ``user_id`` (from 2.10). So the
default, an admin or the owner, lets a user manage only their own
keypairs, in any of their projects.
"""

from oslo_policy import policy

from nova_snapshot.policies import base

ROOT = 'os_compute_api:os-keypairs:%s'
INDEX = ROOT % 'index'
CREATE = ROOT % 'create'
SHOW = ROOT % 'show'
DELETE = ROOT % 'delete'
ADMIN_OR_OWNER = '(%s) or user_id:%%(user_id)s' % base.ADMIN


def _rule(name, description, method, path):
    return policy.DocumentedRuleDefault(
        name=name, check_str=ADMIN_OR_OWNER, description=description,
        operations=[{'method': method, 'path': path}],
        scope_types=['project'])


rules = [
    _rule(INDEX, 'List all keypairs', 'GET', '/os-keypairs'),
    _rule(CREATE, 'Create a keypair', 'POST', '/os-keypairs'),
    _rule(DELETE, 'Delete a keypair', 'DELETE',
          '/os-keypairs/{keypair_name}'),
    _rule(SHOW, 'Show details of a keypair', 'GET',
          '/os-keypairs/{keypair_name}'),
]


def list_rules():
    return rules
