"""Soft delete, restore, force delete and the reclaim (Nova's deferred
delete, ``[DEFAULT] reclaim_instance_interval`` > 0).

API side:

* :func:`soft_delete` (DELETE /servers/{id} when the interval is > 0):
  Nova's checks (the lock, task state None, launched), then task state
  ``soft-deleting`` and ``deleted_at`` by compare-and-swap, the ``delete``
  action and the cast. A server this cannot apply to is deleted at once
  (:class:`NotSoftDeletable`, as Nova falls back for a server that never
  ran): one with no host or a host that is down (no compute would ever
  reclaim it) and a shelved one (its guest is gone or kept for the
  unshelve; restoring it to ACTIVE would not be true).
* :func:`restore` (``restore`` action): SOFT_DELETED only; task state
  ``restoring`` and ``deleted_at`` cleared by compare-and-swap, the
  ``restore`` action, the cast.
* :func:`force_delete` (``forceDelete`` action): Nova's checks (the lock,
  task state None, any vm_state), then the normal delete.

Host side: :func:`run_soft_delete` powers the guest off and makes the
server SOFT_DELETED; :func:`run_restore` powers it on and makes it ACTIVE;
both move only from the task state the API set, so a delete arriving
meanwhile wins, and a replay of a lost cast (the reconciler) or a start-up
repair can run them again. :func:`reclaim_expired` is the periodic task:
each SOFT_DELETED server of the host older than the interval goes through
the normal delete (guest, disks, volumes).
"""

import datetime
import logging

from oslo_utils import excutils
from oslo_utils import timeutils

from nova_snapshot.compute import lock as instance_lock
from nova_snapshot.compute import power_state
from nova_snapshot.compute import task_states
from nova_snapshot.compute import vm_states
from nova_snapshot import context as ns_context
from nova_snapshot import exception
from nova_snapshot import fault_injection

LOG = logging.getLogger(__name__)

# Nova's instance action names (a soft delete records 'delete', as Nova's
# _delete does for every kind of delete).
ACTION_DELETE = 'delete'
ACTION_RESTORE = 'restore'
ACTION_FORCE_DELETE = 'forceDelete'
# Action events on the compute host (Nova's wrap_instance_event names).
EVENT_SOFT_DELETE = 'compute_soft_delete_instance'
EVENT_RESTORE = 'compute_restore_instance'
EVENTS = (EVENT_SOFT_DELETE, EVENT_RESTORE)
# Task states the API sets before its cast: one that stays unchanged past
# the reconciler's grace was left by a lost cast.
LOST_CAST_STATES = (task_states.SOFT_DELETING, task_states.RESTORING)
# vm_states a soft delete does not apply to (deleted at once instead).
_NOT_SOFT_DELETABLE = (vm_states.SHELVED, vm_states.SHELVED_OFFLOADED)


class NotSoftDeletable(Exception):
    """This server is deleted at once (the caller does the normal
    delete)."""


def _check_soft_deletable(api, instance):
    from nova_snapshot.compute import api as compute_api
    # Nova's check_instance_state(task_state=None, must_have_launched).
    try:
        compute_api.check_instance_state(instance, ACTION_DELETE)
    except exception.InstanceInvalidState:
        raise NotSoftDeletable()
    if instance['vm_state'] in _NOT_SOFT_DELETABLE or \
            not instance.get('host'):
        raise NotSoftDeletable()


def soft_delete(api, context, instance):
    """Soft-delete ``instance`` (``api``: the ComputeAPI); returns it.

    :raises: InstanceIsLocked; NotSoftDeletable (delete it instead);
        ComputeServiceUnavailable (the cast never left: the task state and
        deleted_at are given back).
    """
    from nova_snapshot.compute import api as compute_api
    instance_lock.check(context, instance)
    _check_soft_deletable(api, instance)
    if not api._host_is_up(instance['host']):
        raise NotSoftDeletable()
    try:
        instance = api.db.instance_update_checked(
            instance['uuid'], {'task_state': task_states.SOFT_DELETING,
                               'deleted_at': timeutils.utcnow(),
                               'progress': 0},
            expected_task_state=None,
            check=lambda current: _check_soft_deletable(api, current))
    except (exception.UnexpectedTaskStateError, NotSoftDeletable):
        # Another action got there first: as Nova, the delete still
        # happens, the normal way.
        raise NotSoftDeletable()
    except exception.InstanceNotFound:
        return instance  # deleted meanwhile: nothing left to do
    api.db.action_start(context, instance['uuid'], ACTION_DELETE)
    try:
        api.rpcapi.soft_delete_instance(context, instance)
    except Exception:
        with excutils.save_and_reraise_exception():
            compute_api.give_back_task_state(
                api.db, instance['uuid'], task_states.SOFT_DELETING,
                deleted_at=None)
    return instance


def restore(api, context, instance):
    """Restore a SOFT_DELETED server; returns it.

    :raises: InstanceIsLocked, InstanceInvalidState (409),
        ComputeServiceUnavailable (503, the server left SOFT_DELETED).
    """
    from nova_snapshot.compute import api as compute_api
    instance_lock.check(context, instance)
    compute_api.check_instance_state(instance, ACTION_RESTORE,
                                     vm_state=(vm_states.SOFT_DELETED,))
    previous = {}

    def still_soft_deleted(current):
        previous['deleted_at'] = current.get('deleted_at')
        compute_api.check_instance_state(current, ACTION_RESTORE,
                                         vm_state=(vm_states.SOFT_DELETED,))
    try:
        instance = api.db.instance_update_checked(
            instance['uuid'], {'task_state': task_states.RESTORING,
                               'deleted_at': None},
            expected_task_state=None, check=still_soft_deleted)
    except (exception.InstanceNotFound,
            exception.UnexpectedTaskStateError) as exc:
        raise compute_api._conflict_from_cas(exc, instance['uuid'],
                                             ACTION_RESTORE)
    api.db.action_start(context, instance['uuid'], ACTION_RESTORE)
    try:
        api.rpcapi.restore_instance(context, instance)
    except Exception:
        with excutils.save_and_reraise_exception():
            compute_api.give_back_task_state(
                api.db, instance['uuid'], task_states.RESTORING,
                deleted_at=previous.get('deleted_at') or timeutils.utcnow())
    return instance


def force_delete(api, context, instance):
    """Nova's force_delete: the lock and task state None are checked
    (any vm_state, launched or not), then the server is deleted at once.

    :raises: InstanceIsLocked, InstanceInvalidState (409).
    """
    from nova_snapshot.compute import api as compute_api
    instance_lock.check(context, instance)
    compute_api.check_instance_state(instance, ACTION_FORCE_DELETE,
                                     must_have_launched=False)
    api.delete(context, instance)


# -- compute side -----------------------------------------------------------


def run_soft_delete(manager, context, instance_uuid):
    """Power the guest off and make the server SOFT_DELETED (``manager``:
    the host's ComputeManager). A failure gives the task state back (the
    server keeps its vm_state, deleted_at cleared, a fault says why), as
    Nova's reverts_task_state does."""
    db = manager.db
    record = manager._record(context, instance_uuid, EVENT_SOFT_DELETE,
                             action='soft_delete')
    record.on_release(lambda exc: _after_failure(
        manager, record, task_states.SOFT_DELETING,
        deleted_at=_deleted_at_after_failed_soft_delete(manager, record)))
    with record:
        instance = db.instance_get(instance_uuid)
        _expect(instance, task_states.SOFT_DELETING)
        record.start(instance)
        fault_injection.point('soft_delete.started')
        if power_state.of_guest(manager.driver, instance) in (
                power_state.RUNNING, power_state.PAUSED):
            manager.driver.power_off(instance)
        record.instance = db.instance_update(
            instance_uuid, {'vm_state': vm_states.SOFT_DELETED,
                            'task_state': None,
                            'power_state': power_state.of_guest(
                                manager.driver, instance)},
            expected_task_state=task_states.SOFT_DELETING)


def run_restore(manager, context, instance_uuid):
    """Power the guest on and make the server ACTIVE. A failure leaves it
    SOFT_DELETED (task state None, a fault) with deleted_at set again, so
    the reclaim still comes."""
    db = manager.db
    record = manager._record(context, instance_uuid, EVENT_RESTORE,
                             action='restore')
    record.on_release(lambda exc: _after_failure(
        manager, record, task_states.RESTORING,
        deleted_at=timeutils.utcnow()))
    with record:
        instance = db.instance_get(instance_uuid)
        _expect(instance, task_states.RESTORING)
        record.start(instance)
        fault_injection.point('restore.started')
        if power_state.of_guest(manager.driver,
                                instance) != power_state.RUNNING:
            manager.driver.power_on(context, instance)
        record.instance = db.instance_update(
            instance_uuid, {'vm_state': vm_states.ACTIVE,
                            'task_state': None,
                            'power_state': power_state.of_guest(
                                manager.driver, instance)},
            expected_task_state=task_states.RESTORING)


def _deleted_at_after_failed_soft_delete(manager, record):
    """None for a server that stays live; a server that was SOFT_DELETED
    already (a second DELETE) keeps a deleted_at, so it is still
    reclaimed."""
    try:
        current = manager.db.instance_get(record.instance_uuid)
    except exception.InstanceNotFound:
        return None
    if current.get('vm_state') == vm_states.SOFT_DELETED:
        return timeutils.utcnow()
    return None


def _expect(instance, task_state):
    if instance['task_state'] != task_state:
        error = exception.UnexpectedTaskStateError
        if instance['task_state'] == task_states.DELETING:
            error = exception.UnexpectedDeletingTaskStateError
        raise error(instance_uuid=instance['uuid'], expected=task_state,
                    actual=instance['task_state'])


def _after_failure(manager, record, expected, **values):
    values.update(task_state=None,
                  power_state=power_state.of_guest(
                      manager.driver, {'uuid': record.instance_uuid}))
    try:
        record.instance = manager.db.instance_update(
            record.instance_uuid, values, expected_task_state=expected)
    except (exception.InstanceNotFound, exception.UnexpectedTaskStateError):
        pass


def rerun(manager, instance):
    """Run the soft delete or restore that ``instance``'s task state
    names again, under the request's id (a start-up repair or the
    reconciler's replay of a lost cast; both steps are idempotent: power
    off or on, then the vm_state by compare-and-swap, so a late cast or a
    delete arriving meanwhile wins). Returns True when it ran one."""
    task_state = instance['task_state']
    if task_state not in LOST_CAST_STATES:
        return False
    restoring = task_state == task_states.RESTORING
    context = _context_of(manager, instance,
                          ACTION_RESTORE if restoring else ACTION_DELETE)
    if restoring:
        run_restore(manager, context, instance['uuid'])
    else:
        run_soft_delete(manager, context, instance['uuid'])
    return True


def repair_at_start_up(manager, instance):
    """A soft delete or restore interrupted by a restart of this service
    is finished; returns the instance afterwards, or None when it was not
    one of these (or is gone)."""
    if instance['task_state'] not in LOST_CAST_STATES:
        return None
    LOG.warning('Instance %s was in task_state %s at start-up; finishing '
                'it', instance['uuid'], instance['task_state'])
    rerun(manager, instance)
    try:
        return manager.db.instance_get(instance['uuid'])
    except exception.InstanceNotFound:
        return None


def _context_of(manager, instance, action_name):
    """The context of the request that set the task state (its request
    id, so the work is recorded under its action), acting as the
    server's project."""
    request_id = None
    for action in manager.db.actions_get(instance['uuid']):
        if action.get('action') == action_name:
            request_id = action['request_id']
            break
    return project_context(instance, request_id)


def project_context(instance, request_id=None):
    kwargs = {}
    if request_id:
        kwargs['request_id'] = request_id
    return ns_context.RequestContext(
        user_id=instance.get('user_id'),
        project_id=instance.get('project_id'),
        roles=['member', 'reader'], overwrite=False, **kwargs)


def _expired(instance, interval, now):
    deleted_at = instance.get('deleted_at')
    if deleted_at is None:
        return False
    if not isinstance(deleted_at, datetime.datetime):
        try:
            deleted_at = timeutils.parse_isotime(str(deleted_at))
        except ValueError:
            return False
    deleted_at = timeutils.normalize_time(deleted_at)
    return (now - deleted_at).total_seconds() >= interval


def reclaim_expired(manager, now=None):
    """Delete for good this host's servers SOFT_DELETED longer than
    ``reclaim_instance_interval`` (Nova's _reclaim_queued_deletes): task
    state ``deleting`` by compare-and-swap from (SOFT_DELETED, None), then
    the normal delete (guest and disks, volumes by delete_on_termination,
    the row). Returns the UUIDs reclaimed."""
    interval = manager.conf.reclaim_instance_interval
    if interval <= 0:
        return []
    now = now or timeutils.utcnow()
    done = []
    for instance in manager.db.instance_get_all(host=manager.host):
        if instance['vm_state'] != vm_states.SOFT_DELETED or \
                instance['task_state'] is not None or \
                not _expired(instance, interval, now):
            continue
        try:
            instance = manager.db.instance_update(
                instance['uuid'], {'task_state': task_states.DELETING},
                expected_task_state=None,
                expected_vm_state=vm_states.SOFT_DELETED)
        except (exception.InstanceNotFound,
                exception.UnexpectedTaskStateError):
            continue  # restored or deleted meanwhile
        LOG.info('Reclaiming instance %s, soft-deleted at %s',
                 instance['uuid'], instance.get('deleted_at'))
        try:
            manager._do_terminate(project_context(instance), instance)
        except Exception:
            # Left in 'deleting' on this host: the start-up repair or a
            # user's delete finishes it.
            LOG.exception('Could not reclaim instance %s', instance['uuid'])
            continue
        done.append(instance['uuid'])
    return done
