from oslo_config import cfg

GROUP = 'cinder'

OPTS = [
    cfg.URIOpt('api_endpoint', default='http://127.0.0.1:8776/v3',
               help='Cinder v3 endpoint (volume-backed servers).'),
]


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return {GROUP: OPTS}
