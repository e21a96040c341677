"""Configuration options, registered per group on a ConfigOpts passed in.

Nothing here keeps a global ConfigOpts: every entry point builds its own with
:func:`nova_snapshot.conf.new_conf` and hands it down.
"""

from oslo_config import cfg

from nova_snapshot.conf import api
from nova_snapshot.conf import cinder
from nova_snapshot.conf import compute
from nova_snapshot.conf import database
from nova_snapshot.conf import glance
from nova_snapshot.conf import libvirt
from nova_snapshot.conf import reconciler
from nova_snapshot.conf import rpc
from nova_snapshot.conf import service_user

_MODULES = (api, cinder, compute, database, glance, libvirt,
            reconciler, rpc, service_user)


def register_opts(conf):
    for module in _MODULES:
        module.register_opts(conf)


def new_conf(args=None, default_config_files=None):
    """Return a fresh ConfigOpts with every option registered and parsed."""
    conf = cfg.ConfigOpts()
    register_opts(conf)
    conf(args if args is not None else [], project='nova-snapshot',
         default_config_files=default_config_files)
    return conf
