"""External events from other services (Nova's os-server-external-events):
what each accepted event does here.

Nova casts accepted events to the server's compute host, where they refresh
network caches, resize an extended volume in the guest, change the power
state (Ironic) or wake a thread that waits for them. Nothing on a compute
host here waits for an event or needs one, so every event is handled in
the API, at once, whatever the state of the server's host (Nova's cast to
a host that is down is queued, and its API answers 200 as well):

``volume-extended``
    The instance action ``extend_volume`` is recorded, as Nova records it.
    The guest is not told: no driver here resizes an attached disk of a
    running guest (Nova's ``extend_volume`` driver call); QEMU reads the
    new size of the RBD image when the guest starts again (hard reboot,
    stop and start). Logged with that advice.
``volume-reimaged``
    Logged. A 2.93 rebuild does not wait for this event: it polls the
    root volume's status until it is ``reserved`` again
    (``compute/rebuild.py``, ``[cinder] poll_interval``, 0.2 s), because
    Cinder may not be configured to send it; the event would save at most
    one poll interval.
``network-changed``, ``network-vif-plugged``, ``network-vif-unplugged``, ``network-vif-deleted``
    No-ops: there is no networking service here (servers have no ports),
    so there is no cache to refresh and no interface to remove. Logged.
``power-update``
    Logged, not applied: it is Ironic's way to report a power change made
    outside Nova; no driver here has a power state changed by others
    (Nova's libvirt driver does not implement it either). No instance
    action is recorded, since no power change will follow.
``accelerator-request-bound``
    Logged: there are no accelerators (Cyborg) here, so nobody waits.
"""

import logging

from nova_snapshot.compute import rebuild
from nova_snapshot.compute import task_states
from nova_snapshot import exception

LOG = logging.getLogger(__name__)

# Nova's instance_actions.EXTEND_VOLUME.
EXTEND_VOLUME_ACTION = 'extend_volume'
NETWORK_EVENTS = frozenset(['network-changed', 'network-vif-plugged',
                            'network-vif-unplugged', 'network-vif-deleted'])


def find_servers(db, uuids):
    """{uuid: instance} of the live servers among ``uuids`` (of any
    project: the caller is a service or an admin)."""
    found = {}
    for uuid in set(uuids):
        try:
            found[uuid] = db.instance_get(uuid)
        except exception.InstanceNotFound:
            pass
    return found


def _volume_extended(db, context, instance, event):
    uuid = instance['uuid']
    volume_id = event.get('tag')
    db.action_start(context, uuid, EXTEND_VOLUME_ACTION)
    attached = any(bdm.get('volume_id') == volume_id
                   for bdm in db.bdm_get_by_instance(uuid))
    if not attached:
        # Nova's compute host logs the same and does nothing more.
        LOG.warning('volume-extended for server %s: volume %s is not '
                    'attached to it', uuid, volume_id)
        return
    LOG.info('Cinder extended volume %s of server %s; the guest sees the '
             'new size after its next hard reboot or start (no driver here '
             'resizes an attached disk live)', volume_id, uuid)


def _volume_reimaged(db, context, instance, event):
    uuid = instance['uuid']
    reimaging = (instance.get('system_metadata') or {}).get(rebuild.REIMAGE_KEY)
    waiting = (reimaging and instance.get('task_state') ==
               task_states.REBUILD_BLOCK_DEVICE_MAPPING)
    if waiting:
        LOG.info('volume-reimaged (%s) for volume %s of server %s: the '
                 'rebuild polls the volume and goes on when it is reserved '
                 'again', event['status'], event.get('tag'), uuid)
    else:
        # Nova's "Received unexpected event": nobody waits for it.
        LOG.warning('volume-reimaged (%s) for volume %s of server %s, '
                    'which is not re-imaging its root volume (task state '
                    '%s)', event['status'], event.get('tag'), uuid,
                    instance.get('task_state'))


def _logged_only(reason):
    def handle(db, context, instance, event):
        LOG.info('%s (%s, tag %s) for server %s: %s', event['name'],
                 event['status'], event.get('tag'), instance['uuid'],
                 reason)
    return handle


_NO_NETWORKING = _logged_only('nothing to do, there is no networking '
                              'service here')
HANDLERS = {
    'volume-extended': _volume_extended,
    'volume-reimaged': _volume_reimaged,
    'power-update': _logged_only(
        'not applied, no driver here takes a power change from outside'),
    'accelerator-request-bound': _logged_only(
        'nothing to do, there are no accelerators here'),
}
HANDLERS.update({name: _NO_NETWORKING for name in NETWORK_EVENTS})


def handle(db, context, instance, event):
    """Do what an accepted ``event`` (name, status, tag) asks for
    ``instance``."""
    HANDLERS[event['name']](db, context, instance, event)
