from oslo_config import cfg

GROUP = 'glance'

OPTS = [
    cfg.URIOpt('api_endpoint', default='http://127.0.0.1:9292',
               help='Glance API endpoint (without the /v2 suffix).'),
    cfg.StrOpt('auth_mode', default='identity_headers',
               choices=('identity_headers', 'token'),
               help='"identity_headers" sends X-Project-Id/X-User-Id/X-Roles '
                    'to a Glance that trusts them (no Keystone); "token" '
                    'forwards the request token.'),
    cfg.IntOpt('num_retries', default=3, min=0,
               help='Retries for calls that failed to connect (never for an '
                    'upload that has started sending data).'),
    cfg.IntOpt('upload_chunk_size', default=1024 * 1024, min=4096,
               help='Bytes per chunk when streaming image data.'),
]


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return {GROUP: OPTS}
