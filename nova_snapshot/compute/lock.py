"""The server lock (Nova's os-lock-server actions and its lock check).

A locked server refuses the state-changing actions of anyone who is not an
admin: :func:`check` is Nova's ``check_instance_lock`` and every such
action of ``ComputeAPI`` calls it first (Nova's list: delete, stop, start,
reboot, rebuild, pause, unpause, suspend, resume, shelve, shelve offload,
unshelve, attach and detach volume). createImage and createBackup do not
check it, as in Nova.

Who holds the lock matters for unlocking: ``owner`` when a user of the
server's project locked it, ``admin`` when someone from another project (an
admin) did. Unlocking a lock held by the other side needs the
``unlock:unlock_override`` policy (the handler checks it).

The lock is a row update, not a task state: it never waits for or blocks
a running action, exactly as in Nova.
"""

import logging

from nova_snapshot import exception

LOG = logging.getLogger(__name__)

OWNER = 'owner'
ADMIN = 'admin'
# Nova's instance action names and the API events its wrap_instance_event
# (prefix 'api') records under them.
ACTION_LOCK = 'lock'
ACTION_UNLOCK = 'unlock'


def check(context, instance):
    """Nova's ``check_instance_lock``: 409 for a non-admin caller when the
    server is locked.

    :raises: InstanceIsLocked.
    """
    if instance.get('locked') and not context.is_admin:
        raise exception.InstanceIsLocked(instance_uuid=instance['uuid'])


def holder_for(context, instance):
    """Who a lock by this caller is held by: the server's own project is
    the owner, anyone else an admin."""
    return OWNER if instance.get('project_id') == context.project_id \
        else ADMIN


def is_expected_locked_by(context, instance):
    """Nova's ``is_expected_locked_by``: unlocked, or locked by the side
    the caller is on."""
    locked_by = instance.get('locked_by')
    return not locked_by or locked_by == holder_for(context, instance)


def _recorded(db, context, instance, action, work):
    """``work()`` under the instance action ``action`` and its ``api_``
    event (Nova's wrap_instance_event with prefix 'api')."""
    uuid = instance['uuid']
    event = 'api_%s' % action
    db.action_start(context, uuid, action)
    db.action_event_start(context, uuid, event)
    try:
        result = work()
    except Exception as exc:
        try:
            db.action_event_finish(context, uuid, event, 'Error',
                                   details='%s: %s' % (type(exc).__name__,
                                                       exc))
        except Exception:
            LOG.warning('Could not finish event %s of %s', event, uuid,
                        exc_info=True)
        raise
    db.action_event_finish(context, uuid, event, 'Success')
    return result


def lock(db, context, instance, reason=None):
    """Lock the server; returns the instance as it is afterwards.

    The owner locking a locked server changes nothing (and records
    nothing), as in Nova; an admin's lock takes over any lock.
    """
    holder = holder_for(context, instance)
    if instance.get('locked') and holder == OWNER:
        return instance
    return _recorded(db, context, instance, ACTION_LOCK, lambda: db.
                     instance_lock(instance['uuid'], holder, reason,
                                   only_if_unlocked=holder == OWNER))


def unlock(db, context, instance):
    """Unlock the server (the caller's right to lift this lock is checked
    by the policy before). Returns the instance afterwards."""
    return _recorded(db, context, instance, ACTION_UNLOCK,
                     lambda: db.instance_unlock(instance['uuid']))
