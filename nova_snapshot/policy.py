"""The policy enforcer, built from a ConfigOpts passed in.

``Enforcer(conf)`` wraps oslo.policy with our defaults registered;
``authorize()`` raises our PolicyNotAuthorized (403) rather than oslo's
exception, including when a token's scope does not fit the rule.
``get_enforcer()`` exists only for the oslopolicy-* command line tools.
"""

from oslo_config import cfg
from oslo_policy import policy as oslo_policy

from nova_snapshot import exception
from nova_snapshot import policies


class Enforcer:

    def __init__(self, conf, policy_file=None):
        self._enforcer = oslo_policy.Enforcer(
            conf, policy_file=policy_file, use_conf=True)
        self._enforcer.register_defaults(policies.list_rules())

    @property
    def oslo_enforcer(self):
        return self._enforcer

    def authorize(self, action, target, context, fatal=True):
        """Check ``action`` for ``context`` on ``target``.

        :returns: True or False when ``fatal`` is False.
        :raises PolicyNotAuthorized: when denied and ``fatal``.
        """
        try:
            return self._enforcer.authorize(
                action, target, context, do_raise=fatal,
                exc=exception.PolicyNotAuthorized, action=action)
        except oslo_policy.InvalidScope:
            if fatal:
                raise exception.PolicyNotAuthorized(action=action)
            return False


def get_enforcer():
    """Return an oslo.policy Enforcer for the oslopolicy-* tools."""
    conf = cfg.ConfigOpts()
    conf([], project='nova-snapshot')
    return Enforcer(conf).oslo_enforcer
