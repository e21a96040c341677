"""The periodic reconciler of one compute host.

Start-up repairs (``ComputeManager.init_host``) run once; this pass runs
every ``[reconciler] interval`` seconds and repairs what is left behind
while the service keeps running:

* an ``image_*`` task_state that no snapshot running here owns (a lost
  cast leaves ``image_snapshot_pending`` behind), once the instance has
  not changed for ``task_state_grace``;
* a server left ``scheduling``, ``rebooting``, ``rebooting_hard`` or
  ``rebuilding`` by a lost cast: the work runs here, late but not never;
  ``soft-deleting`` and ``restoring`` likewise (compute/soft_delete.py);
* a server left ``deleting`` (a lost cast, or a delete that could not
  reach the hypervisor): the delete runs again;
* a shelved-offloaded server left ``unshelving`` with no host (the API's
  scheduling step died): it goes back to SHELVED_OFFLOADED, whichever
  host's pass sees it first;
* a guest left frozen (its agent says so) or paused by a freeze, with no
  freeze of it in progress here;
* a guest of this service whose instance row is deleted (Nova's
  ``running_deleted_instance_action``);
* snapshot images of failed requests still queued or saving after
  ``orphan_grace``, and Cinder snapshots tagged with a request that no
  active image records.

Every repair is a warning in the log naming what and why, and a fault (and
an action event under the request's action when there is one) on the
instance concerned. Each repair is one small method taking what it needs,
so it can be tested alone; :meth:`Reconciler.run_pass` strings them
together, catches and logs per item, and starts nothing new after
``pass_timeout`` (every Glance, Cinder and agent call has its own
timeout).

What "running here" means comes from ``ComputeManager.busy_instances()``:
without it (an older manager) the repairs that could undo running work
(task states, thaws) are skipped.
"""

import datetime
import logging
import time
import uuid as uuidlib

from oslo_utils import timeutils

from nova_snapshot.compute import api as compute_api
from nova_snapshot.compute import backup
from nova_snapshot.compute import block_device
from nova_snapshot.compute import reboot
from nova_snapshot.compute import rebuild
from nova_snapshot.compute import shelve
from nova_snapshot.compute import soft_delete
from nova_snapshot.compute import task_states
from nova_snapshot.compute import vm_states
from nova_snapshot.compute import volume_snapshot
from nova_snapshot import context as ns_context
from nova_snapshot import exception

LOG = logging.getLogger(__name__)

# The action event of every repair recorded under a request's action.
EVENT = 'compute_reconcile'
# The manager's snapshot events (nova_snapshot.compute.manager).
SNAPSHOT_EVENT = 'compute_snapshot_instance'
VOLUME_SNAPSHOT_EVENT = 'compute_snapshot_volume_backed'
# createBackup's capture and rotation events (nova_snapshot.compute.backup).
BACKUP_EVENTS = (backup.BACKUP_EVENT, backup.ROTATE_EVENT)
# Events of the shelve actions, rebuild and reboot: a compute killed
# mid-action leaves its event open (the start-up repair puts the server
# right but cannot finish an event of the dead process's work). Closed
# once the server holds no task state (no such action runs) and nothing
# of it is busy here (found by the fault campaign's kill points).
ACTION_EVENTS = (shelve.EVENT_SHELVE, shelve.EVENT_OFFLOAD,
                 shelve.EVENT_UNSHELVE, rebuild.EVENT, reboot.EVENT
                 ) + soft_delete.EVENTS
# image_type of the images image-backed captures create.
CAPTURE_IMAGE_TYPES = ('snapshot', backup.IMAGE_TYPE)
# Glance statuses of an image whose data never arrived.
UNFINISHED_IMAGE_STATUSES = ('queued', 'saving', 'uploading', 'importing')
# Cinder refuses to delete a snapshot in these; the next pass tries again.
MOVING_SNAPSHOT_STATUSES = ('creating', 'deleting')
# Deleted instances of this host whose leftovers are still looked for.
DELETED_LOOKBACK = datetime.timedelta(days=1)
# Margin on top of the volume snapshot timeout for orphan Cinder snapshots.
VOLUME_GRACE_MARGIN = 60
# Task states the API sets before a reboot or rebuild cast; one that stays
# past the grace was left by a lost cast (replay_lost_cast).
LOST_CAST_STATES = (task_states.REBOOTING, task_states.REBOOTING_HARD,
                    task_states.REBUILDING)


class PassTimeout(Exception):
    """The pass ran out of time; the rest waits for the next one."""


class _Changed(Exception):
    """The row is not the one the repair was decided on any more."""


def _parse_time(value):
    """A naive UTC datetime from a datetime or an ISO 8601 string."""
    if value is None or isinstance(value, datetime.datetime):
        return value and timeutils.normalize_time(value)
    try:
        return timeutils.normalize_time(timeutils.parse_isotime(str(value)))
    except ValueError:
        return None


class Reconciler(object):
    """Repairs of one host; :meth:`run_pass` is what the service calls.

    :param manager: the host's ComputeManager (``busy_instances()``; its
        volume snapshotter's per-instance lock keeps a thaw from racing a
        freeze that starts meanwhile).
    :param now: a callable returning naive UTC ``datetime`` (tests).
    """

    def __init__(self, conf, host, db, driver, image_api, volume_api=None,
                 manager=None, now=timeutils.utcnow, clock=time.monotonic):
        self.conf = conf
        self.opts = conf.reconciler
        self.host = host
        self.db = db
        self.driver = driver
        self.image_api = image_api
        self.volume_api = volume_api
        self.manager = manager
        self._now = now
        self._clock = clock
        self._deadline = None
        self._stop = None
        self._unknown_logged = set()

    # -- the pass -------------------------------------------------------------

    def run_pass(self, stop=None):
        """One pass over the host; returns counts of what was repaired.

        :param stop: a ``threading.Event``: the pass ends early when set.
        """
        started = self._clock()
        self._deadline = started + self.opts.pass_timeout
        self._stop = stop
        counts = {'task_states': 0, 'lost_builds': 0, 'thawed': 0,
                  'lost_casts': 0, 'snapshot_leftovers': 0,
                  'lost_shelve_casts': 0, 'lost_soft_delete_casts': 0,
                  'running_deleted': 0,
                  'deletes': 0, 'hostless_unshelves': 0,
                  'images': 0, 'volume_snapshots': 0}
        busy = self.busy_instances()
        try:
            instances = self.db.instance_get_all(host=self.host)
            for instance in instances:
                self._check_time()
                if self._guarded(self.repair_task_state, instance, busy):
                    counts['task_states'] += 1
                    instance = self._reload(instance)
                elif self._guarded(self.build_lost_build, instance):
                    counts['lost_builds'] += 1
                    instance = self._reload(instance)
                elif self._guarded(self.replay_lost_cast, instance):
                    counts['lost_casts'] += 1
                    instance = self._reload(instance)
                elif self._guarded(self.replay_lost_shelve, instance, busy):
                    counts['lost_shelve_casts'] += 1
                    instance = self._reload(instance)
                elif self._guarded(self.retry_delete, instance, busy):
                    counts['deletes'] += 1
                    instance = self._reload(instance)
                elif self._guarded(self.replay_lost_soft_delete, instance,
                                   busy):
                    counts['lost_soft_delete_casts'] += 1
                    instance = self._reload(instance)
                if instance is None:
                    continue
                if self._guarded(self.thaw_guest, instance, busy):
                    counts['thawed'] += 1
                if self._guarded(self.repair_snapshot_leftovers, instance,
                                 busy):
                    counts['snapshot_leftovers'] += 1
                counts['volume_snapshots'] += self._guarded(
                    self.finish_stale_events, instance, busy) or 0
                counts['images'] += self._guarded(
                    self.retry_leftovers, instance, busy) or 0
            counts['hostless_unshelves'] = self._guarded(
                self.repair_hostless_unshelves) or 0
            counts['running_deleted'] = self._guarded(
                self.handle_running_deleted,
                {i['uuid'] for i in instances}, busy) or 0
            deleted = self._guarded(self._recently_deleted) or []
            # Two Glance requests per pass, whatever the number of
            # instances; None (Glance failed): asked again next pass.
            candidates = self._guarded(self.unfinished_snapshot_images)
            for instance in instances + deleted:
                self._check_time()
                if candidates is not None:
                    counts['images'] += self._guarded(
                        self.clean_orphan_images, instance, busy,
                        candidates.get(instance['uuid'], [])) or 0
                counts['volume_snapshots'] += self._guarded(
                    self.clean_orphan_volume_snapshots, instance, busy) or 0
        except PassTimeout:
            LOG.warning('Reconciler pass on %s stopped after %.0f s '
                        '([reconciler] pass_timeout %d s); the rest waits '
                        'for the next pass', self.host,
                        self._clock() - started, self.opts.pass_timeout)
        finally:
            self._deadline = None
        LOG.debug('Reconciler pass on %s took %.2f s: %s', self.host,
                  self._clock() - started, counts)
        return counts

    def _check_time(self):
        if self._stop is not None and self._stop.is_set():
            raise PassTimeout()
        if self._deadline is not None and self._clock() > self._deadline:
            raise PassTimeout()

    def _guarded(self, repair, *args):
        """Run one repair; an error is logged, never the end of the pass."""
        try:
            return repair(*args)
        except PassTimeout:
            raise
        except Exception:
            LOG.exception('Reconciler: %s%s on %s failed; retried at the '
                          'next pass', repair.__name__,
                          tuple(a.get('uuid') if isinstance(a, dict) else a
                                for a in args[:1]), self.host)
            return None

    def _reload(self, instance):
        try:
            return self.db.instance_get(instance['uuid'])
        except exception.InstanceNotFound:
            return None

    def busy_instances(self):
        """UUIDs with snapshot work running here."""
        return set(self.manager.busy_instances())

    def _recently_deleted(self):
        since = self._now() - DELETED_LOOKBACK
        return self.db.instance_list(
            filters={'host': self.host, 'deleted': True,
                     'changes_since': since},
            sort_keys=('created_at',), sort_dirs=('asc',))

    def _unowned_past_grace(self, instance, busy):
        """True when this reconciler may replay the server's lost work: it
        has the manager to run it, no work of the server runs here, and
        its row has not moved for the task-state grace."""
        return (self.manager is not None and busy is not None and
                instance['uuid'] not in busy and
                self._older_than(instance.get('updated_at') or
                                 instance.get('created_at'),
                                 self.opts.task_state_grace))

    def _older_than(self, value, seconds):
        when = _parse_time(value)
        if when is None:
            return False
        return self._now() - when >= datetime.timedelta(seconds=seconds)

    # -- contexts -------------------------------------------------------------

    @staticmethod
    def service_context():
        """No user token: Glance and Cinder are called as this service
        (the service user with Keystone, an admin listing across
        projects); a request id of its own for the logs."""
        ctx = ns_context.get_admin_context()
        ctx.request_id = 'req-%s' % uuidlib.uuid4()
        return ctx

    @staticmethod
    def project_context(instance, request_id=None):
        """The instance's project with a member's roles: with Keystone
        this acts as the service too (no token); without Keystone, Cinder
        needs a project in the request (as the start-up clean-up does)."""
        return ns_context.RequestContext(
            user_id=instance.get('user_id'),
            project_id=instance.get('project_id'),
            request_id=request_id or 'req-%s' % uuidlib.uuid4(),
            roles=['member', 'reader'], overwrite=False)

    # -- recording ------------------------------------------------------------

    def record(self, instance_uuid, exc, request_id=None, details=None):
        """A fault, and an Error event under the request's action when the
        repair belongs to one (the user sees why the request failed)."""
        code = getattr(exc, 'code', 500)
        message = exc.format_message() if hasattr(
            exc, 'format_message') else str(exc)
        try:
            self.db.fault_create(instance_uuid, code, message,
                                 '%s: %s' % (type(exc).__name__, message),
                                 host=self.host)
        except Exception:
            LOG.warning('Could not record a fault for %s', instance_uuid,
                        exc_info=True)
        if request_id is None:
            return
        try:
            action = self.db.action_get_by_request_id(instance_uuid,
                                                      request_id)
            ctx = ns_context.RequestContext(
                request_id=request_id, user_id=action.get('user_id'),
                project_id=action.get('project_id'), overwrite=False)
            self.db.action_event_start(ctx, instance_uuid, EVENT,
                                       host=self.host)
            self.db.action_event_finish(ctx, instance_uuid, EVENT, 'Error',
                                        details=details or message)
        except exception.NotFound:
            LOG.debug('No action %s of %s to record the repair under',
                      request_id, instance_uuid)

    def _newest_action(self, instance_uuid, *action_names):
        for action in self.db.actions_get(instance_uuid):
            if action.get('action') in action_names:
                return action
        return None

    def _delete_image(self, ctx, image_id, keep_active=True):
        """True when the image is gone (or was active and kept: False)."""
        try:
            if keep_active:
                image = self.image_api.get(ctx, image_id)
                if image.get('status') == 'active':
                    return False
            self.image_api.delete(ctx, image_id)
        except exception.ImageNotFound:
            pass
        return True

    # -- 1. task states -------------------------------------------------------

    def repair_task_state(self, instance, busy):
        """Release an ``image_*`` task_state no snapshot here owns.

        Only after the instance has not changed for ``task_state_grace``
        (the API sets ``image_snapshot_pending`` before its cast arrives;
        a running snapshot writes progress), and with busy_instances()
        read again under the server's snapshot lock. The release is a
        compare-and-swap on the row read, so a cast that arrives
        meanwhile wins. A volume-backed cut's hold is released as its
        request's (Cinder leftovers: :meth:`finish_stale_events`). An
        image-backed snapshot's image moves to the instance's leftovers in
        the same write and its reference is dropped only once the delete
        worked (an active image is kept). Returns True when it released
        the instance.
        """
        state = instance.get('task_state')
        if state not in task_states.IMAGE_SNAPSHOT_STATES or busy is None:
            return False
        uuid = instance['uuid']
        if uuid in busy:
            return False
        if not self._older_than(instance.get('updated_at') or
                                instance.get('created_at'),
                                self.opts.task_state_grace):
            return False
        sysmeta = instance.get('system_metadata') or {}
        hold = sysmeta.get(compute_api.VOLUME_SNAPSHOT_HOLD_KEY)
        image_id = sysmeta.get(compute_api.SNAPSHOT_IMAGE_KEY)
        with self._server_lock(uuid) as free:
            busy_now = self.busy_instances()
            if not free or busy_now is None or uuid in busy_now:
                return False
            if compute_api.in_volume_snapshot_cut(instance):
                if compute_api.release_volume_snapshot_hold(
                        self.db, uuid, hold) is None:
                    return False
                request_id = hold
            else:
                if not self._release_image_snapshot(uuid, state, image_id):
                    return False
                # image_pending_upload/uploading: either action's.
                action = self._newest_action(
                    uuid, compute_api.ACTION_CREATE_IMAGE, backup.ACTION)
                request_id = action and action['request_id']
                # Whatever an interrupted capture left on the host (a
                # guest paused by it, scratch files): none of it runs.
                try:
                    self.driver.repair_after_crash(instance)
                except Exception:
                    LOG.warning('Driver repair of %s failed', uuid,
                                exc_info=True)
        reason = ('task_state %s was left with no snapshot running on host '
                  '%s for over %d s (a lost cast or an interrupted '
                  'snapshot); released by the reconciler' % (
                      state, self.host, self.opts.task_state_grace))
        LOG.warning('Instance %s: %s (image %s, request %s)', uuid, reason,
                    image_id, request_id)
        self.record(uuid, exception.SnapshotCaptureFailed(
            instance_uuid=uuid, reason=reason), request_id=request_id)
        if image_id:
            self.delete_leftover(uuid, image_id)
        return True

    def build_lost_build(self, instance):
        """A server still ``scheduling`` on this host after the grace: its
        build cast never arrived (a broker restart drops a cast sent before
        this host re-declared its queue; an arriving build moves the server
        to ``spawning`` at once).

        The row holds everything a build needs (the cast only wakes this
        host), so the reconciler builds it now, under the create request's
        id: the user's server comes up late instead of never. A cast that
        arrives meanwhile loses the compare-and-swap from ``scheduling``
        and does nothing; so does this build when the cast won. A build
        that fails here fails as one that came by cast: ERROR, a fault,
        the claim released. Returns True when it ran the build."""
        if instance.get('task_state') != task_states.SCHEDULING or \
                not self._older_than(instance.get('updated_at') or
                                     instance.get('created_at'),
                                     self.opts.task_state_grace):
            return False
        uuid = instance['uuid']
        action = self._newest_action(uuid, compute_api.ACTION_CREATE)
        LOG.warning('Instance %s: the build request never reached host %s '
                    'within %d s (a lost cast); building it now', uuid,
                    self.host, self.opts.task_state_grace)
        self.manager.build_instance(
            self.project_context(instance,
                                 request_id=action and action['request_id']),
            uuid, instance.get('image_ref'))
        return True

    def replay_lost_cast(self, instance):
        """A server still ``rebooting``, ``rebooting_hard`` or
        ``rebuilding`` (the states the API sets) on this host after the
        grace: its cast never arrived (an arriving one moves the server on
        at once). The API recorded all the work needs, so it runs now
        under the request's id, as :meth:`build_lost_build` does; a late
        cast then loses the compare-and-swap that starts the work. The
        later task states belong to work running in this process (or are
        repaired at start-up). Returns True when it ran the work."""
        state = instance.get('task_state')
        if state not in LOST_CAST_STATES or self.manager is None or \
                not self._older_than(instance.get('updated_at') or
                                     instance.get('created_at'),
                                     self.opts.task_state_grace):
            return False
        uuid = instance['uuid']
        name = 'rebuild' if state == task_states.REBUILDING else 'reboot'
        action = self._newest_action(uuid, name)
        LOG.warning('Instance %s: the %s request never reached host %s '
                    'within %d s (task_state %s, a lost cast); running it '
                    'now', uuid, name, self.host, self.opts.task_state_grace,
                    state)
        context = self.project_context(
            instance, request_id=action and action['request_id'])
        if state == task_states.REBUILDING:
            self.manager.rebuild_instance(context, uuid,
                                          instance.get('image_ref'))
        else:
            self.manager.reboot_instance(
                context, uuid,
                'HARD' if state == task_states.REBOOTING_HARD else 'SOFT')
        return True

    def replay_lost_shelve(self, instance, busy):
        """A server still ``shelving``, ``shelving_offloading`` or
        ``unshelving`` on this host after the grace, with no work of it
        here: its cast never arrived. The work runs now under the
        request's id (compute/shelve.py); a late cast backs off. Returns
        True when it ran the work."""
        if instance.get('task_state') not in shelve.LOST_CAST_STATES or \
                not self._unowned_past_grace(instance, busy):
            return False
        uuid = instance['uuid']
        action = next((a for a in self.db.actions_get(uuid) if a.get(
            'action') in ('shelve', 'shelveOffload', 'unshelve')), None)
        LOG.warning('Instance %s: its %s request never reached host %s '
                    'within %d s (a lost cast); running it now', uuid,
                    instance['task_state'], self.host,
                    self.opts.task_state_grace)
        context = self.project_context(
            instance, request_id=action and action['request_id'])
        return self.manager._shelve.replay_lost_cast(context, instance)

    def replay_lost_soft_delete(self, instance, busy):
        """A server still ``soft-deleting`` or ``restoring`` on this host
        after the grace: its cast never arrived (an arriving one finishes
        at once: one power action). The work runs now under the request's
        id (compute/soft_delete.py); a late cast backs off. Returns True
        when it ran the work."""
        if instance.get('task_state') not in soft_delete.LOST_CAST_STATES \
                or not self._unowned_past_grace(instance, busy):
            return False
        LOG.warning('Instance %s: its %s request never reached host %s '
                    'within %d s (a lost cast); running it now',
                    instance['uuid'], instance['task_state'], self.host,
                    self.opts.task_state_grace)
        return soft_delete.rerun(self.manager, instance)

    def retry_delete(self, instance, busy):
        """A server still ``deleting`` on this host after the grace with
        no delete of it running here: its cast never arrived, or its
        delete gave up on a hypervisor it could not reach (it stays
        deleting for this; Nova would leave it in ERROR for the user to
        delete again). The delete runs again under the delete request's
        id; it is idempotent. Returns True when it ran."""
        if instance.get('task_state') != task_states.DELETING or \
                not self._unowned_past_grace(instance, busy):
            return False
        uuid = instance['uuid']
        try:
            self.driver.get_power_state(instance)
        except exception.HypervisorUnavailable as exc:
            # Still out of reach: the delete would wait out its retries
            # here, holding up the pass. The next pass looks again.
            LOG.info('Instance %s: still deleting; the hypervisor is still '
                     'unavailable (%s)', uuid, exc)
            return False
        except Exception:
            pass  # the guest gone, or the delete will say what is wrong
        action = self._newest_action(uuid, compute_api.ACTION_DELETE)
        LOG.warning('Instance %s: still deleting on host %s after %d s with '
                    'no delete running (a lost cast, or the hypervisor was '
                    'unreachable); deleting it now', uuid, self.host,
                    self.opts.task_state_grace)
        self.manager.terminate_instance(
            self.project_context(instance,
                                 request_id=action and action['request_id']),
            uuid)
        return True

    def repair_hostless_unshelves(self):
        """Shelved-offloaded servers left ``unshelving`` with no host past
        the grace: the API set the task state, then stopped (its process,
        or the database under it) before its scheduling step gave the
        server a host or gave it back. No host owns such a server, so
        every host's pass looks, and a compare-and-swap (still unshelving,
        still no host) decides who repairs it. It goes back to
        SHELVED_OFFLOADED as a NoValidHost leaves it: a fault, and an
        Error event under the unshelve action; the user unshelves again.
        Returns how many."""
        repaired = 0
        for instance in self.db.instance_get_all(
                task_states=(task_states.UNSHELVING,)):
            self._check_time()
            if instance.get('host') or \
                    instance.get('vm_state') != vm_states.SHELVED_OFFLOADED \
                    or not self._older_than(instance.get('updated_at') or
                                            instance.get('created_at'),
                                            self.opts.task_state_grace):
                continue
            if self._guarded(self.give_back_hostless_unshelve, instance):
                repaired += 1
        return repaired

    def give_back_hostless_unshelve(self, instance):
        uuid = instance['uuid']
        try:
            self.db.instance_update(
                uuid, {'task_state': None},
                expected_task_state=task_states.UNSHELVING,
                expected_vm_state=vm_states.SHELVED_OFFLOADED,
                expected_host=None)
        except (exception.InstanceNotFound,
                exception.UnexpectedTaskStateError):
            return False  # scheduled meanwhile, deleted, or another host's
        action = self._newest_action(uuid, shelve.ACTION_UNSHELVE)
        reason = ('Unshelve was never scheduled: task_state unshelving with '
                  'no host for over %d s (the API stopped after accepting '
                  'it); the server is shelved-offloaded again, unshelve it '
                  'again' % self.opts.task_state_grace)
        LOG.warning('Instance %s: %s (seen by host %s, request %s)', uuid,
                    reason, self.host, action and action['request_id'])
        self.record(uuid, exception.NovaSnapshotException(reason),
                    request_id=action and action['request_id'])
        return True

    def _release_image_snapshot(self, uuid, state, image_id):
        """task_state None and the image from the snapshot's reference to
        the leftovers, if the row still is the one read."""
        updates = {compute_api.SNAPSHOT_IMAGE_KEY: None}

        def same_snapshot(current):
            current_sysmeta = current['system_metadata'] or {}
            if current_sysmeta.get(compute_api.SNAPSHOT_IMAGE_KEY) != \
                    image_id:
                raise _Changed()
            if image_id:
                # Computed from the row the write is checked against.
                updates[compute_api.SNAPSHOT_LEFTOVERS_KEY] = \
                    compute_api.add_leftover(current_sysmeta.get(
                        compute_api.SNAPSHOT_LEFTOVERS_KEY), image_id)
        try:
            self.db.instance_update_checked(
                uuid, {'task_state': None, 'progress': 0},
                check=same_snapshot, expected_task_state=state,
                system_metadata=updates)
        except (exception.InstanceNotFound,
                exception.UnexpectedTaskStateError, _Changed):
            # A late cast, a new snapshot or a delete: theirs now.
            return False
        return True

    def delete_leftover(self, uuid, image_id):
        """Delete one image of the instance's leftovers (kept if active)
        and drop its reference once that worked. True when it is gone."""
        try:
            deleted = self._delete_image(self.service_context(), image_id)
        except Exception as exc:
            LOG.warning('Could not delete image %s of %s (%s); retried at '
                        'the next pass', image_id, uuid, exc)
            return False
        if deleted:
            LOG.warning('Reconciler: deleted image %s of a failed snapshot '
                        'of %s', image_id, uuid)
        updates = {}

        def without(current):
            ids = [i for i in ((current['system_metadata'] or {}).get(
                compute_api.SNAPSHOT_LEFTOVERS_KEY) or '').split(',')
                if i and i != image_id]
            updates[compute_api.SNAPSHOT_LEFTOVERS_KEY] = ','.join(ids) or None
        try:
            self.db.instance_update_checked(uuid, {}, check=without,
                                            system_metadata=updates)
        except exception.InstanceNotFound:
            pass
        return True

    def retry_leftovers(self, instance, busy):
        """The images of failed snapshots whose delete failed before (the
        instance's leftovers): deleted again at every pass until it
        works. Returns how many went."""
        leftovers = (instance.get('system_metadata') or {}).get(
            compute_api.SNAPSHOT_LEFTOVERS_KEY)
        if not leftovers or (busy and instance['uuid'] in busy):
            return 0
        gone = 0
        for image_id in [i for i in leftovers.split(',') if i]:
            self._check_time()
            if self.delete_leftover(instance['uuid'], image_id):
                gone += 1
        return gone

    def finish_stale_events(self, instance, busy):
        """Close the snapshot events this host started and no snapshot
        here is running any more (the service died mid-way and came back
        before the start-up repair could see them, or that repair failed).
        A volume-backed request's Cinder snapshots that no active image
        records go with it. Returns how many Cinder snapshots went."""
        if busy is None or instance['uuid'] in busy:
            return 0
        uuid = instance['uuid']
        deleted = 0
        for event_name in (SNAPSHOT_EVENT, VOLUME_SNAPSHOT_EVENT) + \
                BACKUP_EVENTS + ACTION_EVENTS:
            if event_name in ACTION_EVENTS and \
                    instance.get('task_state') is not None:
                continue
            for event in self.db.action_events_unfinished(uuid, event_name,
                                                          self.host):
                self._check_time()
                if not self._older_than(event.get('start_time'),
                                        self.opts.task_state_grace):
                    continue
                request_id = event['request_id']
                if event_name == VOLUME_SNAPSHOT_EVENT and \
                        self.volume_api is not None:
                    ctx = self.project_context(instance, request_id)
                    snapshots = self.volume_api.list_snapshots(
                        ctx, metadata={volume_snapshot.INSTANCE_TAG: uuid,
                                       volume_snapshot.REQUEST_TAG:
                                       request_id})
                    deleted += self.clean_request_snapshots(
                        ctx, instance, request_id, snapshots)
                message = ('%s of request %s started on host %s and is '
                           'running no more; finished by the reconciler' % (
                               event_name, request_id, self.host))
                LOG.warning('Reconciler: instance %s: %s', uuid, message)
                ctx = ns_context.RequestContext(
                    request_id=request_id, user_id=event.get('user_id'),
                    project_id=event.get('project_id'), overwrite=False)
                try:
                    self.db.action_event_finish(ctx, uuid, event_name,
                                                'Error', details=message)
                except exception.NotFound:
                    pass
        return deleted

    # -- 2. frozen or paused guests -------------------------------------------

    def _server_lock(self, uuid):
        """The server's snapshot lock, taken without waiting (yields
        False when snapshot work of this server is starting or running)."""
        return self.manager.server_lock_if_free(uuid)

    def thaw_guest(self, instance, busy):
        """Thaw a guest frozen (guest agent) or paused by a freeze (the
        watchdog's token) when no freeze of it is in progress here.
        Returns the list of what was done (empty: nothing)."""
        if busy is None or instance['uuid'] in busy:
            return []
        # A guest its user paused, or one in a power action, is not ours.
        if instance.get('vm_state') != vm_states.ACTIVE or \
                instance.get('task_state') is not None:
            return []
        uuid = instance['uuid']
        with self._server_lock(uuid) as free:
            # Asked again under the lock: the pass read busy_instances()
            # a while ago, and a freeze may have started since.
            busy_now = self.busy_instances()
            if not free or busy_now is None or uuid in busy_now:
                return []
            done = self.driver.thaw_stale_freeze(
                instance, agent_timeout=self.opts.agent_timeout)
        if done:
            reason = ('guest found frozen or paused by a freeze with none in '
                      'progress on host %s: %s' % (self.host,
                                                   '; '.join(done)))
            LOG.warning('Instance %s: %s', uuid, reason)
            self.record(uuid, exception.InstanceQuiesceFailed(reason=reason))
        return done

    def repair_snapshot_leftovers(self, instance, busy):
        """Put back a guest that an ended snapshot could not restore (a
        managed save or pause whose undo failed, e.g. libvirtd restarted
        under it; only start-up repaired that before). Returns the list of
        what was done (empty: nothing)."""
        uuid = instance['uuid']
        if busy is None or uuid in busy or \
                instance.get('task_state') is not None or \
                not self.driver.has_snapshot_leftovers(instance):
            return []
        with self._server_lock(uuid) as free:
            busy_now = self.busy_instances()
            if not free or uuid in busy_now:
                return []
            done = self.driver.repair_after_crash(instance) or []
        if done:
            reason = ('a snapshot that ended on host %s had left the guest '
                      'or its files behind: %s' % (self.host, '; '.join(done)))
            LOG.warning('Instance %s: %s', uuid, reason)
            self.record(uuid, exception.SnapshotCaptureFailed(
                instance_uuid=uuid, reason=reason))
        return done

    # -- 3. guests without a live row -----------------------------------------

    def handle_running_deleted(self, live_uuids, busy=None):
        """Act on this service's guests whose instance is deleted, per
        ``running_deleted_instance_action``; returns how many were acted
        on. A guest whose instance lives on another host, or that the
        database never knew, is left alone (logged once)."""
        action = self.conf.running_deleted_instance_action
        if action == 'noop':
            return 0
        try:
            domains = self.driver.list_domains()
        except NotImplementedError:
            return 0
        acted = 0
        for domain in domains:
            self._check_time()
            uuid = domain['uuid']
            if uuid in live_uuids or (busy and uuid in busy):
                continue
            if self._guarded(self.handle_domain, domain, action):
                acted += 1
        return acted

    def handle_domain(self, domain, action):
        """One guest not among this host's live instances. True when the
        action was taken (or logged)."""
        uuid = domain['uuid']
        rows = self.db.instance_list(filters={'uuid': uuid, 'deleted': None})
        if any(not row.get('deleted') for row in rows):
            # Live elsewhere (or it just arrived here): not a deleted one.
            return False
        mine = [row for row in rows if row.get('host') == self.host]
        if not mine:
            if uuid not in self._unknown_logged:
                self._unknown_logged.add(uuid)
                LOG.warning('Guest %s (%s) runs on %s with no instance row '
                            'of this host, live or deleted; left alone',
                            domain.get('name'), uuid, self.host)
            return False
        row = mine[-1]
        if not self._older_than(row.get('deleted_at'),
                                self.conf.running_deleted_instance_timeout):
            return False
        what = ('guest %s of instance %s, deleted at %s, still on host %s'
                % (domain.get('name'), uuid, row.get('deleted_at'),
                   self.host))
        if action == 'log':
            LOG.warning('Reconciler: %s (running_deleted_instance_action = '
                        'log)', what)
            return True
        if action == 'shutdown':
            self.driver.power_off_domain(uuid)
            message = 'powered off the %s' % what
        else:
            self.driver.destroy_domain(uuid)
            message = 'reaped the %s (domain and local disks)' % what
        LOG.warning('Reconciler %s', message)
        self.record(uuid, exception.HypervisorError(reason=message))
        return True

    # -- 4. leftovers of failed requests --------------------------------------

    def _in_flight_image(self, instance):
        """The image an unfinished image-backed snapshot of the instance
        is for (None when there is none)."""
        if not instance.get('deleted') and instance.get('task_state') in \
                task_states.SHELVING_STATES:
            # A shelve's image, queued or saving while it runs.
            return (instance.get('system_metadata') or {}).get(
                shelve.SHELVING_IMAGE_KEY)
        if instance.get('deleted') or instance.get('task_state') not in \
                task_states.IMAGE_SNAPSHOT_STATES:
            return None
        return (instance.get('system_metadata') or {}).get(
            compute_api.SNAPSHOT_IMAGE_KEY)

    def unfinished_snapshot_images(self):
        """Snapshot and backup images (``image_type`` snapshot or
        backup, what image-backed captures create) whose data never
        arrived, by ``instance_uuid``; listed as this service, across
        projects."""
        ctx = self.service_context()
        found = {}
        for image_type in CAPTURE_IMAGE_TYPES:
            for status in ('queued', 'saving'):
                for image in self.image_api.list(ctx, image_type=image_type,
                                                 status=status):
                    if image.get('instance_uuid'):
                        found.setdefault(image['instance_uuid'],
                                         []).append(image)
        return found

    def clean_orphan_images(self, instance, busy, images=None):
        """Delete the unfinished snapshot images of the instance's failed
        requests: ``instance_uuid`` and ``image_type`` snapshot or backup
        (what this host's image-backed captures create), still queued or
        saving after ``orphan_grace``, and not the image an unfinished
        snapshot of the instance is for. Returns how many went.

        :param images: the candidates (from
            :meth:`unfinished_snapshot_images`); None: Glance is asked.
        """
        uuid = instance['uuid']
        if busy and uuid in busy:
            return 0
        ctx = self.service_context()
        keep = self._in_flight_image(instance)
        if images is None:
            images = [image for image_type in CAPTURE_IMAGE_TYPES
                      for image in self.image_api.list(
                          ctx, instance_uuid=uuid, image_type=image_type)]
        deleted = 0
        for image in images:
            self._check_time()
            if image.get('status') not in UNFINISHED_IMAGE_STATUSES or \
                    image['id'] == keep or \
                    not self._older_than(image.get('created_at'),
                                         self.opts.orphan_grace):
                continue
            if self._guarded(self.delete_orphan_image, ctx, instance, image):
                deleted += 1
        return deleted

    def delete_orphan_image(self, ctx, instance, image):
        reason = ('snapshot image %s is still %s %d s after its request; '
                  'the request failed and the image was deleted' % (
                      image['id'], image.get('status'),
                      self.opts.orphan_grace))
        self.image_api.delete(ctx, image['id'])
        LOG.warning('Reconciler: instance %s: %s', instance['uuid'], reason)
        self.record(instance['uuid'], exception.SnapshotCaptureFailed(
            instance_uuid=instance['uuid'], reason=reason))
        return True

    def _volume_grace(self):
        # A volume-backed request makes its image only once every Cinder
        # snapshot is available: never judge its snapshots before that.
        return max(self.opts.orphan_grace,
                   self.conf.compute.volume_snapshot_timeout +
                   self.conf.compute.quiesce_deadline + VOLUME_GRACE_MARGIN)

    def clean_orphan_volume_snapshots(self, instance, busy):
        """Delete Cinder snapshots tagged with the instance and a request
        that no active image records (and that request's unfinished
        images), once the newest of them is older than the grace.
        Returns how many snapshots went."""
        if self.volume_api is None or busy is None or \
                instance['uuid'] in busy:
            # Without busy_instances a volume snapshot running here could
            # be mid-way: the grace alone is not trusted for a delete.
            return 0
        uuid = instance['uuid']
        ctx = self.project_context(instance)
        by_request = {}
        for snapshot in self.volume_api.list_snapshots(
                ctx, metadata={volume_snapshot.INSTANCE_TAG: uuid}):
            request_id = (snapshot.get('metadata') or {}).get(
                volume_snapshot.REQUEST_TAG)
            if request_id:
                by_request.setdefault(request_id, []).append(snapshot)
        deleted = 0
        for request_id, snapshots in sorted(by_request.items()):
            self._check_time()
            grace = self._request_grace(uuid, request_id)
            if not all(self._older_than(s.get('created_at'), grace)
                       for s in snapshots):
                continue
            deleted += self._guarded(self.clean_request_snapshots, ctx,
                                     instance, request_id, snapshots) or 0
        return deleted

    def _request_grace(self, instance_uuid, request_id):
        """How old a request's snapshots must be before they are judged:
        ``orphan_grace`` once this host finished the request's volume
        snapshot event (it gave up, or made its image), else the volume
        grace (it may still be waiting for them)."""
        try:
            events = self.db.action_get_by_request_id(
                instance_uuid, request_id)['events']
        except exception.NotFound:
            return self._volume_grace()
        if any(event.get('event') == VOLUME_SNAPSHOT_EVENT and
               event.get('finish_time') is not None for event in events):
            return self.opts.orphan_grace
        return self._volume_grace()

    def clean_request_snapshots(self, ctx, instance, request_id, snapshots):
        """The snapshots of one request: keep what an active image of the
        request records; delete the rest and the request's unfinished
        images. Returns how many snapshots were deleted."""
        uuid = instance['uuid']
        glance_ctx = self.service_context()
        kept = set()
        for image in volume_snapshot.images_of_request(
                self.image_api, glance_ctx, request_id,
                instance.get('project_id')):
            if image.get('status') == 'active':
                try:
                    kept.update(block_device.snapshot_ids_of_image(image))
                except exception.InvalidBDM as exc:
                    LOG.warning('Image %s of request %s has an unreadable '
                                'mapping (%s); keeping its snapshots',
                                image['id'], request_id, exc)
                    return 0
            elif image.get('status') in UNFINISHED_IMAGE_STATUSES:
                self._delete_image(glance_ctx, image['id'],
                                   keep_active=False)
                LOG.warning('Reconciler: deleted unfinished image %s of '
                            'volume snapshot request %s of %s', image['id'],
                            request_id, uuid)
        deleted = []
        for snapshot in snapshots:
            if snapshot['id'] in kept:
                continue
            if snapshot.get('status') in MOVING_SNAPSHOT_STATUSES:
                if snapshot.get('status') != 'creating':
                    continue
                # Its create request died between cinder-api and
                # cinder-volume (cinder-api killed during the cut): it
                # would stay 'creating' for ever and cannot be deleted as
                # it is.
                LOG.warning('Reconciler: Cinder snapshot %s of %s is still '
                            'creating past the grace; resetting it to error '
                            'to delete it', snapshot['id'], uuid)
                self.volume_api.reset_snapshot_status(ctx, snapshot['id'])
            try:
                self.volume_api.delete_snapshot(ctx, snapshot['id'])
            except exception.SnapshotNotFound:
                pass
            deleted.append(snapshot['id'])
        if deleted:
            reason = ('Cinder snapshots %s of request %s are recorded by no '
                      'active image (the volume-backed snapshot failed or '
                      'was interrupted); deleted' % (', '.join(deleted),
                                                     request_id))
            LOG.warning('Reconciler: instance %s: %s', uuid, reason)
            self.record(uuid, exception.VolumeSnapshotFailed(
                instance_uuid=uuid, reason=reason), request_id=request_id)
        return len(deleted)
