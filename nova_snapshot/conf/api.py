from oslo_config import cfg
from oslo_middleware import sizelimit

GROUP = 'api'

OPTS = [
    cfg.StrOpt('auth_strategy', default='keystone',
               choices=(('keystone', 'keystonemiddleware auth_token '
                         'validates the token (options in '
                         '[keystone_authtoken]).'),
                        ('noauth', 'Development and tests only: trusts an '
                         'X-Auth-Token of the form "user:project"; the '
                         'user "admin" is an admin, everybody else a member '
                         'and reader. Logs a warning at start.')),
               help='How API requests are authenticated.'),
    cfg.HostAddressOpt('bind_host', default='127.0.0.1',
                       help='Address nova-snapshot-api listens on.'),
    cfg.PortOpt('bind_port', default=8774,
                help='Port nova-snapshot-api listens on.'),
    cfg.BoolOpt('enable_instance_password', default=True,
                help='Return the admin password in the server create '
                     'response, as Nova does: the adminPass the request '
                     'gave, or a generated one. The password is only '
                     'returned; nothing sets it in the guest (Nova needs a '
                     'guest agent or config drive for that too).'),
    cfg.StrOpt('response_validation', default='warn',
               choices=('error', 'warn', 'ignore'),
               help='What to do when a response body does not match its '
                    'schema: tests use "error".'),
    cfg.IntOpt('max_servers_per_request', default=10, min=1,
               help='Most servers one create request makes (the request\'s '
                    'max_count; os-multiple-create). A larger max_count is '
                    'lowered to this, as Nova lowers it to what the '
                    'instances quota allows; a min_count above it is a 403 '
                    'quota fault and creates nothing. The default is Nova\'s '
                    'default instances quota.'),
    cfg.IntOpt('max_limit', default=1000, min=0,
               help='Most items one list request returns (Nova\'s '
                    '[api] max_limit); a full page links to the next.'),
    cfg.IntOpt('server_threads', default=32, min=1,
               help='Requests nova-snapshot-api (the development server) '
                    'handles at once; further connections wait in the '
                    'listen backlog. Keep at most [database] max_pool_size '
                    '+ max_overflow, since each request holds one '
                    'database connection at a time.'),
    cfg.IntOpt('backlog', default=256, min=1,
               help='Listen backlog of nova-snapshot-api: connections the '
                    'kernel accepts and queues while every server thread '
                    'is busy (capped by net.core.somaxconn).'),
]


# oslo.middleware's [oslo_middleware] max_request_body_size (default 112 KiB,
# as in Nova): a request body larger than that is refused with 413 before
# anything reads it (api/deploy.py BodySizeLimit). Registered here so it is
# set before the middleware is built and listed in the sample config.
SIZELIMIT_GROUP = 'oslo_middleware'
SIZELIMIT_OPTS = sizelimit.OPTS


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)
    conf.register_opts(SIZELIMIT_OPTS, group=SIZELIMIT_GROUP)


def list_opts():
    return {GROUP: OPTS, SIZELIMIT_GROUP: SIZELIMIT_OPTS}
