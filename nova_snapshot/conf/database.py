from oslo_config import cfg

GROUP = 'database'

OPTS = [
    cfg.StrOpt('connection', secret=True,
               default='sqlite:////var/lib/nova-snapshot/nova_snapshot.sqlite',
               help='SQLAlchemy URL of the state database. SQLite for one '
                    'machine; postgresql+psycopg2:// or mysql+pymysql:// at '
                    'scale.'),
    cfg.IntOpt('pool_size', default=5, min=1,
               help='Connections kept open per process (not for SQLite).'),
]


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return {GROUP: OPTS}
