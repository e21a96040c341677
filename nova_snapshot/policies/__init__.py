"""All policy defaults (entry point ``oslo.policy.policies``)."""

import itertools

from nova_snapshot.policies import base
from nova_snapshot.policies import create_backup
from nova_snapshot.policies import deferred_delete
from nova_snapshot.policies import flavors
from nova_snapshot.policies import images
from nova_snapshot.policies import instance_actions
from nova_snapshot.policies import keypairs
from nova_snapshot.policies import lock
from nova_snapshot.policies import reboot
from nova_snapshot.policies import rebuild
from nova_snapshot.policies import server_external_events
from nova_snapshot.policies import servers
from nova_snapshot.policies import services
from nova_snapshot.policies import shelve
from nova_snapshot.policies import volumes_attachments


def list_rules():
    return list(itertools.chain(
        base.list_rules(),
        servers.list_rules(),
        instance_actions.list_rules(),
        flavors.list_rules(),
        images.list_rules(),
        volumes_attachments.list_rules(),
        services.list_rules(),
        reboot.list_rules(),
        rebuild.list_rules(),
        lock.list_rules(),
        shelve.list_rules(),
        create_backup.list_rules(),
        keypairs.list_rules(),
        deferred_delete.list_rules(),
        server_external_events.list_rules(),
    ))
