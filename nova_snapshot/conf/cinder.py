from oslo_config import cfg

GROUP = 'cinder'

OPTS = [
    cfg.URIOpt('api_endpoint', default='http://127.0.0.1:8776/v3',
               help='Cinder v3 endpoint (volume-backed servers), without '
                    'the project id: it is appended per request.'),
    cfg.StrOpt('auth_mode', default='noauth', choices=('noauth', 'token'),
               help='"noauth" talks to a Cinder with auth_strategy = noauth '
                    'as "user:project" of the request context (the project '
                    'id must be hex) and marks requests as coming from a '
                    'service (X-Service-Roles), as Nova\'s service token '
                    'does; "token" forwards the request token.'),
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


def list_opts():
    return {GROUP: OPTS}
