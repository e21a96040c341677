"""The compute service's RPC endpoints: one ComputeManager per host.

The manager owns the database side of every action on its host; the driver
only touches the hypervisor (and Glance for snapshot data) and reports back
through callbacks. Every task_state change is a compare-and-swap, so a
delete that arrives mid-action wins and the action backs off quietly.
"""

import collections
import functools
import logging
import threading
import time

from oslo_db import exception as db_exc
import oslo_messaging as messaging
from oslo_utils import timeutils
from sqlalchemy import exc as sa_exc

from nova_snapshot.compute import action_record
from nova_snapshot.compute import api as compute_api
from nova_snapshot.compute import backup
from nova_snapshot.compute import notifications
from nova_snapshot.compute import power_state
from nova_snapshot.compute import reboot
from nova_snapshot.compute import rebuild
from nova_snapshot.compute.rpcapi import RPC_API_VERSION
from nova_snapshot.compute import shelve
from nova_snapshot.compute import snapshot_metadata
from nova_snapshot.compute import snapshot_work
from nova_snapshot.compute import soft_delete
from nova_snapshot.compute import task_states
from nova_snapshot.compute import vm_states
from nova_snapshot.compute import volume_snapshot
from nova_snapshot.compute import volumes as compute_volumes
from nova_snapshot import context as ns_context
from nova_snapshot import exception
from nova_snapshot import fault_injection

LOG = logging.getLogger(__name__)

SNAPSHOT_EVENT = 'compute_snapshot_instance'
# A snapshot is finished or gone for good when Glance says so.
_IMAGE_DONE = 'active'
# Snapshot outcomes beyond the defaults (see action_record).
#: The instance vanished under the snapshot (row or guest): record why,
#: give the task state back, keep a finished image.
_VANISHED = action_record.Outcome('vanished', notify=False,
                                  level=logging.INFO, traceback=False)
#: The user deleted the image mid-flight: not the server's fault.
_IMAGE_GONE = action_record.Outcome('image deleted', fault=False,
                                    level=logging.WARNING, traceback=False)
# Database errors a final write is retried on (a locked SQLite file, a
# PostgreSQL restart or a terminated backend).
_DB_ERRORS = (db_exc.DBError, sa_exc.OperationalError, sa_exc.InterfaceError)
# Business errors: logged without a traceback on the server side and
# re-raised as the same class on the caller's side.
_EXPECTED = (exception.InstanceNotFound, exception.InstanceNotRunning,
             exception.InstanceInvalidState,
             exception.UnexpectedTaskStateError)
# ... and those of a volume-backed snapshot (quiesce 409/400, Cinder; a
# wait for the server's lock or a host slot that ran out is a Conflict).
_EXPECTED_VOLUME_SNAPSHOT = _EXPECTED + (
    exception.InstanceQuiesceFailed, exception.InstanceQuiesceNotSupported,
    exception.VolumeBackedSnapshotNotSupported, exception.OverQuota,
    exception.VolumeNotFound, exception.VolumeSnapshotFailed,
    exception.VolumeError, exception.ImageNotAuthorized,
    exception.ImageBadRequest, exception.Conflict)
VOLUME_SNAPSHOT_EVENT = 'compute_snapshot_volume_backed'
# Events of actions whose work runs in this process: at start-up none
# runs, so one this host left unfinished was cut short by the restart
# (the repairs put the server right; this closes its record).
_RESTART_CLOSED_EVENTS = (shelve.EVENT_SHELVE, shelve.EVENT_OFFLOAD,
                          shelve.EVENT_UNSHELVE, rebuild.EVENT, reboot.EVENT
                          ) + soft_delete.EVENTS
# A failed snapshot's image delete is tried this often (backoff in s x n)
# before the reference moves to the instance's leftovers.
IMAGE_DELETE_ATTEMPTS = 3
IMAGE_DELETE_BACKOFF = 0.5
# Backoff of a retried database write (doubling up to the maximum).
DB_RETRY_FIRST_DELAY = 0.2
DB_RETRY_MAX_DELAY = 5.0
# A hypervisor out of reach (libvirtd restarting: about a second here) is
# tried again after this, doubling up to the maximum.
HYPERVISOR_RETRY_FIRST_DELAY = 0.5
HYPERVISOR_RETRY_MAX_DELAY = 5.0
# How long a console read waits for the hypervisor to come back: well
# inside the API's call timeout (rpcapi.CONSOLE_CALL_TIMEOUT), so the
# caller gets the output or this service's 503, never its own timeout.
CONSOLE_HYPERVISOR_RETRY = 10.0
# Bookkeeping writes (events, faults) are retried for at most this long:
# they must not hold up the action they record for long.
BOOKKEEPING_RETRY_TIMEOUT = 10.0
# Seconds kept back from a volume-backed call's budget for the image
# create and the reply.
VOLUME_SNAPSHOT_MARGIN = 5.0


def _expected_exceptions(*exceptions):
    """``messaging.expected_exceptions`` that keeps the endpoint's name and
    signature (oslo's wrapper does not), so tests can compare endpoints
    with the client."""
    def outer(func):
        return functools.update_wrapper(
            messaging.expected_exceptions(*exceptions)(func), func)
    return outer


# rpc method -> (event name, notification action, task_state it runs in,
#                driver method, vm_state after)
_POWER_ACTIONS = {
    'stop_instance': ('compute_stop_instance', 'power_off',
                      task_states.POWERING_OFF, 'power_off',
                      vm_states.STOPPED),
    'start_instance': ('compute_start_instance', 'power_on',
                       task_states.POWERING_ON, 'power_on', vm_states.ACTIVE),
    'pause_instance': ('compute_pause_instance', 'pause',
                       task_states.PAUSING, 'pause', vm_states.PAUSED),
    'unpause_instance': ('compute_unpause_instance', 'unpause',
                         task_states.UNPAUSING, 'unpause', vm_states.ACTIVE),
    'suspend_instance': ('compute_suspend_instance', 'suspend',
                         task_states.SUSPENDING, 'suspend',
                         vm_states.SUSPENDED),
    'resume_instance': ('compute_resume_instance', 'resume',
                        task_states.RESUMING, 'resume', vm_states.ACTIVE),
}
# Driver methods that take a context first.
_DRIVER_WANTS_CONTEXT = ('power_on',)


def _fault_values(exc):
    """(code, message, details) of an instance fault.

    Details are the class and message only: no traceback, no locals, no
    URLs with credentials; the traceback goes to the log and, for admins,
    the action event.
    """
    code = getattr(exc, 'code', 500)
    if not isinstance(code, int) or code < 400:
        code = 500
    message = getattr(exc, 'format_message', None)
    message = message() if callable(message) else str(exc)
    message = message or type(exc).__name__
    return code, message, '%s: %s' % (type(exc).__name__, message)


class _NotCastImage(Exception):
    """The cast names an image the instance no longer snapshots to (a
    restart cleared the pending state, a later snapshot replaced it)."""


class ComputeManager(object):
    """RPC endpoint of ``nova-snapshot-compute`` on one host."""

    target = messaging.Target(version=RPC_API_VERSION)

    def __init__(self, conf, host, db, driver, image_api, notifier,
                 volume_api=None):
        self.conf = conf
        self.host = host
        self.db = db
        self.driver = driver
        self.image_api = image_api
        self.notifier = notifier
        self.volume_api = volume_api
        self.volumes = compute_volumes.InstanceVolumes(conf, db, driver,
                                                       volume_api)
        self.volume_snapshotter = volume_snapshot.VolumeSnapshotter(
            conf, db, driver, volume_api, image_api)
        self._work = snapshot_work.SnapshotWork(
            host, conf.compute.max_concurrent_snapshots)
        self._shelve = shelve.ComputeShelve(self, _ProgressReporter)

    # Helpers (not reachable over RPC: DefaultRPCAccessPolicy hides '_')

    def _event_start(self, context, instance_uuid, event):
        try:
            self._retry_db_write(
                lambda: self.db.action_event_start(
                    context, instance_uuid, event, host=self.host),
                'Recording %s of %s' % (event, instance_uuid),
                BOOKKEEPING_RETRY_TIMEOUT)
        except exception.NotFound:
            # No action for this request (e.g. a cast replayed by hand):
            # the work still runs, it just is not recorded.
            LOG.debug('No action to record %s of %s under', event,
                      instance_uuid)
        except _DB_ERRORS:
            # The work matters more than its record (nor is an unfinished
            # event left behind).
            LOG.warning('Could not record %s of %s; going on unrecorded',
                        event, instance_uuid, exc_info=True)

    def _event_finish(self, context, instance_uuid, event, exc=None,
                      tb=None, details=None):
        try:
            self._retry_db_write(
                lambda: self.db.action_event_finish(
                    context, instance_uuid, event,
                    'Error' if exc is not None else 'Success',
                    traceback=tb, details=details),
                'Finishing %s of %s' % (event, instance_uuid),
                BOOKKEEPING_RETRY_TIMEOUT)
        except exception.NotFound:
            LOG.debug('No event %s of %s to finish', event, instance_uuid)

    def _fault(self, instance_uuid, exc):
        code, message, details = _fault_values(exc)
        try:
            self._retry_db_write(
                lambda: self.db.fault_create(instance_uuid, code, message,
                                             details, host=self.host),
                'Recording a fault of %s' % instance_uuid,
                BOOKKEEPING_RETRY_TIMEOUT)
        except Exception:
            LOG.warning('Could not record a fault for %s', instance_uuid,
                        exc_info=True)

    def _notify(self, context, instance, action, phase, exc=None, **extra):
        notifications.notify_about_instance_action(
            self.notifier, context, instance, action, phase, exc=exc, **extra)

    def _record(self, context, instance_uuid, event, action=None, **kwargs):
        """The :class:`~action_record.ActionRecord` of one action; with
        ``action``, its notifications are ``instance.<action>.*``."""
        def notify(instance, phase, exc=None, **extra):
            self._notify(context, instance, action, phase, exc=exc, **extra)
        return action_record.ActionRecord(
            self, context, instance_uuid, event,
            notify=notify if action is not None else None, **kwargs)

    def _snapshot_record(self, context, instance_uuid, event, image_id=None,
                         **kwargs):
        def notify(instance, phase, exc=None, image_id=None):
            notifications.notify_about_instance_snapshot(
                self.notifier, context, instance, image_id, phase, exc=exc)
        record = action_record.ActionRecord(self, context, instance_uuid,
                                            event, notify=notify, **kwargs)
        record.extra['image_id'] = image_id
        return record

    def _delete_image(self, context, image_id, only_unfinished=False):
        """Delete a snapshot's image; gone already is fine.

        :param only_unfinished: keep it when Glance says it is active (the
            "instance disappeared" path: the upload may have completed).
        :returns: True when nothing is left to clean up (deleted, gone, or
            a finished image kept); False when the delete failed, after
            ``IMAGE_DELETE_ATTEMPTS`` tries.
        """
        for attempt in range(IMAGE_DELETE_ATTEMPTS):
            if attempt:
                time.sleep(IMAGE_DELETE_BACKOFF * attempt)
            try:
                if only_unfinished:
                    image = self.image_api.get(context, image_id)
                    if image.get('status') == _IMAGE_DONE:
                        return True
                self.image_api.delete(context, image_id)
                return True
            except exception.ImageNotFound:
                return True
            except Exception:
                LOG.warning('Could not delete image %s (attempt %d of %d)',
                            image_id, attempt + 1, IMAGE_DELETE_ATTEMPTS,
                            exc_info=True)
        return False

    def _retry_db_write(self, write, what, timeout=None):
        """``write()`` again on database errors (a locked SQLite file, a
        PostgreSQL restart or terminated backend) with backoff, for at
        most ``[compute] db_write_retry_timeout`` seconds (or ``timeout``
        if shorter); then the last error is raised."""
        limit = self.conf.compute.db_write_retry_timeout
        if timeout is not None:
            limit = min(limit, timeout)
        deadline = time.monotonic() + limit
        delay = DB_RETRY_FIRST_DELAY
        attempt = 0
        while True:
            attempt += 1
            try:
                return write()
            except _DB_ERRORS as exc:
                if time.monotonic() + delay > deadline:
                    raise
                LOG.warning('%s failed (attempt %d): %s; retrying in %.1f s',
                            what, attempt, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, DB_RETRY_MAX_DELAY)

    def _retry_hypervisor(self, call, what, timeout):
        """``call()`` again while the hypervisor cannot be reached
        (HypervisorUnavailable: libvirtd restarting or down), with
        backoff, for at most ``timeout`` seconds; then that error is
        raised. ``call`` must be safe to repeat."""
        deadline = time.monotonic() + timeout
        delay = HYPERVISOR_RETRY_FIRST_DELAY
        attempt = 0
        while True:
            attempt += 1
            try:
                return call()
            except exception.HypervisorUnavailable as exc:
                if time.monotonic() + delay > deadline:
                    raise
                LOG.warning('%s: the hypervisor is unavailable (attempt '
                            '%d): %s; retrying in %.1f s', what, attempt,
                            exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, HYPERVISOR_RETRY_MAX_DELAY)

    # Background work

    def _spawn(self, name, func, *args):
        """Run ``func`` on the bounded executor so the RPC worker is free."""
        return self._work.submit(name, func, *args)

    def wait_for_tasks(self, timeout=None):
        """Wait for background tasks; True if none is left (tests, stop)."""
        return self._work.wait(timeout)

    def busy_instances(self):
        """UUIDs of the instances with snapshot work (image-backed, or a
        volume-backed cut with its freeze) in this process right now,
        queued or running. The reconciler leaves their task states and
        freezes alone."""
        return self._work.busy_instances()

    def server_lock_if_free(self, instance_uuid):
        """The server's snapshot lock, without waiting (a context manager
        yielding False when snapshot work of the server holds it). Work
        marks a server busy before it takes this lock, so busy_instances()
        read under it stays true until the lock is released."""
        return self._work.locked_if_free(instance_uuid)

    # Start-up

    def init_host(self):
        """Repair what a crash or restart left behind on this host."""
        self.driver.init_host(self.host)
        context = ns_context.get_admin_context()
        for instance in self.db.instance_get_all(host=self.host):
            try:
                self._init_instance(context, instance)
            except Exception:
                LOG.exception('Could not repair instance %s at start-up',
                              instance['uuid'])

    def _init_instance(self, context, instance):
        self._thaw_if_frozen(instance)
        self._finish_interrupted_events(instance)
        self._finish_interrupted_volume_snapshots(instance)
        self._delete_leftover_images(context, instance)
        task_state = instance['task_state']
        if compute_api.in_volume_snapshot_cut(instance):
            instance = self._release_interrupted_cut(instance)
        elif task_state in task_states.IMAGE_SNAPSHOT_STATES:
            instance = self._repair_interrupted_snapshot(context, instance)
        elif task_state == task_states.DELETING:
            # No wait for a hypervisor that is down: the server stays
            # deleting and the reconciler finishes it later.
            self._do_terminate(context, instance, hypervisor_retry=0)
            return
        elif self._shelve.repair_at_start(context, instance) is not None:
            instance = self.db.instance_get(instance['uuid'])
            if instance.get('host') != self.host:
                return  # offloaded: no guest here to sync
        elif task_state in (task_states.SCHEDULING, task_states.SPAWNING):
            self._fail_interrupted(instance, 'Build interrupted by a restart '
                                   'of the compute service',
                                   vm_state=vm_states.ERROR)
            self.db.instance_release_claim(instance['uuid'])
            return
        elif task_state in task_states.REBUILD_STATES:
            instance = rebuild.repair_at_start_up(self, instance)
        elif task_state in reboot.REBOOT_STATES:
            instance = reboot.repair_at_start_up(self, instance)
        elif task_state in soft_delete.LOST_CAST_STATES:
            instance = soft_delete.repair_at_start_up(self, instance)
            if instance is None:
                return
        elif task_state is not None:
            # A power action that never finished: the power state sync
            # below tells what actually happened.
            instance = self._fail_interrupted(
                instance, 'Action %s interrupted by a restart of the compute '
                'service' % task_state)
        self._sync_power_state(instance)

    def _finish_interrupted_events(self, instance):
        """Error for every event of ``_RESTART_CLOSED_EVENTS`` this host
        started for ``instance`` and never finished (a shelve killed
        before its offload would otherwise leave an offloaded server, no
        host's reconciler sees, with an open event)."""
        uuid = instance['uuid']
        for name in _RESTART_CLOSED_EVENTS:
            try:
                for event in self.db.action_events_unfinished(uuid, name,
                                                              self.host):
                    ctx = ns_context.RequestContext(
                        request_id=event['request_id'],
                        user_id=event.get('user_id'),
                        project_id=event.get('project_id'), overwrite=False)
                    self.db.action_event_finish(
                        ctx, uuid, name, 'Error',
                        details='interrupted by a restart of the compute '
                                'service on %s' % self.host)
            except Exception:
                LOG.warning('Could not finish the interrupted %s events of '
                            '%s', name, uuid, exc_info=True)

    def _thaw_if_frozen(self, instance):
        """Ask the driver about every guest that may have been frozen or
        paused by a service that died mid-cut (the driver knows by its
        watchdog marker)."""
        if instance.get('vm_state') != vm_states.ACTIVE:
            return
        thaw = getattr(self.driver, 'thaw_if_frozen', None)
        if thaw is None:
            return
        try:
            if thaw(instance):
                LOG.warning('Instance %s was left frozen or paused by an '
                            'interrupted volume snapshot; released',
                            instance['uuid'])
        except Exception:
            LOG.exception('Could not thaw %s at start-up', instance['uuid'])

    def _release_interrupted_cut(self, instance):
        """A volume-backed createImage held the server when this service
        stopped. No image of it is named in system_metadata, so nothing is
        deleted from Glance here; its Cinder snapshots and half-made image
        are cleaned by request tag (_finish_interrupted_volume_snapshots).
        The guest was thawed above."""
        uuid = instance['uuid']
        request_id = instance['system_metadata'].get(
            compute_api.VOLUME_SNAPSHOT_HOLD_KEY)
        LOG.warning('Instance %s was held by the volume snapshot of request '
                    '%s at start-up; releasing it', uuid, request_id)
        released = compute_api.release_volume_snapshot_hold(
            self.db, uuid, request_id)
        if released is None:
            return self.db.instance_get(uuid)
        message = ('Volume snapshot interrupted by a restart of the compute '
                   'service (request %s); the server was released' %
                   request_id)
        self._fault(uuid, exception.VolumeSnapshotFailed(
            instance_uuid=uuid, reason=message))
        return released

    def _finish_interrupted_volume_snapshots(self, instance):
        """Volume snapshots this host started and never finished: delete
        the Cinder snapshots no image records, in the background (they may
        have to leave 'creating' first), and close the action as failed."""
        events = self.db.action_events_unfinished(
            instance['uuid'], VOLUME_SNAPSHOT_EVENT, self.host)
        for event in events:
            # No user token survives a restart: with Keystone, Glance and
            # Cinder are called as the service user (an admin, listing
            # across projects; see service_auth). Without Keystone the
            # development modes need the requester's project, and a
            # member's roles to list and delete what the request made.
            context = ns_context.RequestContext(
                user_id=event['user_id'], project_id=event['project_id'],
                request_id=event['request_id'], roles=['member', 'reader'],
                overwrite=False)
            self._work.mark_busy(instance['uuid'])
            self._spawn('clean-volume-snapshot-%s' % instance['uuid'],
                        self._clean_interrupted_volume_snapshot, context,
                        instance)

    def _clean_interrupted_volume_snapshot(self, context, instance):
        uuid = instance['uuid']
        message = ('Volume snapshot interrupted by a restart of the compute '
                   'service')
        try:
            deleted = self.volume_snapshotter.clean_interrupted(context,
                                                                instance)
        except Exception as exc:
            LOG.warning('Could not clean up the interrupted volume snapshot '
                        'of %s (request %s): %s. Look for Cinder snapshots '
                        'with metadata %s=%s', uuid, context.request_id, exc,
                        volume_snapshot.REQUEST_TAG, context.request_id)
            message += ('; its Cinder snapshots (metadata %s=%s) could not '
                        'be cleaned up: %s' % (volume_snapshot.REQUEST_TAG,
                                               context.request_id, exc))
        else:
            if deleted:
                LOG.warning('Deleted Cinder snapshots %s left by the '
                            'interrupted volume snapshot of %s', deleted,
                            uuid)
            message += '; deleted %d leftover Cinder snapshot(s)' % len(
                deleted)
        finally:
            self._work.unmark_busy(uuid)
        exc = exception.VolumeSnapshotFailed(instance_uuid=uuid,
                                             reason=message)
        self._fault(uuid, exc)
        self._event_finish(context, uuid, VOLUME_SNAPSHOT_EVENT, exc=exc,
                           details=message)

    def _delete_leftover_images(self, context, instance):
        """Images of failed snapshots whose delete failed before: try
        again; each reference is dropped only once its delete worked."""
        leftovers = (instance.get('system_metadata') or {}).get(
            compute_api.SNAPSHOT_LEFTOVERS_KEY)
        if not leftovers:
            return
        for image_id in [i for i in leftovers.split(',') if i]:
            if self._delete_image(context, image_id, only_unfinished=True):
                self._drop_leftover(instance['uuid'], image_id)

    def _drop_leftover(self, instance_uuid, image_id):
        def without(value):
            ids = [i for i in (value or '').split(',')
                   if i and i != image_id]
            return ','.join(ids) or None
        try:
            self.db.instance_update_checked(
                instance_uuid, {}, system_metadata={
                    compute_api.SNAPSHOT_LEFTOVERS_KEY: without})
        except exception.InstanceNotFound:
            pass

    def _fail_interrupted(self, instance, message, **values):
        values.update(task_state=None)
        self.db.fault_create(instance['uuid'], 500, message, message,
                             host=self.host)
        try:
            return self.db.instance_update(
                instance['uuid'], values,
                expected_task_state=instance['task_state'])
        except exception.UnexpectedTaskStateError:
            return self.db.instance_get(instance['uuid'])

    def _repair_guest(self, instance):
        """The driver's clean-up of what an interrupted capture left (a
        paused guest, scratch files); a failure is logged, the repair of
        the row goes on."""
        try:
            self.driver.repair_after_crash(instance)
        except Exception:
            LOG.exception('Driver repair of %s failed', instance['uuid'])

    def _repair_interrupted_snapshot(self, context, instance):
        LOG.warning('Instance %s was in task_state %s at start-up; cleaning '
                    'up the interrupted snapshot', instance['uuid'],
                    instance['task_state'])
        self._repair_guest(instance)
        image_id = (instance.get('system_metadata') or {}).get(
            compute_api.SNAPSHOT_IMAGE_KEY)
        gone = True
        if image_id:
            gone = self._delete_image(context, image_id, only_unfinished=True)
        message = ('Snapshot interrupted by a restart of the compute service '
                   '(task_state was %s)' % instance['task_state'])
        self.db.fault_create(instance['uuid'], 500, message, message,
                             host=self.host)
        try:
            instance = self.db.instance_update_checked(
                instance['uuid'], {'task_state': None, 'progress': 0},
                expected_task_state=instance['task_state'],
                system_metadata=_image_reference_updates(image_id, gone))
        except exception.UnexpectedTaskStateError:
            return self.db.instance_get(instance['uuid'])
        notifications.notify_about_instance_snapshot(
            self.notifier, context, instance, image_id, 'error',
            exc=exception.SnapshotCaptureFailed(
                instance_uuid=instance['uuid'], reason=message))
        return instance

    def _sync_power_state(self, instance):
        try:
            current = self.driver.get_power_state(instance)
        except exception.InstanceNotFound:
            current = power_state.NOSTATE
        if current != instance['power_state']:
            LOG.info('Power state of %s is %s, recorded %s',
                     instance['uuid'], current, instance['power_state'])
            self.db.instance_update(instance['uuid'],
                                    {'power_state': current})

    # Build

    def build_instance(self, context, instance_uuid, image_ref):
        record = self._record(context, instance_uuid,
                              'compute_build_and_run_instance',
                              action='create')
        record.on_failure(lambda exc, outcome: self._build_cleanup(
            context, record.instance, outcome))
        record.on_release(lambda exc: self._build_failed(record))
        with record:
            instance = self.db.instance_update(
                instance_uuid, {'task_state': task_states.SPAWNING},
                expected_task_state=task_states.SCHEDULING)
            record.start(instance)
            image = self._boot_image(context, instance, image_ref)
            bdms = self.db.bdm_get_by_instance(instance_uuid)
            block_device_info = self.volumes.prepare(context, instance, bdms)
            if block_device_info is None:
                # Drivers written before volumes take three arguments.
                state = self.driver.spawn(context, instance, image)
            else:
                state = self.driver.spawn(context, instance, image,
                                          block_device_info)
                self.volumes.complete(
                    context, self.db.bdm_get_by_instance(instance_uuid))
            if state is None:
                state = self.driver.get_power_state(instance)
            record.instance = self.db.instance_update(
                instance_uuid, {'vm_state': vm_states.ACTIVE,
                                'power_state': state, 'task_state': None,
                                'launched_at': timeutils.utcnow()},
                expected_task_state=task_states.SPAWNING)

    def _boot_image(self, context, instance, image_ref):
        """The image to boot; a server booted from a volume without an
        image gets the image properties its volume carried."""
        if image_ref:
            return self.image_api.get(context, image_ref)
        base = snapshot_metadata.image_meta_from_system_metadata(
            instance.get('system_metadata'))
        image = dict(base.pop('properties'))
        image.update(base)
        image.update(id=None, size=0)
        return image

    def _build_cleanup(self, context, instance, outcome):
        """A failed build leaves no guest and none of the volumes it made
        (a delete that took over cleans up by itself)."""
        if outcome is not action_record.FAILED or instance is None:
            return
        try:
            self.driver.destroy(context, instance)
        except Exception:
            LOG.warning('Could not clean up failed build of %s',
                        instance['uuid'], exc_info=True)
        try:
            self.volumes.cleanup(context,
                                 self.db.bdm_get_by_instance(instance['uuid']),
                                 failed_build=True)
        except Exception:
            LOG.warning('Could not release the volumes of failed build %s',
                        instance['uuid'], exc_info=True)

    def _build_failed(self, record):
        try:
            instance = self.db.instance_update(
                record.instance_uuid, {'vm_state': vm_states.ERROR,
                                       'task_state': None,
                                       'power_state': power_state.NOSTATE},
                expected_task_state=task_states.SPAWNING)
            # As Nova: a failed build gives its host's resources back now,
            # not when the server is deleted.
            self.db.instance_release_claim(instance['uuid'])
            record.instance = instance
        except (exception.InstanceNotFound,
                exception.UnexpectedTaskStateError):
            pass

    # Power actions

    def _power_action(self, context, instance_uuid, method):
        event, action, task_state, driver_method, new_vm_state = \
            _POWER_ACTIONS[method]
        record = self._record(context, instance_uuid, event, action=action,
                              revert_task_state=task_state)
        with record:
            instance = self.db.instance_get(instance_uuid)
            if instance['task_state'] != task_state:
                raise exception.UnexpectedTaskStateError(
                    instance_uuid=instance_uuid, expected=task_state,
                    actual=instance['task_state'])
            record.start(instance)
            call = getattr(self.driver, driver_method)
            if driver_method in _DRIVER_WANTS_CONTEXT:
                call(context, instance)
            else:
                call(instance)
            state = self.driver.get_power_state(instance)
            record.instance = self.db.instance_update(
                instance_uuid, {'vm_state': new_vm_state,
                                'power_state': state, 'task_state': None},
                expected_task_state=task_state)

    def _revert_task_state(self, instance_uuid, expected, **values):
        """task_state back to None, unless someone (a delete) took over."""
        values['task_state'] = None
        try:
            return self.db.instance_update(instance_uuid, values,
                                           expected_task_state=expected)
        except (exception.InstanceNotFound,
                exception.UnexpectedTaskStateError):
            return None

    def stop_instance(self, context, instance_uuid):
        self._power_action(context, instance_uuid, 'stop_instance')

    def start_instance(self, context, instance_uuid):
        self._power_action(context, instance_uuid, 'start_instance')

    def pause_instance(self, context, instance_uuid):
        self._power_action(context, instance_uuid, 'pause_instance')

    def unpause_instance(self, context, instance_uuid):
        self._power_action(context, instance_uuid, 'unpause_instance')

    def suspend_instance(self, context, instance_uuid):
        self._power_action(context, instance_uuid, 'suspend_instance')

    def resume_instance(self, context, instance_uuid):
        self._power_action(context, instance_uuid, 'resume_instance')

    # Reboot and rebuild (1.4; the logic is in compute/reboot.py and
    # compute/rebuild.py)

    def reboot_instance(self, context, instance_uuid, reboot_type):
        reboot.run(self, context, instance_uuid, reboot_type)

    def rebuild_instance(self, context, instance_uuid, image_ref,
                         preserve_ephemeral=False):
        rebuild.run(self, context, instance_uuid, image_ref,
                    preserve_ephemeral=preserve_ephemeral)

    # Delete

    def terminate_instance(self, context, instance_uuid):
        """Delete the guest, release the volumes, delete the row.

        A hypervisor out of reach is retried for ``[compute]
        hypervisor_retry_timeout`` seconds; if it is still unreachable the
        server stays ``deleting`` (Nova puts it in ERROR for the user to
        delete again) and the reconciler runs the delete again once the
        grace has passed. The server is busy meanwhile, so no reconciler
        pass runs a second delete of it. Any other failure is Nova's:
        ERROR with a fault."""
        record = self._record(context, instance_uuid,
                              'compute_terminate_instance', action='delete')
        record.on_release(lambda exc: self._terminate_failed(record, exc))
        with self._work.busy(instance_uuid), record:
            instance = self.db.instance_get(instance_uuid)
            self._do_terminate(context, instance, record)

    def _terminate_failed(self, record, exc=None):
        if isinstance(exc, exception.HypervisorUnavailable):
            LOG.warning('Delete of %s could not reach the hypervisor; it '
                        'stays deleting and the reconciler will finish it',
                        record.instance_uuid)
            return
        try:
            record.instance = self.db.instance_update(
                record.instance_uuid, {'vm_state': vm_states.ERROR,
                                       'task_state': None})
        except exception.InstanceNotFound:
            pass

    def _do_terminate(self, context, instance, record=None,
                      hypervisor_retry=None):
        if record is not None:
            record.start(instance)
        else:
            self._notify(context, instance, 'delete', 'start')
        if hypervisor_retry is None:
            hypervisor_retry = self.conf.compute.hypervisor_retry_timeout
        # destroy is idempotent (a guest already gone is fine).
        self._retry_hypervisor(
            lambda: self.driver.destroy(context, instance),
            'Delete of %s' % instance['uuid'], hypervisor_retry)
        self.volumes.cleanup(context,
                             self.db.bdm_get_by_instance(instance['uuid']))
        try:
            instance = self.db.instance_update(
                instance['uuid'], {'vm_state': vm_states.DELETED,
                                   'task_state': None,
                                   'power_state': power_state.NOSTATE})
            self.db.instance_destroy(instance['uuid'])
        except exception.InstanceNotFound:
            pass
        if record is not None:
            record.instance = instance
        else:
            self._notify(context, instance, 'delete', 'end')

    # Soft delete (1.5; the logic is in compute/soft_delete.py)

    def soft_delete_instance(self, context, instance_uuid):
        soft_delete.run_soft_delete(self, context, instance_uuid)

    def restore_instance(self, context, instance_uuid):
        soft_delete.run_restore(self, context, instance_uuid)

    def _reclaim_queued_deletes(self):
        """Delete for good this host's servers soft-deleted longer than
        ``reclaim_instance_interval`` (the service calls it
        periodically)."""
        return soft_delete.reclaim_expired(self)

    # Shelve (1.3; the logic is in compute/shelve.py)

    def shelve_instance(self, context, instance_uuid, image_id):
        self._shelve.shelve_instance(context, instance_uuid, image_id)

    def shelve_offload_instance(self, context, instance_uuid):
        self._shelve.shelve_offload_instance(context, instance_uuid)

    def unshelve_instance(self, context, instance_uuid):
        self._shelve.unshelve_instance(context, instance_uuid)

    def _poll_shelved_instances(self):
        """Offload this host's servers shelved for longer than
        ``shelved_offload_time`` (the service calls it periodically)."""
        return self._shelve.offload_expired(ns_context.get_admin_context())

    # Volumes (os-volume_attachments)

    def _volume_bdm(self, instance_uuid, volume_id):
        for bdm in self.db.bdm_get_by_instance(instance_uuid):
            if bdm.get('volume_id') == volume_id and \
                    bdm.get('destination_type') == 'volume':
                return bdm
        raise exception.VolumeAttachmentNotFound(
            volume_id=volume_id, instance_uuid=instance_uuid)

    def attach_volume(self, context, instance_uuid, volume_id, device=None):
        """Plug the volume the API reserved (BDM + attachment exist)."""
        record = self._record(context, instance_uuid,
                              'compute_attach_volume', action='volume_attach',
                              outcomes=((exception.InstanceNotFound,
                                         action_record.GONE),))
        record.extra['volume_id'] = volume_id
        record.on_failure(lambda exc, outcome: self._attach_rollback(
            context, record, volume_id, outcome))
        with record:
            instance = self.db.instance_get(instance_uuid)
            bdm = self._volume_bdm(instance_uuid, volume_id)
            record.start(instance)
            self.volumes.attach(context, instance, bdm)

    def _attach_rollback(self, context, record, volume_id, outcome):
        # Nova: a failed attach forgets the BDM and the attachment.
        if outcome is not action_record.FAILED or record.instance is None:
            return
        try:
            self.volumes.detach(context, record.instance,
                                self._volume_bdm(record.instance_uuid,
                                                 volume_id))
        except Exception:
            LOG.warning('Could not roll back the attach of %s', volume_id,
                        exc_info=True)

    def detach_volume(self, context, instance_uuid, volume_id):
        record = self._record(context, instance_uuid,
                              'compute_detach_volume', action='volume_detach',
                              outcomes=(((exception.InstanceNotFound,
                                          exception.VolumeAttachmentNotFound),
                                         action_record.GONE),))
        record.extra['volume_id'] = volume_id
        with record:
            instance = self.db.instance_get(instance_uuid)
            bdm = self._volume_bdm(instance_uuid, volume_id)
            record.start(instance)
            self.volumes.detach(context, instance, bdm)

    # Console

    @_expected_exceptions(*_EXPECTED, exception.HypervisorUnavailable)
    def get_console_output(self, context, instance_uuid, length=None):
        instance = self.db.instance_get(instance_uuid)
        # A libvirtd restart lasts about a second: wait it out rather than
        # fail the read.
        output = self._retry_hypervisor(
            lambda: self.driver.get_console_output(instance),
            'Console output of %s' % instance_uuid,
            CONSOLE_HYPERVISOR_RETRY) or ''
        if length is None:
            return output
        # Nova's _tail_log: the last ``length`` lines; 0 means none.
        length = int(length)
        if length <= 0:
            return ''
        return '\n'.join(output.split('\n')[-length:])

    # Snapshot

    def snapshot_instance(self, context, instance_uuid, image_id):
        """Take the snapshot the API accepted; returns at once.

        The work is queued on the host's bounded executor; it waits for
        the server's lock, then for one of the host's slots, at most
        ``[compute] snapshot_wait_timeout`` seconds from now (queue time
        included). The RPC worker is free for the next message meanwhile.
        """
        self._queue_capture(context, instance_uuid, image_id, SNAPSHOT_EVENT,
                            _SNAPSHOT_STATES)

    def backup_instance(self, context, instance_uuid, image_id, backup_type,
                        rotation):
        """createBackup: the snapshot's capture (task_state image_backup
        instead of image_snapshot), then the rotation of the server's
        backups of ``backup_type`` (compute/backup.py)."""
        def rotate(instance):
            # Busy while it runs: the reconciler must not close its event.
            with self._work.busy(instance_uuid):
                backup.rotate_and_record(self, context, instance, image_id,
                                         backup_type, rotation)
        self._queue_capture(context, instance_uuid, image_id,
                            backup.BACKUP_EVENT, _BACKUP_STATES, then=rotate)

    def _queue_capture(self, context, instance_uuid, image_id, event, states,
                       then=None):
        """Queue an image-backed capture to ``image_id``; ``then(instance)``
        runs after it succeeded, outside its record and the server's lock."""
        deadline = time.monotonic() + self.conf.compute.snapshot_wait_timeout
        record = self._snapshot_record(
            context, instance_uuid, event, image_id=image_id,
            outcomes=_SNAPSHOT_START_OUTCOMES)
        state = {'image_gone': False}
        record.on_failure(lambda exc, outcome: self._snapshot_undo(
            context, image_id, state, exc, outcome))
        record.on_release(lambda exc: self._end_snapshot_task(
            record, image_id, state['image_gone']))
        record.finally_(lambda: self._work.unmark_busy(instance_uuid))
        # Busy from the cast's arrival: the reconciler must not take the
        # pending state from a snapshot that is only queued.
        self._work.mark_busy(instance_uuid)
        try:
            record.begin()
            fault_injection.point('image.cast_received')
            self._spawn('snapshot-%s' % instance_uuid, self._snapshot_job,
                        context, record, image_id, deadline, states, then)
        except Exception as exc:
            # Nothing will run it (the executor refused, or worse).
            record.finish_unstarted(exc)

    def _snapshot_job(self, context, record, image_id, deadline,
                      states=None, then=None):
        states = states or _SNAPSHOT_STATES
        uuid = record.instance_uuid
        with record:
            # A stale or duplicate cast is answered at once, not after
            # waiting for the lock its twin holds; the start below checks
            # again under the lock.
            self._check_cast(self.db.instance_get(uuid), image_id,
                             states.pending)
            with self._work.held(uuid, deadline):
                instance = self._start_snapshot(uuid, image_id, states)
                fault_injection.point('image.task_snapshot_set')
                # From here the task state is ours: a conflict is a
                # failure to clean up after, not someone else's action.
                record.outcomes = _SNAPSHOT_RUNNING_OUTCOMES
                record.instance = instance
                self._snapshot(context, record, instance, image_id,
                               states.capture)
        if then is not None and record.outcome is None:
            then(record.instance)

    def _start_snapshot(self, instance_uuid, image_id, states=None):
        """pending -> capture state (image_snapshot), only for the image
        it was cast for.

        Re-set even though the API set the pending state: a restart of
        this service in between cleared it, and then we must not go on
        (Nova's NOTE on the same step).
        """
        states = states or _SNAPSHOT_STATES
        return self.db.instance_update_checked(
            instance_uuid, {'task_state': states.capture, 'progress': 0},
            check=lambda instance: self._check_cast(instance, image_id,
                                                    states.pending))

    @staticmethod
    def _check_cast(instance, image_id,
                    pending=task_states.IMAGE_SNAPSHOT_PENDING):
        """The instance waits for a capture to ``image_id`` to start
        (task_state ``pending``, set by the API)."""
        sysmeta = instance.get('system_metadata') or {}
        if sysmeta.get(compute_api.SNAPSHOT_IMAGE_KEY) != image_id:
            raise _NotCastImage(
                'instance %s does not snapshot to image %s (it names %s, '
                'task_state %s)' % (
                    instance['uuid'], image_id,
                    sysmeta.get(compute_api.SNAPSHOT_IMAGE_KEY),
                    instance['task_state']))
        if instance['task_state'] != pending:
            # A duplicate cast (its twin runs), or a delete.
            error = exception.UnexpectedTaskStateError
            if instance['task_state'] == task_states.DELETING:
                error = exception.UnexpectedDeletingTaskStateError
            raise error(instance_uuid=instance['uuid'], expected=pending,
                        actual=instance['task_state'])

    def _snapshot_undo(self, context, image_id, state, exc, outcome):
        """The image of a failed snapshot goes; a finished one stays when
        the instance vanished; a stale or duplicate cast touches only an
        unfinished image of its own, and never the instance."""
        if outcome is action_record.PREEMPTED or outcome is _IMAGE_GONE:
            state['image_gone'] = outcome is _IMAGE_GONE
            return
        only_unfinished = outcome is not action_record.FAILED
        state['image_gone'] = self._delete_image(
            context, image_id, only_unfinished=only_unfinished)

    def _snapshot(self, context, record, instance, image_id,
                  capture_state=task_states.IMAGE_SNAPSHOT):
        uuid = instance['uuid']
        progress = _ProgressReporter(self.db, uuid,
                                     self.conf.compute.progress_interval)

        def update_task_state(task_state,
                              expected_state=task_states.IMAGE_SNAPSHOT):
            # Drivers name the capture state image_snapshot; a backup
            # captures under image_backup (Nova's states).
            if expected_state == task_states.IMAGE_SNAPSHOT:
                expected_state = capture_state
            record.instance = self.db.instance_update(
                uuid, {'task_state': task_state},
                expected_task_state=expected_state)

        current = self.driver.get_power_state(instance)
        if current != instance['power_state']:
            record.instance = self.db.instance_update(
                uuid, {'power_state': current})
        if current != power_state.RUNNING:
            LOG.info('Snapshotting %s while not running (power state %s)',
                     uuid, current)
        record.start(record.instance)
        started = time.monotonic()
        facts = self.driver.snapshot(context, record.instance, image_id,
                                     update_task_state, progress)
        progress.finish()
        fault_injection.point('image.driver_returned')
        # The image is complete and active from here on: nothing that
        # fails below may delete it.
        LOG.info('Snapshot of %s to image %s took %.1f s (%s)', uuid,
                 image_id, time.monotonic() - started, facts)
        record.details = _facts_text(facts)
        self._finish_snapshot(record, image_id)
        fault_injection.point('image.task_released')

    def _finish_snapshot(self, record, image_id):
        """Release the task state after a finished upload, retrying on
        database errors. If that still fails (or a delete took over),
        the image is kept and the state is left for the delete or the
        reconciler; the event says so."""
        uuid = record.instance_uuid

        def ours(instance):
            if instance['system_metadata'].get(
                    compute_api.SNAPSHOT_IMAGE_KEY) != image_id:
                raise exception.UnexpectedTaskStateError(
                    instance_uuid=uuid, expected={'image': image_id},
                    actual={'image': instance['system_metadata'].get(
                        compute_api.SNAPSHOT_IMAGE_KEY)})

        def write():
            return self.db.instance_update_checked(
                uuid, {'task_state': None, 'progress': 0}, check=ours,
                expected_task_state=task_states.IMAGE_UPLOADING,
                system_metadata={compute_api.SNAPSHOT_IMAGE_KEY: None})
        try:
            record.instance = self._retry_db_write(
                write, 'Releasing %s after its snapshot' % uuid)
        except (exception.InstanceNotFound,
                exception.UnexpectedTaskStateError) as exc:
            LOG.info('Instance %s changed hands as its snapshot %s finished '
                     '(%s); the image is kept', uuid, image_id, exc)
            record.details = '%s; image kept, instance: %s' % (
                record.details, exc)
        except Exception as exc:
            LOG.error('Snapshot image %s of instance %s is complete and '
                      'kept, but its task_state could not be released: '
                      '%s. The reconciler releases it.', image_id, uuid, exc)
            record.details = ('%s; image complete and kept; task_state not '
                              'released (database: %s), left for the '
                              'reconciler' % (record.details, exc))

    def _end_snapshot_task(self, record, image_id, image_gone):
        """Back to task_state None after a failed snapshot; vm_state is
        never touched. A delete that took over keeps its task_state, and
        only the snapshot of ``image_id`` is ended. The image reference
        moves to the leftovers unless the image is gone."""
        def ours(instance):
            if instance['system_metadata'].get(
                    compute_api.SNAPSHOT_IMAGE_KEY) != image_id:
                raise _NotCastImage()
        try:
            reverted = self.db.instance_update_checked(
                record.instance_uuid, {'task_state': None, 'progress': 0},
                check=ours,
                expected_task_state=task_states.IMAGE_SNAPSHOT_STATES,
                system_metadata=_image_reference_updates(image_id,
                                                         image_gone))
        except (_NotCastImage, exception.InstanceNotFound,
                exception.UnexpectedTaskStateError):
            return
        record.instance = reverted

    @_expected_exceptions(*_EXPECTED_VOLUME_SNAPSHOT)
    def snapshot_volume_backed(self, context, instance_uuid, image_meta):
        """createImage of a volume-backed server (an RPC call): Cinder
        snapshots of every volume and the zero-byte image, which is
        returned. Nothing is left behind on failure.

        The API holds the server (task_state image_snapshot, this request
        named in system_metadata) for the call; the work runs only under
        that hold, and releases it when done. The server's lock and a
        host slot are waited for at most until the caller would give up,
        less what the cut and Cinder may take.
        """
        deadline = time.monotonic() + self._volume_snapshot_wait_budget()
        record = self._snapshot_record(
            context, instance_uuid, VOLUME_SNAPSHOT_EVENT, reraise=True,
            outcomes=((exception.InstanceNotFound, action_record.GONE),))
        record.finally_(lambda: compute_api.release_volume_snapshot_hold(
            self.db, instance_uuid, context.request_id))
        with self._work.busy(instance_uuid), record:
            with self._work.held(instance_uuid, deadline):
                instance = self.db.instance_get(instance_uuid)
                if instance['system_metadata'].get(
                        compute_api.VOLUME_SNAPSHOT_HOLD_KEY) != \
                        context.request_id or \
                        instance['task_state'] != task_states.IMAGE_SNAPSHOT:
                    raise exception.InstanceInvalidState(
                        attr='task_state', instance_uuid=instance_uuid,
                        state=instance['task_state'],
                        method=compute_api.ACTION_CREATE_IMAGE)
                record.start(instance)
                fault_injection.point('volume.task_held')
                image, facts = self.volume_snapshotter.snapshot(
                    context, instance, image_meta)
            record.extra['image_id'] = image['id']
            fault_injection.point('volume.image_returned')
            record.details = _facts_text(facts)
        return image

    def _volume_snapshot_wait_budget(self):
        """Seconds a volume-backed call may wait for the lock and a slot:
        the caller's RPC timeout less the cut's and Cinder's own bounds
        (at least one second)."""
        opts = self.conf.compute
        return max(1.0, opts.volume_snapshot_rpc_timeout -
                   opts.quiesce_deadline - opts.volume_snapshot_timeout -
                   VOLUME_SNAPSHOT_MARGIN)


def _image_reference_updates(image_id, image_gone):
    """system_metadata changes that end a snapshot of ``image_id``: the
    reference goes; an image whose delete failed joins the leftovers."""
    updates = {compute_api.SNAPSHOT_IMAGE_KEY: None}
    if image_id and not image_gone:
        updates[compute_api.SNAPSHOT_LEFTOVERS_KEY] = (
            lambda value: compute_api.add_leftover(value, image_id))
    return updates


# The task state the API sets before its cast, and the one held while the
# driver captures (then image_pending_upload and image_uploading for both).
_CaptureStates = collections.namedtuple('_CaptureStates', 'pending capture')
_SNAPSHOT_STATES = _CaptureStates(task_states.IMAGE_SNAPSHOT_PENDING,
                                  task_states.IMAGE_SNAPSHOT)
_BACKUP_STATES = _CaptureStates(task_states.IMAGE_BACKUP,
                                task_states.IMAGE_BACKUP)

_SNAPSHOT_START_OUTCOMES = (
    (_NotCastImage, action_record.Outcome(
        'stale cast', fault=False, notify=False, release=False,
        level=logging.WARNING, traceback=False)),
    # Deleted before the snapshot started: quietly, as before.
    (action_record.GONE_ERRORS, action_record.GONE),
    (exception.UnexpectedTaskStateError, action_record.PREEMPTED),
)
_SNAPSHOT_RUNNING_OUTCOMES = (
    (exception.UnexpectedDeletingTaskStateError, action_record.GONE),
    ((exception.InstanceNotFound, exception.InstanceNotRunning), _VANISHED),
    (exception.ImageNotFound, _IMAGE_GONE),
)


def _facts_text(facts):
    if not facts:
        return None
    return ', '.join('%s=%s' % item for item in sorted(facts.items()))


class _ProgressReporter(object):
    """The driver's ``report_progress``: writes ``progress`` at most every
    ``interval`` seconds, and always the final 100."""

    def __init__(self, db, instance_uuid, interval):
        self.db = db
        self.instance_uuid = instance_uuid
        self.interval = interval
        self._last = None
        self._last_value = None
        self._lock = threading.Lock()

    def __call__(self, percent):
        percent = max(0, min(100, int(percent)))
        with self._lock:
            now = time.monotonic()
            if (self._last is not None and percent != 100
                    and now - self._last < self.interval):
                return
            if percent == self._last_value:
                return
            self._last, self._last_value = now, percent
        self._write(percent)

    def finish(self):
        self(100)

    def _write(self, percent):
        try:
            self.db.instance_update(self.instance_uuid,
                                    {'progress': percent})
        except Exception:
            # Progress is decoration; never fail a snapshot over it.
            LOG.debug('Could not write progress of %s', self.instance_uuid,
                      exc_info=True)
