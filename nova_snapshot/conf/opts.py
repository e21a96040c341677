"""Option listing for oslo-config-generator (entry point oslo.config.opts)."""

from nova_snapshot.conf import api
from nova_snapshot.conf import cinder
from nova_snapshot.conf import compute
from nova_snapshot.conf import database
from nova_snapshot.conf import glance
from nova_snapshot.conf import libvirt
from nova_snapshot.conf import reconciler
from nova_snapshot.conf import rpc
from nova_snapshot.conf import service_user


def list_opts():
    opts = {}
    for module in (api, cinder, compute, database, glance, libvirt,
                   reconciler, rpc, service_user):
        for group, group_opts in module.list_opts().items():
            opts.setdefault(group, []).extend(group_opts)
    return sorted(opts.items(), key=lambda item: item[0])


def update_library_defaults():
    """Entry point oslo.config.opts.defaults: the library defaults this
    service changes, so the generated sample shows what it runs with
    (nova_snapshot.rpc.register_opts applies the same at run time)."""
    from oslo_config import cfg
    from oslo_messaging.notify import notifier

    cfg.set_defaults(notifier._notifier_opts,
                     retry=rpc.DEFAULT_NOTIFICATION_RETRY)
