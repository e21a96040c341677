"""The compute service's RPC endpoints: one ComputeManager per host.

The manager owns the database side of every action on its host; the driver
only touches the hypervisor (and Glance for snapshot data) and reports back
through callbacks. Every task_state change is a compare-and-swap, so a
delete that arrives mid-action wins and the action backs off quietly.
"""

import functools
import logging
import threading
import time
import traceback

import oslo_messaging as messaging
from oslo_utils import timeutils

from nova_snapshot.compute import api as compute_api
from nova_snapshot.compute import notifications
from nova_snapshot.compute import power_state
from nova_snapshot.compute.rpcapi import RPC_API_VERSION
from nova_snapshot.compute import snapshot_metadata
from nova_snapshot.compute import task_states
from nova_snapshot.compute import vm_states
from nova_snapshot.compute import volume_snapshot
from nova_snapshot.compute import volumes as compute_volumes
from nova_snapshot import context as ns_context
from nova_snapshot import exception

LOG = logging.getLogger(__name__)

SNAPSHOT_EVENT = 'compute_snapshot_instance'
# A snapshot is finished or gone for good when Glance says so.
_IMAGE_DONE = 'active'
# Business errors: logged without a traceback on the server side and
# re-raised as the same class on the caller's side.
_EXPECTED = (exception.InstanceNotFound, exception.InstanceNotRunning,
             exception.InstanceInvalidState,
             exception.UnexpectedTaskStateError)
# ... and those of a volume-backed snapshot (quiesce 409/400, Cinder).
_EXPECTED_VOLUME_SNAPSHOT = _EXPECTED + (
    exception.InstanceQuiesceFailed, exception.InstanceQuiesceNotSupported,
    exception.VolumeBackedSnapshotNotSupported, exception.OverQuota,
    exception.VolumeNotFound, exception.VolumeSnapshotFailed,
    exception.VolumeError, exception.ImageNotAuthorized,
    exception.ImageBadRequest)
VOLUME_SNAPSHOT_EVENT = 'compute_snapshot_volume_backed'


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
        self._snapshot_semaphore = threading.BoundedSemaphore(
            conf.compute.max_concurrent_snapshots)
        self._tasks = set()
        self._tasks_lock = threading.Lock()

    # Helpers (not reachable over RPC: DefaultRPCAccessPolicy hides '_')

    def _event_start(self, context, instance_uuid, event):
        try:
            self.db.action_event_start(context, instance_uuid, event,
                                       host=self.host)
        except exception.NotFound:
            # No action for this request (e.g. a cast replayed by hand):
            # the work still runs, it just is not recorded.
            LOG.debug('No action to record %s of %s under', event,
                      instance_uuid)

    def _event_finish(self, context, instance_uuid, event, exc=None,
                      tb=None, details=None):
        try:
            self.db.action_event_finish(
                context, instance_uuid, event,
                'Error' if exc is not None else 'Success',
                traceback=tb, details=details)
        except exception.NotFound:
            LOG.debug('No event %s of %s to finish', event, instance_uuid)

    def _fault(self, instance_uuid, exc):
        code, message, details = _fault_values(exc)
        try:
            self.db.fault_create(instance_uuid, code, message, details,
                                 host=self.host)
        except Exception:
            LOG.warning('Could not record a fault for %s', instance_uuid,
                        exc_info=True)

    def _notify(self, context, instance, action, phase, exc=None, **extra):
        notifications.notify_about_instance_action(
            self.notifier, context, instance, action, phase, exc=exc, **extra)

    def _delete_image(self, context, image_id, only_unfinished=False):
        """Delete a snapshot's image; gone already is fine.

        :param only_unfinished: keep it when Glance says it is active (the
            "instance disappeared" path: the upload may have completed).
        """
        try:
            if only_unfinished:
                image = self.image_api.get(context, image_id)
                if image.get('status') == _IMAGE_DONE:
                    return
            self.image_api.delete(context, image_id)
        except exception.ImageNotFound:
            pass
        except Exception:
            LOG.warning('Could not delete image %s', image_id, exc_info=True)

    def _spawn(self, name, func, *args):
        """Run ``func`` in its own thread so the RPC worker is free."""
        def run():
            try:
                func(*args)
            except Exception:
                LOG.exception('Background task %s failed', name)
            finally:
                with self._tasks_lock:
                    self._tasks.discard(thread)
        thread = threading.Thread(target=run, name=name, daemon=True)
        with self._tasks_lock:
            self._tasks.add(thread)
        thread.start()
        return thread

    def wait_for_tasks(self, timeout=None):
        """Wait for background tasks; True if none is left (tests, stop)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._tasks_lock:
                tasks = list(self._tasks)
            if not tasks:
                return True
            for thread in tasks:
                left = (None if deadline is None
                        else deadline - time.monotonic())
                if left is not None and left <= 0:
                    return False
                thread.join(left)

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
        self._finish_interrupted_volume_snapshots(instance)
        task_state = instance['task_state']
        if task_state in task_states.IMAGE_SNAPSHOT_STATES:
            instance = self._repair_interrupted_snapshot(context, instance)
        elif task_state == task_states.DELETING:
            self._do_terminate(context, instance)
            return
        elif task_state in (task_states.SCHEDULING, task_states.SPAWNING):
            self._fail_interrupted(instance, 'Build interrupted by a restart '
                                   'of the compute service',
                                   vm_state=vm_states.ERROR)
            self.db.instance_release_claim(instance['uuid'])
            return
        elif task_state is not None:
            # A power action that never finished: the power state sync
            # below tells what actually happened.
            instance = self._fail_interrupted(
                instance, 'Action %s interrupted by a restart of the compute '
                'service' % task_state)
        self._sync_power_state(instance)

    def _thaw_if_frozen(self, instance):
        """A volume snapshot has no task_state to find it by: ask the
        driver about every guest that may have been frozen or paused by a
        service that died mid-cut (the driver knows by its watchdog
        marker)."""
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
        exc = exception.VolumeSnapshotFailed(instance_uuid=uuid,
                                             reason=message)
        self._fault(uuid, exc)
        self._event_finish(context, uuid, VOLUME_SNAPSHOT_EVENT, exc=exc,
                           details=message)

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

    def _repair_interrupted_snapshot(self, context, instance):
        LOG.warning('Instance %s was in task_state %s at start-up; cleaning '
                    'up the interrupted snapshot', instance['uuid'],
                    instance['task_state'])
        try:
            self.driver.repair_after_crash(instance)
        except Exception:
            LOG.exception('Driver repair of %s failed', instance['uuid'])
        sysmeta = dict(instance.get('system_metadata') or {})
        image_id = sysmeta.pop(compute_api.SNAPSHOT_IMAGE_KEY, None)
        if image_id:
            self._delete_image(context, image_id, only_unfinished=True)
        message = ('Snapshot interrupted by a restart of the compute service '
                   '(task_state was %s)' % instance['task_state'])
        self.db.fault_create(instance['uuid'], 500, message, message,
                             host=self.host)
        try:
            instance = self.db.instance_update(
                instance['uuid'], {'task_state': None, 'progress': 0,
                                   'system_metadata': sysmeta},
                expected_task_state=instance['task_state'])
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
        event = 'compute_build_and_run_instance'
        self._event_start(context, instance_uuid, event)
        try:
            instance = self.db.instance_update(
                instance_uuid, {'task_state': task_states.SPAWNING},
                expected_task_state=task_states.SCHEDULING)
        except (exception.InstanceNotFound,
                exception.UnexpectedTaskStateError) as exc:
            LOG.info('Not building %s: %s', instance_uuid, exc)
            self._event_finish(context, instance_uuid, event, exc=exc)
            return
        self._notify(context, instance, 'create', 'start')
        try:
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
            instance = self.db.instance_update(
                instance_uuid, {'vm_state': vm_states.ACTIVE,
                                'power_state': state, 'task_state': None,
                                'launched_at': timeutils.utcnow()},
                expected_task_state=task_states.SPAWNING)
        except (exception.InstanceNotFound,
                exception.UnexpectedDeletingTaskStateError) as exc:
            # Deleted while building: the delete cleans up the guest.
            LOG.info('Instance %s went away while building', instance_uuid)
            self._event_finish(context, instance_uuid, event, exc=exc)
            return
        except Exception as exc:
            LOG.exception('Build of %s failed', instance_uuid)
            self._event_finish(context, instance_uuid, event, exc=exc,
                               tb=traceback.format_exc())
            self._build_failed(context, instance, exc)
            return
        self._notify(context, instance, 'create', 'end')
        self._event_finish(context, instance_uuid, event)

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

    def _build_failed(self, context, instance, exc):
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
        self._fault(instance['uuid'], exc)
        try:
            instance = self.db.instance_update(
                instance['uuid'], {'vm_state': vm_states.ERROR,
                                   'task_state': None,
                                   'power_state': power_state.NOSTATE},
                expected_task_state=task_states.SPAWNING)
            # As Nova: a failed build gives its host's resources back now,
            # not when the server is deleted.
            self.db.instance_release_claim(instance['uuid'])
        except (exception.InstanceNotFound,
                exception.UnexpectedTaskStateError):
            pass
        self._notify(context, instance, 'create', 'error', exc=exc)

    # Power actions

    def _power_action(self, context, instance_uuid, method):
        event, action, task_state, driver_method, new_vm_state = \
            _POWER_ACTIONS[method]
        self._event_start(context, instance_uuid, event)
        try:
            instance = self.db.instance_get(instance_uuid)
            if instance['task_state'] != task_state:
                raise exception.UnexpectedTaskStateError(
                    instance_uuid=instance_uuid, expected=task_state,
                    actual=instance['task_state'])
            self._notify(context, instance, action, 'start')
            call = getattr(self.driver, driver_method)
            if driver_method in _DRIVER_WANTS_CONTEXT:
                call(context, instance)
            else:
                call(instance)
            state = self.driver.get_power_state(instance)
            instance = self.db.instance_update(
                instance_uuid, {'vm_state': new_vm_state,
                                'power_state': state, 'task_state': None},
                expected_task_state=task_state)
        except (exception.InstanceNotFound,
                exception.UnexpectedDeletingTaskStateError) as exc:
            LOG.info('Instance %s went away during %s', instance_uuid, method)
            self._event_finish(context, instance_uuid, event, exc=exc)
            return
        except exception.UnexpectedTaskStateError as exc:
            # Someone else owns the instance now; leave its state alone.
            LOG.warning('%s of %s preempted: %s', method, instance_uuid, exc)
            self._event_finish(context, instance_uuid, event, exc=exc)
            return
        except Exception as exc:
            LOG.exception('%s of %s failed', method, instance_uuid)
            self._fault(instance_uuid, exc)
            self._event_finish(context, instance_uuid, event, exc=exc,
                               tb=traceback.format_exc())
            self._revert_task_state(instance_uuid, task_state)
            self._notify(context, instance, action, 'error', exc=exc)
            return
        self._notify(context, instance, action, 'end')
        self._event_finish(context, instance_uuid, event)

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

    # Delete

    def terminate_instance(self, context, instance_uuid):
        event = 'compute_terminate_instance'
        self._event_start(context, instance_uuid, event)
        try:
            instance = self.db.instance_get(instance_uuid)
        except exception.InstanceNotFound:
            return
        try:
            self._do_terminate(context, instance)
        except Exception as exc:
            LOG.exception('Delete of %s failed', instance_uuid)
            self._fault(instance_uuid, exc)
            self.db.instance_update(instance_uuid,
                                    {'vm_state': vm_states.ERROR,
                                     'task_state': None})
            self._notify(context, instance, 'delete', 'error', exc=exc)
            self._event_finish(context, instance_uuid, event, exc=exc,
                               tb=traceback.format_exc())
            return
        self._event_finish(context, instance_uuid, event)

    def _do_terminate(self, context, instance):
        self._notify(context, instance, 'delete', 'start')
        self.driver.destroy(context, instance)
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
        self._notify(context, instance, 'delete', 'end')

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
        event = 'compute_attach_volume'
        self._event_start(context, instance_uuid, event)
        try:
            instance = self.db.instance_get(instance_uuid)
            bdm = self._volume_bdm(instance_uuid, volume_id)
            self._notify(context, instance, 'volume_attach', 'start',
                         volume_id=volume_id)
            self.volumes.attach(context, instance, bdm)
        except exception.InstanceNotFound as exc:
            self._event_finish(context, instance_uuid, event, exc=exc)
            return
        except Exception as exc:
            LOG.exception('Attaching volume %s to %s failed', volume_id,
                          instance_uuid)
            self._fault(instance_uuid, exc)
            self._event_finish(context, instance_uuid, event, exc=exc,
                               tb=traceback.format_exc())
            try:
                # Nova: a failed attach forgets the BDM and the attachment.
                self.volumes.detach(context, instance,
                                    self._volume_bdm(instance_uuid,
                                                     volume_id))
            except Exception:
                LOG.warning('Could not roll back the attach of %s',
                            volume_id, exc_info=True)
            self._notify(context, instance, 'volume_attach', 'error',
                         exc=exc, volume_id=volume_id)
            return
        self._notify(context, instance, 'volume_attach', 'end',
                     volume_id=volume_id)
        self._event_finish(context, instance_uuid, event)

    def detach_volume(self, context, instance_uuid, volume_id):
        event = 'compute_detach_volume'
        self._event_start(context, instance_uuid, event)
        try:
            instance = self.db.instance_get(instance_uuid)
            bdm = self._volume_bdm(instance_uuid, volume_id)
            self._notify(context, instance, 'volume_detach', 'start',
                         volume_id=volume_id)
            self.volumes.detach(context, instance, bdm)
        except (exception.InstanceNotFound,
                exception.VolumeAttachmentNotFound) as exc:
            self._event_finish(context, instance_uuid, event, exc=exc)
            return
        except Exception as exc:
            LOG.exception('Detaching volume %s from %s failed', volume_id,
                          instance_uuid)
            self._fault(instance_uuid, exc)
            self._event_finish(context, instance_uuid, event, exc=exc,
                               tb=traceback.format_exc())
            self._notify(context, instance, 'volume_detach', 'error',
                         exc=exc, volume_id=volume_id)
            return
        self._notify(context, instance, 'volume_detach', 'end',
                     volume_id=volume_id)
        self._event_finish(context, instance_uuid, event)

    # Console

    @_expected_exceptions(*_EXPECTED)
    def get_console_output(self, context, instance_uuid, length=None):
        instance = self.db.instance_get(instance_uuid)
        output = self.driver.get_console_output(instance) or ''
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

        The capture and upload run in a worker thread under
        ``[compute] max_concurrent_snapshots``; the RPC worker is free for
        the next message meanwhile.
        """
        self._event_start(context, instance_uuid, SNAPSHOT_EVENT)
        try:
            # Re-set even though the API set the pending state: a restart
            # of this service in between cleared it, and then we must not
            # go on (Nova's NOTE on the same step).
            instance = self.db.instance_update(
                instance_uuid, {'task_state': task_states.IMAGE_SNAPSHOT,
                                'progress': 0},
                expected_task_state=task_states.IMAGE_SNAPSHOT_PENDING)
        except (exception.InstanceNotFound,
                exception.UnexpectedDeletingTaskStateError) as exc:
            LOG.info('Instance %s disappeared before its snapshot started',
                     instance_uuid)
            self._delete_image(context, image_id, only_unfinished=True)
            self._event_finish(context, instance_uuid, SNAPSHOT_EVENT,
                               exc=exc)
            return
        except exception.UnexpectedTaskStateError as exc:
            LOG.warning('Not snapshotting %s: %s', instance_uuid, exc)
            self._delete_image(context, image_id)
            self._fault(instance_uuid, exc)
            self._event_finish(context, instance_uuid, SNAPSHOT_EVENT,
                               exc=exc)
            return
        self._spawn('snapshot-%s' % instance_uuid, self._snapshot_guarded,
                    context, instance, image_id)

    @_expected_exceptions(*_EXPECTED_VOLUME_SNAPSHOT)
    def snapshot_volume_backed(self, context, instance_uuid, image_meta):
        """createImage of a volume-backed server (an RPC call): Cinder
        snapshots of every volume and the zero-byte image, which is
        returned. Nothing is left behind on failure."""
        self._event_start(context, instance_uuid, VOLUME_SNAPSHOT_EVENT)
        try:
            instance = self.db.instance_get(instance_uuid)
        except exception.InstanceNotFound as exc:
            self._event_finish(context, instance_uuid, VOLUME_SNAPSHOT_EVENT,
                               exc=exc)
            raise
        notifications.notify_about_instance_snapshot(
            self.notifier, context, instance, None, 'start')
        try:
            with self._snapshot_semaphore:
                image, facts = self.volume_snapshotter.snapshot(
                    context, instance, image_meta)
        except Exception as exc:
            LOG.warning('Volume-backed snapshot of %s failed: %s',
                        instance_uuid, exc, exc_info=not isinstance(
                            exc, _EXPECTED_VOLUME_SNAPSHOT))
            self._fault(instance_uuid, exc)
            self._event_finish(context, instance_uuid, VOLUME_SNAPSHOT_EVENT,
                               exc=exc, tb=traceback.format_exc())
            notifications.notify_about_instance_snapshot(
                self.notifier, context, instance, None, 'error', exc=exc)
            raise
        notifications.notify_about_instance_snapshot(
            self.notifier, context, instance, image['id'], 'end')
        self._event_finish(context, instance_uuid, VOLUME_SNAPSHOT_EVENT,
                           details=_facts_text(facts))
        return image

    def _snapshot_guarded(self, context, instance, image_id):
        with self._snapshot_semaphore:
            self._snapshot(context, instance, image_id)

    def _snapshot(self, context, instance, image_id):
        uuid = instance['uuid']
        state = {'instance': instance}
        progress = _ProgressReporter(self.db, uuid,
                                     self.conf.compute.progress_interval)

        def update_task_state(task_state,
                              expected_state=task_states.IMAGE_SNAPSHOT):
            state['instance'] = self.db.instance_update(
                uuid, {'task_state': task_state},
                expected_task_state=expected_state)

        try:
            current = self.driver.get_power_state(instance)
            if current != instance['power_state']:
                state['instance'] = self.db.instance_update(
                    uuid, {'power_state': current})
            if current != power_state.RUNNING:
                LOG.info('Snapshotting %s while not running (power state '
                         '%s)', uuid, current)
            notifications.notify_about_instance_snapshot(
                self.notifier, context, state['instance'], image_id, 'start')
            started = time.monotonic()
            facts = self.driver.snapshot(context, state['instance'], image_id,
                                         update_task_state, progress)
            progress.finish()
            sysmeta = dict(state['instance'].get('system_metadata') or {})
            sysmeta.pop(compute_api.SNAPSHOT_IMAGE_KEY, None)
            state['instance'] = self.db.instance_update(
                uuid, {'task_state': None, 'progress': 0,
                       'system_metadata': sysmeta},
                expected_task_state=task_states.IMAGE_UPLOADING)
        except (exception.InstanceNotFound, exception.InstanceNotRunning,
                exception.UnexpectedDeletingTaskStateError) as exc:
            # Nova: "instance disappeared during snapshot". Keep an image
            # that made it to active. When only the guest vanished (the
            # row is still here, e.g. its domain was undefined behind our
            # back), the server must not stay stuck in an image_* state:
            # record why and release the task state as for any failure.
            LOG.info('Instance %s disappeared during snapshot: %s', uuid, exc)
            self._delete_image(context, image_id, only_unfinished=True)
            if not isinstance(exc, exception.UnexpectedDeletingTaskStateError):
                self._fault(uuid, exc)
            self._event_finish(context, uuid, SNAPSHOT_EVENT, exc=exc)
            self._end_snapshot_task(state['instance'])
            return
        except exception.ImageNotFound as exc:
            # The user deleted the image mid-flight: not a fault of the
            # server, nothing to delete.
            LOG.warning('Image %s was deleted during the snapshot of %s',
                        image_id, uuid)
            self._event_finish(context, uuid, SNAPSHOT_EVENT, exc=exc)
            self._end_snapshot_task(state['instance'])
            notifications.notify_about_instance_snapshot(
                self.notifier, context, state['instance'], image_id, 'error',
                exc=exc)
            return
        except Exception as exc:
            LOG.exception('Snapshot of %s to image %s failed', uuid, image_id)
            # Record first, release last: whoever sees task_state None
            # also finds the fault and the failed action event.
            self._delete_image(context, image_id)
            self._fault(uuid, exc)
            self._event_finish(context, uuid, SNAPSHOT_EVENT, exc=exc,
                               tb=traceback.format_exc())
            reverted = self._end_snapshot_task(state['instance'])
            notifications.notify_about_instance_snapshot(
                self.notifier, context, reverted or state['instance'],
                image_id, 'error', exc=exc)
            return
        LOG.info('Snapshot of %s to image %s took %.1f s (%s)', uuid,
                 image_id, time.monotonic() - started, facts)
        notifications.notify_about_instance_snapshot(
            self.notifier, context, state['instance'], image_id, 'end')
        self._event_finish(context, uuid, SNAPSHOT_EVENT,
                           details=_facts_text(facts))

    def _end_snapshot_task(self, instance):
        """Back to task_state None after a failed snapshot; vm_state is
        never touched. A delete that took over keeps its task_state."""
        sysmeta = dict(instance.get('system_metadata') or {})
        sysmeta.pop(compute_api.SNAPSHOT_IMAGE_KEY, None)
        return self._revert_task_state(
            instance['uuid'], task_states.IMAGE_SNAPSHOT_STATES, progress=0,
            system_metadata=sysmeta)


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
