"""Shelve, shelve offload and unshelve (Nova's os-shelve actions).

* **shelve** (ACTIVE, STOPPED, PAUSED, SUSPENDED): an image-backed server
  is powered off and snapshotted to ``<name>-shelved`` on its host, then
  becomes SHELVED with ``shelved_at``/``shelved_image_id``/``shelved_host``
  in its system_metadata. A volume-backed server gets no image and goes
  straight to the offload, as in Nova. With ``[DEFAULT]
  shelved_offload_time`` 0 the offload follows at once; above 0 the
  compute service's poll offloads the servers shelved for longer.
* **shelve offload** (SHELVED): the guest is destroyed, every volume
  keeps a reserved attachment (no host connection) so another host can
  connect it, the host's claim is released and ``host`` cleared:
  SHELVED_OFFLOADED.
* **unshelve** (SHELVED: power on where it is; SHELVED_OFFLOADED: the API
  schedules a host with a claim, the compute boots from the shelved image
  or the volumes). The shelved image is deleted and the keys cleared. A
  failed unshelve of an offloaded server leaves it SHELVED_OFFLOADED, with
  a fault, no guest, no claim and its volumes reserved again.

:class:`ShelveAPI` is the API side (states, compare-and-swap, casts);
:class:`ComputeShelve` the compute side, driven by the manager's thin RPC
endpoints.
"""

import contextlib
import json
import logging
import time

from oslo_utils import excutils
from oslo_utils import timeutils

from nova_snapshot.compute import action_record
from nova_snapshot.compute import api as compute_api
from nova_snapshot.compute import power_state
from nova_snapshot.compute import scheduler
from nova_snapshot.compute import snapshot_metadata
from nova_snapshot.compute import task_states
from nova_snapshot.compute import vm_states
from nova_snapshot.compute import volumes as compute_volumes
from nova_snapshot import context as ns_context
from nova_snapshot import exception
from nova_snapshot import fault_injection

LOG = logging.getLogger(__name__)

# Nova's system_metadata keys of a shelved server.
SHELVED_AT_KEY = 'shelved_at'
SHELVED_IMAGE_KEY = 'shelved_image_id'
SHELVED_HOST_KEY = 'shelved_host'
SHELVED_KEYS = (SHELVED_AT_KEY, SHELVED_IMAGE_KEY, SHELVED_HOST_KEY)
# The image a shelve in flight writes to. Nova names the image only when
# the shelve is done; a service restarted mid-shelve, or a delete, must
# find it to delete it.
SHELVING_IMAGE_KEY = 'shelving_image_id'
# The zone a create or an unshelve asked for (api/views.py shows it).
PINNED_AZ_KEY = 'pinned_availability_zone'

# Nova's instance action names.
ACTION_SHELVE = 'shelve'
ACTION_SHELVE_OFFLOAD = 'shelveOffload'
ACTION_UNSHELVE = 'unshelve'
# Action events on the compute host (Nova's wrap_instance_event names).
EVENT_SHELVE = 'compute_shelve_instance'
EVENT_OFFLOAD = 'compute_shelve_offload_instance'
EVENT_UNSHELVE = 'compute_unshelve_instance'

# The driver reports a snapshot's progress with createImage's task states;
# a shelve shows Nova's shelving ones instead.
_SHELVING_TASK_STATES = {
    task_states.IMAGE_SNAPSHOT: task_states.SHELVING,
    task_states.IMAGE_PENDING_UPLOAD:
        task_states.SHELVING_IMAGE_PENDING_UPLOAD,
    task_states.IMAGE_UPLOADING: task_states.SHELVING_IMAGE_UPLOADING,
}
# Task states an offload runs in: SHELVING for a volume-backed server
# (its shelve is the offload), SHELVING_OFFLOADING otherwise.
_OFFLOAD_TASK_STATES = (task_states.SHELVING,
                        task_states.SHELVING_OFFLOADING)
_UNSHELVE_TASK_STATES = (task_states.UNSHELVING, task_states.SPAWNING)

UNSET = object()
# Task states the API sets before its cast: one that stays unchanged, with
# no work of the server on its host, was left by a lost cast.
LOST_CAST_STATES = (task_states.SHELVING, task_states.SHELVING_OFFLOADING,
                    task_states.UNSHELVING)


class UnshelveInstanceInvalidState(exception.Conflict):
    """Nova's: an availability zone or host only for an offloaded one."""
    msg_fmt = ('Specifying an availability zone or a host when unshelving '
               'server "%(instance_uuid)s" with status "%(state)s" is not '
               'supported. The server status must be SHELVED_OFFLOADED.')


def shelved_image_ids(instance):
    """The images a (being) shelved server holds: its shelved image and
    the one a shelve in flight writes to."""
    sysmeta = instance.get('system_metadata') or {}
    return [image_id for image_id in (sysmeta.get(SHELVED_IMAGE_KEY),
                                      sysmeta.get(SHELVING_IMAGE_KEY))
            if image_id]


def _deleting_or_unexpected(instance, expected):
    error = exception.UnexpectedTaskStateError
    if instance['task_state'] == task_states.DELETING:
        error = exception.UnexpectedDeletingTaskStateError
    return error(instance_uuid=instance['uuid'], expected=expected,
                 actual=instance['task_state'])


# -- API side ---------------------------------------------------------------

class ShelveAPI(object):
    """The API side; ``api`` is the :class:`compute_api.ComputeAPI`."""

    def __init__(self, api):
        self.api = api
        self.conf = api.conf
        self.db = api.db
        self.image_api = api.image_api
        self.rpcapi = api.rpcapi

    def shelve(self, context, instance):
        compute_api.check_instance_state(instance, ACTION_SHELVE,
                                         vm_state=vm_states.SHELVE_ALLOWED)
        volume_backed = self.api.is_volume_backed(context, instance)
        image_id = None
        if not volume_backed:
            image_meta = snapshot_metadata.snapshot_image_meta(
                self.conf, context, instance, '%s-shelved' % instance['name'])
            image_id = self.image_api.create(context, image_meta)['id']

        def allowed(current):
            compute_api.check_instance_state(
                current, ACTION_SHELVE, vm_state=vm_states.SHELVE_ALLOWED)
        try:
            instance = self.db.instance_update_checked(
                instance['uuid'], {'task_state': task_states.SHELVING},
                expected_task_state=None, check=allowed,
                system_metadata={SHELVING_IMAGE_KEY: image_id})
        except (exception.InstanceNotFound,
                exception.UnexpectedTaskStateError,
                exception.InstanceInvalidState) as exc:
            if image_id:
                self.api._delete_image_quietly(context, image_id)
            if isinstance(exc, exception.InstanceInvalidState):
                raise
            raise compute_api._conflict_from_cas(exc, instance['uuid'],
                                                 ACTION_SHELVE)
        self.db.action_start(context, instance['uuid'], ACTION_SHELVE)
        try:
            if volume_backed:
                self.rpcapi.shelve_offload_instance(context, instance)
            else:
                self.rpcapi.shelve_instance(context, instance, image_id)
        except Exception:
            with excutils.save_and_reraise_exception():
                # The cast never left: nobody else would give the server
                # back or delete the image.
                if image_id:
                    self.api._delete_image_quietly(context, image_id)
                compute_api.give_back_task_state(
                    self.db, instance['uuid'], task_states.SHELVING,
                    system_metadata={SHELVING_IMAGE_KEY: None})
        return instance

    def shelve_offload(self, context, instance):
        compute_api.check_instance_state(instance, ACTION_SHELVE_OFFLOAD,
                                         vm_state=(vm_states.SHELVED,))
        try:
            instance = self.db.instance_update(
                instance['uuid'],
                {'task_state': task_states.SHELVING_OFFLOADING},
                expected_task_state=None,
                expected_vm_state=vm_states.SHELVED)
        except (exception.InstanceNotFound,
                exception.UnexpectedTaskStateError) as exc:
            raise compute_api._conflict_from_cas(exc, instance['uuid'],
                                                 ACTION_SHELVE_OFFLOAD)
        self.db.action_start(context, instance['uuid'], ACTION_SHELVE_OFFLOAD)
        try:
            self.rpcapi.shelve_offload_instance(context, instance)
        except Exception:
            with excutils.save_and_reraise_exception():
                compute_api.give_back_task_state(
                    self.db, instance['uuid'],
                    task_states.SHELVING_OFFLOADING)
        return instance

    def unshelve(self, context, instance, new_az=UNSET, host=None):
        """Unshelve; ``new_az`` (2.77) and ``host`` (2.91) only for a
        SHELVED_OFFLOADED server (409 otherwise, as Nova). The caller
        checked the policy for ``host``."""
        compute_api.check_instance_state(instance, ACTION_UNSHELVE,
                                         vm_state=vm_states.UNSHELVE_ALLOWED)
        az_passed = new_az is not UNSET
        if (az_passed or host) and \
                instance['vm_state'] != vm_states.SHELVED_OFFLOADED:
            raise UnshelveInstanceInvalidState(
                instance_uuid=instance['uuid'], state=instance['vm_state'])
        if az_passed and new_az and \
                new_az != self.conf.default_availability_zone:
            raise exception.Invalid(
                'The requested availability zone is not available')
        if host and not any(node['host'] == host for node in
                            self.db.compute_node_get_all(scheduler.TOPIC)):
            raise exception.ComputeHostNotFound(host=host)
        vm_state = instance['vm_state']

        def unchanged(current):
            if current['vm_state'] != vm_state:
                raise exception.InstanceInvalidState(
                    attr='vm_state', instance_uuid=current['uuid'],
                    state=current['vm_state'], method=ACTION_UNSHELVE)
        pinned = None
        if az_passed:
            # 2.96's pinned_availability_zone follows the new zone; null
            # unpins.
            pinned = {PINNED_AZ_KEY: new_az}
        try:
            instance = self.db.instance_update_checked(
                instance['uuid'], {'task_state': task_states.UNSHELVING},
                expected_task_state=None, check=unchanged,
                system_metadata=pinned)
        except (exception.InstanceNotFound,
                exception.UnexpectedTaskStateError) as exc:
            raise compute_api._conflict_from_cas(exc, instance['uuid'],
                                                 ACTION_UNSHELVE)
        self.db.action_start(context, instance['uuid'], ACTION_UNSHELVE)
        if instance['vm_state'] == vm_states.SHELVED:
            try:
                self.rpcapi.unshelve_instance(context, instance)
            except Exception:
                with excutils.save_and_reraise_exception():
                    compute_api.give_back_task_state(
                        self.db, instance['uuid'], task_states.UNSHELVING)
            return instance
        return self._schedule_and_unshelve(context, instance, host)

    def _schedule_and_unshelve(self, context, instance, host):
        usage = scheduler.usage_for(
            instance['flavor'], self.api.is_volume_backed(context, instance))
        try:
            instance = scheduler.schedule_existing(
                self.conf, self.db, instance['uuid'], usage,
                task_states.UNSHELVING, force_host=host)
        except exception.NoValidHost as exc:
            # As Nova's conductor: the request was accepted; the server
            # stays offloaded and the fault says why.
            LOG.warning('No valid host to unshelve %s: %s', instance['uuid'],
                        exc.kwargs.get('reason'))
            self.db.fault_create(
                instance['uuid'], 500, 'No valid host was found. %s'
                % scheduler.NO_VALID_HOST, exc.kwargs.get('reason'))
            compute_api.give_back_task_state(
                self.db, instance['uuid'], task_states.UNSHELVING)
            return self.db.instance_get(instance['uuid'])
        except exception.UnexpectedTaskStateError as exc:
            # A delete took the server meanwhile.
            raise compute_api._conflict_from_cas(exc, instance['uuid'],
                                                 ACTION_UNSHELVE)
        except Exception:
            # The database failed under the scheduling step (restarting):
            # give the server back while it has no host. If that fails
            # too, every compute host's reconciler looks for such a server
            # (repair_hostless_unshelves); with a host (the claim was
            # written after all), that host's reconciler replays the
            # unshelve whose cast was never sent.
            with excutils.save_and_reraise_exception():
                self._give_back_unscheduled(instance['uuid'])
        try:
            self.rpcapi.unshelve_instance(context, instance)
        except Exception:
            with excutils.save_and_reraise_exception():
                # Nobody will boot it: give the room back, then the server.
                self.db.instance_release_claim(instance['uuid'])
                compute_api.give_back_task_state(
                    self.db, instance['uuid'], task_states.UNSHELVING,
                    host=None)
        return instance

    def _give_back_unscheduled(self, instance_uuid):
        try:
            self.db.instance_update(
                instance_uuid, {'task_state': None},
                expected_task_state=task_states.UNSHELVING,
                expected_host=None)
        except (exception.InstanceNotFound,
                exception.UnexpectedTaskStateError):
            pass
        except Exception:
            LOG.warning('Could not give back the unscheduled unshelve of %s; '
                        'the reconciler will', instance_uuid, exc_info=True)

    def before_delete(self, context, instance):
        """A deleted shelved server's images go (Nova deletes the shelved
        image at the API); an offloaded one has no host to release its
        volumes, so that happens here too."""
        for image_id in shelved_image_ids(instance):
            self.api._delete_image_quietly(context, image_id)

    def local_delete(self, context, instance):
        """Release the volumes of an offloaded server deleted without a
        host (Nova's local delete): attachments go, volumes by
        delete_on_termination."""
        if instance.get('vm_state') != vm_states.SHELVED_OFFLOADED or \
                self.api.volume_api is None:
            return
        volumes = compute_volumes.InstanceVolumes(self.conf, self.db, None,
                                                  self.api.volume_api)
        try:
            volumes.cleanup(context,
                            self.db.bdm_get_by_instance(instance['uuid']))
        except Exception:
            LOG.warning('Could not release the volumes of deleted offloaded '
                        'server %s', instance['uuid'], exc_info=True)


# -- compute side -----------------------------------------------------------

class ComputeShelve(object):
    """The compute host's part; ``manager`` is its ComputeManager (for the
    database, driver, Glance, volumes, records and the snapshot work)."""

    def __init__(self, manager, progress_reporter):
        self.manager = manager
        self.conf = manager.conf
        self.db = manager.db
        self.driver = manager.driver
        self.image_api = manager.image_api
        self.host = manager.host
        self._progress_reporter = progress_reporter

    @property
    def volume_api(self):
        return self.manager.volume_api

    # Shelve (image-backed)

    def shelve_instance(self, context, instance_uuid, image_id):
        """Queue the shelve on the host's snapshot executor (the upload
        may take minutes); the RPC worker is free meanwhile."""
        deadline = time.monotonic() + self.conf.compute.snapshot_wait_timeout
        record = self.manager._record(context, instance_uuid, EVENT_SHELVE,
                                      action='shelve')
        state = {'was_running': False}
        record.on_failure(lambda exc, outcome: self._shelve_undo(
            context, record, image_id, state, outcome))
        record.on_release(lambda exc: self._shelve_release(record,
                                                           image_id))
        record.finally_(lambda: self.manager._work.unmark_busy(
            instance_uuid))
        self.manager._work.mark_busy(instance_uuid)
        try:
            record.begin()
            self.manager._spawn('shelve-%s' % instance_uuid, self._shelve_job,
                                context, record, image_id, state, deadline)
        except Exception as exc:
            record.finish_unstarted(exc)

    def _shelve_job(self, context, record, image_id, state, deadline):
        uuid = record.instance_uuid
        with record:
            with self.manager._work.held(uuid, deadline):
                instance = self.db.instance_get(uuid)
                sysmeta = instance.get('system_metadata') or {}
                if instance['task_state'] != task_states.SHELVING or \
                        sysmeta.get(SHELVING_IMAGE_KEY) != image_id:
                    raise _deleting_or_unexpected(instance,
                                                  task_states.SHELVING)
                record.start(instance)
                self._shelve(context, record, instance, image_id, state)
        if record.outcome is None and self.conf.shelved_offload_time == 0:
            self.shelve_offload_instance(context, uuid)

    def _shelve(self, context, record, instance, image_id, state):
        uuid = instance['uuid']
        state['was_running'] = power_state.of_guest(self.driver, instance) in (
            power_state.RUNNING, power_state.PAUSED)
        self._power_off(instance)
        fault_injection.point('shelve.powered_off')

        def update_task_state(task_state,
                              expected_state=task_states.IMAGE_SNAPSHOT):
            record.instance = self.db.instance_update(
                uuid, {'task_state': _SHELVING_TASK_STATES[task_state]},
                expected_task_state=_SHELVING_TASK_STATES[expected_state])

        progress = self._progress_reporter(
            self.db, uuid, self.conf.compute.progress_interval)
        facts = self.driver.snapshot(context, instance, image_id,
                                     update_task_state, progress)
        # The image is active; the server is not SHELVED yet.
        fault_injection.point('shelve.image_uploaded')
        record.details = ', '.join('%s=%s' % item
                                   for item in sorted((facts or {}).items()))
        offload = self.conf.shelved_offload_time == 0
        record.instance = self.db.instance_update_checked(
            uuid, {'vm_state': vm_states.SHELVED,
                   'task_state': (task_states.SHELVING_OFFLOADING if offload
                                  else None),
                   'power_state': power_state.of_guest(self.driver, instance),
                   'progress': 0},
            expected_task_state=(task_states.SHELVING,
                                 task_states.SHELVING_IMAGE_UPLOADING),
            system_metadata={
                SHELVING_IMAGE_KEY: None,
                SHELVED_AT_KEY: timeutils.utcnow().isoformat(),
                SHELVED_IMAGE_KEY: image_id,
                SHELVED_HOST_KEY: self.host})
        fault_injection.point('shelve.shelved')
        LOG.info('Shelved instance %s to image %s', uuid, image_id)

    def _shelve_undo(self, context, record, image_id, state, outcome):
        """The image of a failed shelve goes; a guest that ran runs
        again (Nova leaves it off; a shelve that did not happen should
        not stop the server)."""
        if outcome is action_record.PREEMPTED:
            return
        self.manager._delete_image(context, image_id)
        if outcome is action_record.FAILED and state['was_running'] and \
                record.instance is not None:
            try:
                self.driver.power_on(context, record.instance)
            except Exception:
                LOG.warning('Could not power %s on again after its failed '
                            'shelve', record.instance_uuid, exc_info=True)

    def _shelve_release(self, record, image_id):
        def ours(instance):
            if (instance.get('system_metadata') or {}).get(
                    SHELVING_IMAGE_KEY) != image_id:
                raise _deleting_or_unexpected(instance, task_states.SHELVING)
        current = power_state.of_guest(self.driver,
                                       {'uuid': record.instance_uuid})
        try:
            record.instance = self.db.instance_update_checked(
                record.instance_uuid,
                {'task_state': None, 'progress': 0, 'power_state': current},
                check=ours, expected_task_state=task_states.SHELVING_STATES,
                system_metadata={SHELVING_IMAGE_KEY: None})
        except (exception.InstanceNotFound,
                exception.UnexpectedTaskStateError):
            pass

    # Offload

    def shelve_offload_instance(self, context, instance_uuid):
        record = self.manager._record(
            context, instance_uuid, EVENT_OFFLOAD, action='shelve_offload',
            revert_task_state=_OFFLOAD_TASK_STATES)
        with self._owned(instance_uuid), record:
            instance = self.db.instance_get(instance_uuid)
            if instance['task_state'] not in _OFFLOAD_TASK_STATES:
                raise _deleting_or_unexpected(instance,
                                              task_states.SHELVING_OFFLOADING)
            record.start(instance)
            record.instance = self._offload(context, instance)

    def _offload(self, context, instance):
        uuid = instance['uuid']
        self._power_off(instance)
        self.driver.destroy(context, instance)
        fault_injection.point('shelve.offload_destroyed')
        # The volumes stay the server's (reserved) but no longer connected
        # to this host, so the host that unshelves it can connect them.
        self._reserve_volumes(context, uuid)
        # Before the state change, as Nova: whoever polls for
        # SHELVED_OFFLOADED may schedule into this room at once.
        self.db.instance_release_claim(uuid)
        fault_injection.point('shelve.offload_claim_released')
        values = {'vm_state': vm_states.SHELVED_OFFLOADED,
                  'task_state': None, 'host': None,
                  'power_state': power_state.SHUTDOWN}
        offloaded = self.db.instance_update(
            uuid, values, expected_task_state=_OFFLOAD_TASK_STATES)
        LOG.info('Offloaded shelved instance %s from %s', uuid, self.host)
        return offloaded

    def _reserve_volumes(self, context, instance_uuid):
        """Every volume's attachment replaced by a reserved one without a
        connector (Nova's _terminate_volume_connections): the volume stays
        attached to the server in Cinder, and no host holds it."""
        bdms = compute_volumes.volume_bdms(
            self.db.bdm_get_by_instance(instance_uuid))
        if not bdms:
            return
        if self.volume_api is None:
            raise exception.VolumeError(
                reason='this compute service has no Cinder configured')
        for bdm in bdms:
            if not bdm.get('volume_id'):
                continue
            reserved = self.volume_api.attachment_create(
                context, bdm['volume_id'], instance_uuid)
            old = bdm.get('attachment_id')
            self.db.bdm_update(bdm['id'], {'attachment_id': reserved['id'],
                                           'connection_info': None})
            if old:
                try:
                    self.volume_api.attachment_delete(context, old)
                except exception.NotFound:
                    pass

    # Unshelve

    def unshelve_instance(self, context, instance_uuid):
        record = self.manager._record(context, instance_uuid, EVENT_UNSHELVE,
                                      action='unshelve')
        record.on_failure(lambda exc, outcome: self._unshelve_undo(
            context, record, outcome))
        record.on_release(lambda exc: self._unshelve_release(record))
        with self._owned(instance_uuid), record:
            instance = self.db.instance_get(instance_uuid)
            if instance['task_state'] != task_states.UNSHELVING or \
                    instance['vm_state'] not in vm_states.UNSHELVE_ALLOWED:
                raise _deleting_or_unexpected(instance,
                                              task_states.UNSHELVING)
            record.start(instance)
            if instance['vm_state'] == vm_states.SHELVED:
                self._unshelve_in_place(context, record, instance)
            else:
                self._unshelve_offloaded(context, record, instance)

    def _unshelve_in_place(self, context, record, instance):
        self.driver.power_on(context, instance)
        record.instance = self._finish_unshelve(
            context, instance, task_states.UNSHELVING, {
                'power_state': power_state.of_guest(self.driver, instance)})

    def _unshelve_offloaded(self, context, record, instance):
        uuid = instance['uuid']
        instance = record.instance = self.db.instance_update(
            uuid, {'task_state': task_states.SPAWNING},
            expected_task_state=task_states.UNSHELVING)
        # This host is claimed; nothing spawned yet.
        fault_injection.point('unshelve.spawning')
        image_id = (instance.get('system_metadata') or {}).get(
            SHELVED_IMAGE_KEY)
        if image_id:
            image = self.image_api.get(context, image_id)
        else:
            image = self.manager._boot_image(context, instance, None)
        block_device_info = self._connect_volumes(context, instance)
        if block_device_info is None:
            state = self.driver.spawn(context, instance, image)
        else:
            state = self.driver.spawn(context, instance, image,
                                      block_device_info)
            self.manager.volumes.complete(context,
                                          self.db.bdm_get_by_instance(uuid))
        if state is None:
            state = power_state.of_guest(self.driver, instance)
        fault_injection.point('unshelve.spawned')
        record.instance = self._finish_unshelve(
            context, instance, task_states.SPAWNING, {
                'power_state': state, 'launched_at': timeutils.utcnow()})

    def _connect_volumes(self, context, instance):
        """Connect the reserved attachments to this host; the driver's
        block_device_info (None without volumes)."""
        bdms = compute_volumes.volume_bdms(
            self.db.bdm_get_by_instance(instance['uuid']))
        if not bdms:
            return None
        if self.volume_api is None:
            raise exception.VolumeError(
                reason='this compute service has no Cinder configured')
        connector = self.driver.get_volume_connector(instance)
        rows = []
        for bdm in bdms:
            attachment_id = bdm.get('attachment_id')
            if not attachment_id:
                attachment_id = self.volume_api.attachment_create(
                    context, bdm['volume_id'], instance['uuid'])['id']
                bdm = self.db.bdm_update(bdm['id'],
                                         {'attachment_id': attachment_id})
            connection_info = self.volume_api.attachment_update(
                context, attachment_id, connector,
                mountpoint=bdm['device_name'])
            rows.append(self.db.bdm_update(
                bdm['id'], {'connection_info':
                            json.dumps(connection_info)}))
        return compute_volumes.InstanceVolumes.block_device_info(instance,
                                                                 rows)

    def _finish_unshelve(self, context, instance, expected, values):
        """ACTIVE, the shelved image deleted and the keys cleared (an image
        whose delete failed joins the leftovers the start-up retries)."""
        image_id = (instance.get('system_metadata') or {}).get(
            SHELVED_IMAGE_KEY)
        gone = True
        if image_id:
            gone = self.manager._delete_image(context, image_id)
            fault_injection.point('unshelve.image_deleted')
        updates = {key: None for key in SHELVED_KEYS}
        if not gone:
            updates[compute_api.SNAPSHOT_LEFTOVERS_KEY] = (
                lambda value: compute_api.add_leftover(value, image_id))
        values.update(vm_state=vm_states.ACTIVE, task_state=None)
        return self.db.instance_update_checked(
            instance['uuid'], values, expected_task_state=expected,
            system_metadata=updates)

    def _unshelve_undo(self, context, record, outcome):
        """A failed unshelve of an offloaded server leaves no guest here,
        its volumes reserved again, and no claim."""
        instance = record.instance
        if outcome is not action_record.FAILED or instance is None or \
                instance['vm_state'] != vm_states.SHELVED_OFFLOADED:
            return
        try:
            self.driver.destroy(context, instance)
        except Exception:
            LOG.warning('Could not clean up the failed unshelve of %s',
                        instance['uuid'], exc_info=True)
        try:
            self._reserve_volumes(context, instance['uuid'])
        except Exception:
            LOG.warning('Could not disconnect the volumes of %s after its '
                        'failed unshelve', instance['uuid'], exc_info=True)
        self.db.instance_release_claim(instance['uuid'])

    def _unshelve_release(self, record):
        values = {'task_state': None}
        instance = record.instance
        if instance is not None and \
                instance['vm_state'] == vm_states.SHELVED_OFFLOADED:
            values['host'] = None
        try:
            record.instance = self.db.instance_update(
                record.instance_uuid, values,
                expected_task_state=_UNSHELVE_TASK_STATES)
        except (exception.InstanceNotFound,
                exception.UnexpectedTaskStateError):
            pass

    # Periodic offload

    def offload_expired(self, context, now=None):
        """Offload this host's servers shelved longer than
        ``shelved_offload_time`` (Nova's _poll_shelved_instances).

        :returns: the UUIDs offloaded.
        """
        if self.conf.shelved_offload_time <= 0:
            return []
        now = now or timeutils.utcnow()
        done = []
        for instance in self.db.instance_get_all(host=self.host):
            if instance['vm_state'] != vm_states.SHELVED or \
                    instance['task_state'] is not None:
                continue
            shelved_at = (instance.get('system_metadata') or {}).get(
                SHELVED_AT_KEY)
            try:
                shelved_at = timeutils.normalize_time(
                    timeutils.parse_isotime(shelved_at))
            except (TypeError, ValueError):
                continue
            if (now - shelved_at).total_seconds() < \
                    self.conf.shelved_offload_time:
                continue
            try:
                self.db.instance_update(
                    instance['uuid'],
                    {'task_state': task_states.SHELVING_OFFLOADING},
                    expected_task_state=None,
                    expected_vm_state=vm_states.SHELVED)
            except (exception.InstanceNotFound,
                    exception.UnexpectedTaskStateError):
                continue  # someone acted on it meanwhile
            self.shelve_offload_instance(context, instance['uuid'])
            done.append(instance['uuid'])
        return done

    # Start-up repair

    def repair_at_start(self, context, instance):
        """Repair a shelve action a restart of this service interrupted;
        returns the instance to go on with, or None when none of ours."""
        task_state = instance['task_state']
        vm_state = instance['vm_state']
        # The offload and unshelve repairs call Cinder as the server's
        # project (the start-up's admin context has none, which Cinder
        # without Keystone refuses: a volume-backed offload failed so in
        # the fault campaign), as the reconciler does.
        volume_context = ns_context.RequestContext(
            user_id=instance.get('user_id'),
            project_id=instance.get('project_id'),
            roles=['member', 'reader'], overwrite=False)
        if vm_state in vm_states.UNSHELVE_ALLOWED and \
                task_state in _UNSHELVE_TASK_STATES:
            return self._repair_unshelve(volume_context, instance)
        if task_state == task_states.SHELVING and not (
                instance.get('system_metadata') or {}).get(
                    SHELVING_IMAGE_KEY):
            # A volume-backed shelve is its offload (no image): its guest
            # and claim may be gone already, so giving the server back
            # would leave it ACTIVE without either (found by the fault
            # campaign's shelve.offload_claim_released kill point).
            # Finish it instead, as below.
            LOG.warning('Instance %s was being shelved (volume-backed) at '
                        'start-up; finishing the offload', instance['uuid'])
            self.shelve_offload_instance(volume_context, instance['uuid'])
            return self.db.instance_get(instance['uuid'])
        if task_state in task_states.SHELVING_STATES:
            return self._repair_shelve(context, instance)
        if task_state == task_states.SHELVING_OFFLOADING:
            # Offloading again is safe (every step is idempotent).
            LOG.warning('Instance %s was being offloaded at start-up; '
                        'finishing the offload', instance['uuid'])
            self.shelve_offload_instance(volume_context, instance['uuid'])
            return self.db.instance_get(instance['uuid'])
        return None

    def _interrupted(self, instance, message, expected, **values):
        self.manager._fault(instance['uuid'], exception.NovaSnapshotException(
            message))
        values['task_state'] = None
        try:
            return self.db.instance_update_checked(
                instance['uuid'], values, expected_task_state=expected,
                system_metadata={SHELVING_IMAGE_KEY: None})
        except (exception.InstanceNotFound,
                exception.UnexpectedTaskStateError):
            return self.db.instance_get(instance['uuid'])

    def _repair_shelve(self, context, instance):
        LOG.warning('Instance %s was being shelved (%s) at start-up; '
                    'giving it back', instance['uuid'],
                    instance['task_state'])
        self.manager._repair_guest(instance)
        image_id = (instance.get('system_metadata') or {}).get(
            SHELVING_IMAGE_KEY)
        if image_id:
            self.manager._delete_image(context, image_id)
        repaired = self._interrupted(
            instance, 'Shelve interrupted by a restart of the compute '
            'service (task_state was %s)' % instance['task_state'],
            task_states.SHELVING_STATES)
        # The shelve powered the guest off first: a server still ACTIVE
        # runs again, as after a failed shelve (_shelve_undo). Found by
        # the fault campaign (shelve.image_uploaded: ACTIVE, guest off).
        if repaired['vm_state'] == vm_states.ACTIVE and \
                repaired['task_state'] is None and \
                power_state.of_guest(self.driver, repaired) != \
                power_state.RUNNING:
            try:
                self.driver.power_on(context, repaired)
            except Exception:
                LOG.warning('Could not power %s on again after its '
                            'interrupted shelve', repaired['uuid'],
                            exc_info=True)
        return repaired

    def _repair_unshelve(self, context, instance):
        if self._only_the_row_left(context, instance):
            # The guest runs here and its shelved image is deleted: there
            # is no way back to SHELVED_OFFLOADED (it would be offloaded
            # with no image to boot from: found by the fault campaign's
            # unshelve.image_deleted kill point), only the write is left.
            LOG.warning('Instance %s was unshelved but for its state at '
                        'start-up; finishing the unshelve', instance['uuid'])
            return self._finish_unshelve(
                context, instance, task_states.SPAWNING, {
                    'power_state': power_state.RUNNING,
                    'launched_at': timeutils.utcnow()})
        LOG.warning('Instance %s was being unshelved at start-up; giving it '
                    'back', instance['uuid'])
        values = {}
        if instance['vm_state'] == vm_states.SHELVED_OFFLOADED:
            try:
                self.driver.destroy(context, instance)
                self._reserve_volumes(context, instance['uuid'])
            except Exception:
                LOG.exception('Could not clean up the interrupted unshelve '
                              'of %s', instance['uuid'])
            self.db.instance_release_claim(instance['uuid'])
            values['host'] = None
        return self._interrupted(
            instance, 'Unshelve interrupted by a restart of the compute '
            'service', _UNSHELVE_TASK_STATES, **values)

    def _only_the_row_left(self, context, instance):
        """An offloaded server's unshelve spawned its guest (running) and
        deleted the shelved image; only the final write is missing."""
        image_id = (instance.get('system_metadata') or {}).get(
            SHELVED_IMAGE_KEY)
        if instance['vm_state'] != vm_states.SHELVED_OFFLOADED or \
                instance['task_state'] != task_states.SPAWNING or \
                not image_id:
            return False
        try:
            gone = self.image_api.get(context, image_id).get(
                'status') == 'deleted'
        except exception.ImageNotFound:
            gone = True
        except Exception:
            return False   # Glance cannot say: the usual way back
        return gone and \
            power_state.of_guest(self.driver, instance) == power_state.RUNNING

    # Lost casts (the reconciler)

    def replay_lost_cast(self, context, instance):
        """Run the work of a shelve, offload or unshelve whose cast never
        reached this host (the reconciler found the API's task state
        unchanged past its grace, with no work of the server here). A
        late cast then finds the task state moved on and backs off.
        Returns True when it ran something."""
        uuid = instance['uuid']
        state = instance.get('task_state')
        image_id = (instance.get('system_metadata') or {}).get(
            SHELVING_IMAGE_KEY)
        if state == task_states.SHELVING and image_id:
            self.shelve_instance(context, uuid, image_id)
        elif state in _OFFLOAD_TASK_STATES:
            # SHELVING without an image: a volume-backed shelve.
            self.shelve_offload_instance(context, uuid)
        elif state == task_states.UNSHELVING and \
                instance.get('vm_state') in vm_states.UNSHELVE_ALLOWED:
            self.unshelve_instance(context, uuid)
        else:
            return False
        return True

    # Helpers

    @contextlib.contextmanager
    def _owned(self, instance_uuid):
        """Busy (the reconciler leaves the server alone) and the server's
        lock, so a replayed or duplicate cast waits and then finds the
        task state moved on."""
        deadline = time.monotonic() + self.conf.compute.snapshot_wait_timeout
        with self.manager._work.busy(instance_uuid):
            with self.manager._work.locked(instance_uuid, deadline):
                yield

    def _power_off(self, instance):
        try:
            self.driver.power_off(instance)
        except exception.InstanceNotFound:
            pass
