from oslo_config import cfg

from nova_snapshot.conf import keystoneauth

GROUP = 'glance'
SERVICE_TYPE = 'image'

OPTS = [
    cfg.URIOpt('api_endpoint',
               deprecated_for_removal=True,
               deprecated_reason='Use endpoint_override, or the catalog.',
               help='Glance API endpoint (without the /v2 suffix). When '
                    'set, and endpoint_override is not, it is used instead '
                    'of the catalog.'),
    cfg.StrOpt('auth_mode', default='keystone',
               choices=(('keystone', 'The caller\'s token (and the service '
                         'user\'s with [service_user] '
                         'send_service_user_token); calls without a user '
                         'token use this section\'s or [service_user]\'s '
                         'credentials.'),
                        ('token', 'Deprecated name of "keystone".'),
                        ('identity_headers', 'Development only: send '
                         'X-Project-Id/X-User-Id/X-Roles to a Glance that '
                         'trusts them (no Keystone).')),
               help='How calls to Glance are authenticated.'),
    cfg.IntOpt('num_retries', default=3, min=0,
               help='Retries for calls that failed to connect (never for an '
                    'upload that has started sending data).'),
    cfg.IntOpt('upload_chunk_size', default=1024 * 1024, min=4096,
               help='Bytes per chunk when streaming image data.'),
]


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)
    keystoneauth.register(conf, GROUP, service_type=SERVICE_TYPE)


def list_opts():
    return {GROUP: OPTS + keystoneauth.list_opts(SERVICE_TYPE)}
