"""Policy of POST /os-server-external-events (Nova's rule name and default:
the service role or an admin)."""

from oslo_policy import policy

from nova_snapshot.policies import base

CREATE = 'os_compute_api:os-server-external-events:create'

rules = [
    policy.DocumentedRuleDefault(
        name=CREATE, check_str=base.SERVICE_OR_ADMIN,
        description='Create one or more external events (sent by Cinder '
                    'and Neutron, not by users).',
        operations=[{'method': 'POST',
                     'path': '/os-server-external-events'}],
        scope_types=['project']),
]


def list_rules():
    return rules
