"""``[service_user]``: the identity this service adds to its calls.

As in Nova: with ``send_service_user_token`` every Glance and Cinder call
made for a user carries, next to the user's token, a token of this service
user (``X-Service-Token``). Services that set keystonemiddleware's
``service_token_roles_required`` then accept the user's token even after it
expired, so a snapshot that takes longer than a token lives still uploads.
Work that has no user token (start-up clean-up) authenticates as this user
when ``[glance]``/``[cinder]`` have no credentials of their own.
"""

from oslo_config import cfg

from nova_snapshot.conf import keystoneauth

GROUP = 'service_user'

OPTS = [
    cfg.BoolOpt('send_service_user_token', default=False,
                help='Send this service user\'s token (X-Service-Token) '
                     'with the user\'s token on calls to Glance and Cinder. '
                     'Needs the auth options of this section; the user '
                     'should have the "service" role.'),
]


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)
    keystoneauth.register(conf, GROUP)


def list_opts():
    return {GROUP: OPTS + keystoneauth.list_opts()}
