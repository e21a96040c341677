"""WSGI entry point for uWSGI/gunicorn: ``nova_snapshot.wsgi.api:application``.

Configuration files: ``NOVA_SNAPSHOT_CONFIG_FILE`` (several may be given,
separated by commas), else /etc/nova-snapshot/nova-snapshot.conf.
"""

import os

from oslo_log import log as logging

from nova_snapshot.api import deploy
from nova_snapshot import rpc

CONFIG_FILE_ENV = 'NOVA_SNAPSHOT_CONFIG_FILE'
DEFAULT_CONFIG_FILE = '/etc/nova-snapshot/nova-snapshot.conf'


def init_application():
    files = [f for f in os.environ.get(CONFIG_FILE_ENV, '').split(',') if f]
    conf = deploy.make_conf([], default_config_files=files
                            or [DEFAULT_CONFIG_FILE])
    logging.setup(conf, 'nova-snapshot')
    # No in-memory transport behind uWSGI: casts would reach nobody.
    rpc.check_transport(conf, 'nova-snapshot-api (WSGI)')
    return deploy.loadapp(conf)


application = init_application()
