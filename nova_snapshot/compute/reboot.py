"""Reboot, soft and hard (Nova's ``reboot`` server action).

API side (:func:`request`): the lock check, Nova's state checks, the task
state taken by compare-and-swap (``rebooting`` from None for SOFT;
``rebooting_hard`` from any of Nova's ALLOW_REBOOT task states for HARD,
which is how a user gets a server out of a stuck soft reboot or power
action), the instance action, and the cast; a cast that never left gives
the task state back to what it was and the caller answers 503.

Host side (:func:`run`): ``*_pending`` (from the API's state only) then
``*_started``, each a compare-and-swap, so a hard reboot or a delete
arriving meanwhile wins and this one backs off; the driver's reboot; then
ACTIVE with task state None. A failure leaves the server ACTIVE when its
guest still runs (fault recorded) and ERROR otherwise, as Nova's manager
does.
"""

import logging

from oslo_utils import excutils

from nova_snapshot.compute import lock as instance_lock
from nova_snapshot.compute import power_state
from nova_snapshot.compute import task_states
from nova_snapshot.compute import vm_states
from nova_snapshot import exception
from nova_snapshot import fault_injection

LOG = logging.getLogger(__name__)

ACTION = 'reboot'
EVENT = 'compute_reboot_instance'
SOFT = 'SOFT'
HARD = 'HARD'

# Nova's vm_states.ALLOW_SOFT_REBOOT / ALLOW_HARD_REBOOT (of ours).
ALLOW_SOFT_REBOOT = (vm_states.ACTIVE,)
ALLOW_HARD_REBOOT = (vm_states.ACTIVE, vm_states.STOPPED, vm_states.PAUSED,
                     vm_states.SUSPENDED, vm_states.ERROR)

# type -> (vm_states allowed, task_states allowed, task_state set by the
# API, pending, started, every state of this type)
_TYPES = {
    SOFT: (ALLOW_SOFT_REBOOT, (None,), task_states.REBOOTING,
           task_states.REBOOT_PENDING, task_states.REBOOT_STARTED,
           task_states.SOFT_REBOOT_STATES),
    HARD: (ALLOW_HARD_REBOOT, task_states.ALLOW_REBOOT,
           task_states.REBOOTING_HARD, task_states.REBOOT_PENDING_HARD,
           task_states.REBOOT_STARTED_HARD, task_states.HARD_REBOOT_STATES),
}

# Every task state of a reboot (the start-up repair's list).
REBOOT_STATES = task_states.SOFT_REBOOT_STATES + \
    task_states.HARD_REBOOT_STATES


def request(api, context, instance, reboot_type):
    """Accept a reboot of ``instance`` (a ComputeAPI's db and rpcapi);
    returns the instance with its new task state.

    :raises: InstanceIsLocked, InstanceInvalidState (409),
        ComputeServiceUnavailable (503, the task state given back).
    """
    # Imported here: compute.api imports this module.
    from nova_snapshot.compute import api as compute_api
    reboot_type = reboot_type.upper()
    allowed_vm, allowed_task, new_state = _TYPES[reboot_type][:3]
    instance_lock.check(context, instance)
    compute_api.check_instance_state(instance, ACTION, vm_state=allowed_vm,
                                     task_state=allowed_task)
    previous = {}

    def still_allowed(current):
        previous['task_state'] = current['task_state']
        compute_api.check_instance_state(current, ACTION,
                                         vm_state=allowed_vm,
                                         task_state=allowed_task)
    try:
        instance = api.db.instance_update_checked(
            instance['uuid'], {'task_state': new_state},
            expected_task_state=allowed_task, check=still_allowed)
    except (exception.InstanceNotFound,
            exception.UnexpectedTaskStateError) as exc:
        raise compute_api._conflict_from_cas(exc, instance['uuid'], ACTION)
    api.db.action_start(context, instance['uuid'], ACTION)
    try:
        api.rpcapi.reboot_instance(context, instance, reboot_type)
    except Exception:
        with excutils.save_and_reraise_exception():
            # Nothing will ever move the task state on: give back what
            # the reboot took (a hard reboot may have taken another
            # action's state; that action's own end then still matches).
            compute_api.give_back_task_state(
                api.db, instance['uuid'], new_state,
                task_state=previous.get('task_state'))
    return instance


def run(manager, context, instance_uuid, reboot_type):
    """The compute side of a reboot (``manager``: the host's
    ComputeManager: its db, driver and action records)."""
    reboot_type = reboot_type.upper()
    requested, pending, started, own_states = _TYPES[reboot_type][2:]
    db = manager.db
    record = manager._record(context, instance_uuid, EVENT, action=ACTION)
    record.on_release(lambda exc: _after_failure(manager, record,
                                                 own_states))
    with record:
        instance = db.instance_get(instance_uuid)
        # Acknowledge, only from the state the API set: a hard reboot that
        # took over a soft one makes the soft cast back off, and of a cast
        # and the reconciler's replay of it only one goes on (the default
        # outcomes: someone else's task state is left alone).
        instance = db.instance_update(
            instance_uuid, {'task_state': pending,
                            'power_state': power_state.of_guest(
                                manager.driver, instance)},
            expected_task_state=requested)
        record.start(instance)
        if instance['power_state'] != power_state.RUNNING:
            LOG.warning('Rebooting instance %s which is not running (power '
                        'state %s)', instance_uuid, instance['power_state'])
        instance = db.instance_update(instance_uuid,
                                      {'task_state': started},
                                      expected_task_state=pending)
        record.instance = instance
        fault_injection.point('reboot.started')
        state = manager.driver.reboot(instance, reboot_type)
        if state is None:
            state = manager.driver.get_power_state(instance)
        record.instance = db.instance_update(
            instance_uuid, {'vm_state': vm_states.ACTIVE,
                            'task_state': None, 'power_state': state},
            expected_task_state=started)


def _after_failure(manager, record, own_states):
    """Nova's rule: a guest that still runs stays ACTIVE (the fault says
    what failed); one that does not goes to ERROR. Only while a state of
    this reboot is ours."""
    current = power_state.of_guest(manager.driver,
                                   {'uuid': record.instance_uuid})
    vm_state = vm_states.ACTIVE if current == power_state.RUNNING \
        else vm_states.ERROR
    try:
        record.instance = manager.db.instance_update(
            record.instance_uuid, {'vm_state': vm_state, 'task_state': None,
                                   'power_state': current},
            expected_task_state=own_states)
    except (exception.InstanceNotFound, exception.UnexpectedTaskStateError):
        pass


def repair_at_start_up(manager, instance):
    """A reboot interrupted by a restart of the compute service: Nova's
    ``_init_instance`` reboots again; here a guest that is not running is
    rebooted hard once, and the server is released either way (ACTIVE if
    it runs, ERROR if not, a fault saying why). Returns the instance."""
    uuid = instance['uuid']
    current = power_state.of_guest(manager.driver, instance)
    if current != power_state.RUNNING and current != power_state.NOSTATE:
        try:
            current = manager.driver.reboot(instance, HARD) or \
                power_state.of_guest(manager.driver, instance)
        except Exception:
            LOG.warning('Hard reboot of %s at start-up failed', uuid,
                        exc_info=True)
            current = power_state.of_guest(manager.driver, instance)
    vm_state = vm_states.ACTIVE if current == power_state.RUNNING \
        else vm_states.ERROR
    message = ('Reboot interrupted by a restart of the compute service '
               '(task_state was %s)' % instance['task_state'])
    manager._fault(uuid, exception.NovaSnapshotException(message))
    try:
        return manager.db.instance_update(
            uuid, {'vm_state': vm_state, 'task_state': None,
                   'power_state': current},
            expected_task_state=instance['task_state'])
    except exception.UnexpectedTaskStateError:
        return manager.db.instance_get(uuid)
