from oslo_config import cfg

from nova_snapshot.conf import keystoneauth

GROUP = 'cinder'
# keystoneauth matches the catalog's volumev3 (and volume) by alias.
SERVICE_TYPE = 'block-storage'

OPTS = [
    cfg.URIOpt('api_endpoint',
               deprecated_for_removal=True,
               deprecated_reason='Use endpoint_override (it may contain '
                                 '%(project_id)s), or the catalog.',
               help='Cinder v3 endpoint without the project id (it is '
                    'appended per request). When set, and '
                    'endpoint_override is not, it is used instead of the '
                    'catalog.'),
    cfg.StrOpt('auth_mode', default='keystone',
               choices=(('keystone', 'The caller\'s token (and the service '
                         'user\'s with [service_user] '
                         'send_service_user_token): Cinder checks the '
                         'caller\'s project. Calls without a user token use '
                         'this section\'s or [service_user]\'s '
                         'credentials.'),
                        ('token', 'Deprecated name of "keystone".'),
                        ('noauth', 'Development only: talk to a Cinder with '
                         'auth_strategy = noauth as "user:project" of the '
                         'request context (the project id must be hex), '
                         'marked as coming from a service (X-Service-Roles). '
                         'Cinder then treats every caller as an admin of '
                         'its project: reads by id cross projects.')),
               help='How calls to Cinder are authenticated.'),
    cfg.StrOpt('api_microversion', default='3.44',
               help='Block Storage API microversion. 3.44 is the lowest '
                    'with the attachments API including attachment '
                    'complete (what Nova uses). Below 3.66 a snapshot of an '
                    'in-use volume needs force=True, which '
                    'create_snapshot_force always sends.'),
    cfg.FloatOpt('volume_wait_timeout_per_gib', default=5.0, min=0,
                 help='Seconds allowed per GiB of volume size when waiting '
                      'for a volume to become available (image downloads '
                      'and conversions scale with the size).'),
    cfg.FloatOpt('min_wait_timeout', default=60.0, min=0,
                 help='Lower bound, in seconds, of every size-scaled wait '
                      'for a volume or snapshot.'),
    cfg.FloatOpt('poll_interval', default=0.2, min=0.01,
                 help='Seconds between status polls while waiting for a '
                      'volume or snapshot.'),
]


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)
    keystoneauth.register(conf, GROUP, service_type=SERVICE_TYPE)


def list_opts():
    return {GROUP: OPTS + keystoneauth.list_opts(SERVICE_TYPE)}
