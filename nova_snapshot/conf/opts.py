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
