"""WSGI entry point for uWSGI/gunicorn: ``nova_snapshot.wsgi.api:application``.

Configuration files: ``NOVA_SNAPSHOT_CONFIG_FILE`` (several may be given,
separated by commas), else /etc/nova-snapshot/nova-snapshot.conf.
"""

import os

from oslo_log import log as logging

from nova_snapshot.api import deploy

CONFIG_FILE_ENV = 'NOVA_SNAPSHOT_CONFIG_FILE'
DEFAULT_CONFIG_FILE = '/etc/nova-snapshot/nova-snapshot.conf'


def init_application():
    files = [f for f in os.environ.get(CONFIG_FILE_ENV, '').split(',') if f]
    conf = deploy.make_conf([], default_config_files=files
                            or [DEFAULT_CONFIG_FILE])
    logging.setup(conf, 'nova-snapshot')
    return deploy.loadapp(conf)


application = init_application()
