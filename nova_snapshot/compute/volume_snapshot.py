"""createImage of a volume-backed server, on the instance's host.

A Cinder snapshot's point in time is fixed when it leaves ``creating`` (on
RBD that is the ``rbd snap create``, ~0.2 s whatever the size); what comes
after is bookkeeping. So the guest is held still only from just before the
snapshot requests until every one of them has left ``creating``:

1. quiesce through the guest agent when the image says it has one (a
   watchdog outside this process thaws it at ``quiesce_deadline`` whatever
   happens here), or else pause the vCPUs for the same window, so the cut
   is at least one point in time across all volumes;
2. request every snapshot at once (``force=True``: the volumes are in
   use; each tagged with the instance and the request), poll them all with
   one list call per interval until none is ``creating``; thaw in a
   ``finally``;
3. wait for every snapshot to be ``available``; anything else deletes all
   the snapshots made and no image is created;
4. create the zero-byte active image whose ``block_device_mapping`` lists
   the snapshots in Nova's image-mapping form.

Unlike Nova (which thaws only when Cinder is done and leaks snapshots on
failure) the freeze window is bounded and failures leave nothing behind;
if this service dies mid-way, its next start finds the request's snapshots
by their tags (:meth:`VolumeSnapshotter.clean_interrupted`).
"""

import logging
import threading
import time

from oslo_utils import strutils

from nova_snapshot.compute import block_device
from nova_snapshot.compute import power_state
from nova_snapshot.compute import vm_states
from nova_snapshot.compute import volumes as compute_volumes
from nova_snapshot import exception
from nova_snapshot import fault_injection

LOG = logging.getLogger(__name__)

QUIESCED = 'quiesced'
PAUSED = 'paused'
CRASH_CONSISTENT = 'crash-consistent'
# A guest that was not running: its disks do not move.
OFFLINE = 'offline'

CONSISTENCY_PROPERTY = 'nova_snapshot_consistency'
FREEZE_MS_PROPERTY = 'nova_snapshot_freeze_ms'
# Leave the freeze a little before the watchdog would end it, so the thaw
# is ours and the window is measured.
_DEADLINE_MARGIN = 0.5
# Metadata on every Cinder snapshot we request: if this service dies before
# the image records the snapshots, the next start finds them by it.
INSTANCE_TAG = 'nova_snapshot_instance_uuid'
REQUEST_TAG = 'nova_snapshot_request_id'


def _sysmeta_bool(instance, key):
    value = (instance.get('system_metadata') or {}).get(key)
    return strutils.bool_from_string(value, strict=False, default=False)


def wants_quiesce(instance):
    """The image says the guest runs qemu-ga (Nova's hw_qemu_guest_agent)."""
    return _sysmeta_bool(instance, 'image_hw_qemu_guest_agent')


def requires_quiesce(instance):
    return _sysmeta_bool(instance, 'image_os_require_quiesce')


class _StillCreating(Exception):
    """A snapshot did not leave 'creating' within the freeze window."""


def images_of_request(image_api, context, request_id, project_id):
    """The Glance images made for ``request_id`` in the server's project.

    The clean-ups list them as the service user, across projects: an image
    another project tagged with the same request id must neither keep this
    project's snapshots alive nor be deleted by them.
    """
    return [image for image in image_api.list(
        context, **{REQUEST_TAG: request_id})
        if project_id is None or image.get('owner') == project_id]


class VolumeSnapshotter(object):
    """Runs the procedure; one per compute manager."""

    def __init__(self, conf, db, driver, volume_api, image_api):
        self.conf = conf
        self.db = db
        self.driver = driver
        self.volume_api = volume_api
        self.image_api = image_api

    def snapshot(self, context, instance, image_meta):
        """Take the snapshot; returns ``(image, facts)``.

        The caller holds the server's lock (the compute manager's
        per-server lock): two freezes of one guest must not nest, the
        second thaw would end the first one's window.
        """
        if self.volume_api is None:
            raise exception.VolumeBackedSnapshotNotSupported(
                instance_uuid=instance['uuid'])
        return self._snapshot(context, instance, image_meta)

    def _snapshot(self, context, instance, image_meta):
        uuid = instance['uuid']
        started = time.monotonic()
        bdms = [bdm for bdm in self.db.bdm_get_by_instance(uuid)
                if not bdm.get('no_device')]
        volume_bdms = [bdm for bdm in bdms if block_device.is_volume(bdm)
                       and bdm.get('volume_id')]
        local_mappings = [block_device.local_image_mapping(bdm)
                          for bdm in bdms if not block_device.is_volume(bdm)]
        name = 'snapshot for %s' % image_meta.get('name')

        created = []   # snapshot ids, appended by the worker threads
        created_lock = threading.Lock()
        facts = {'volumes': len(volume_bdms)}
        try:
            snapshots = self._cut(context, instance, volume_bdms, name,
                                  created, created_lock, facts)
            self._wait_available(context, instance, snapshots)
            fault_injection.point('volume.available')
            mappings = local_mappings + [
                block_device.snapshot_image_mapping(snapshot['id'], bdm)
                for snapshot, bdm in zip(snapshots, volume_bdms)]
            meta = dict(image_meta)
            if mappings:
                meta['block_device_mapping'] = \
                    block_device.encode_image_mapping(mappings)
                meta['bdm_v2'] = 'True'
            meta[CONSISTENCY_PROPERTY] = facts['consistency']
            meta[FREEZE_MS_PROPERTY] = str(facts['freeze_ms'])
            meta[REQUEST_TAG] = context.request_id
            image = self.image_api.create_active_empty(context, meta)
            fault_injection.point('volume.image_created')
        except Exception:
            # Never an image pointing at snapshots that are not there, and
            # no snapshot nobody points at.
            with created_lock:
                leftovers = list(created)
            self._delete_snapshots(context, leftovers)
            raise
        facts['total_s'] = round(time.monotonic() - started, 3)
        LOG.info('Volume-backed snapshot of %s: image %s, %d volume(s), '
                 '%s, frozen %d ms, %.2f s in all', uuid, image['id'],
                 len(volume_bdms), facts['consistency'], facts['freeze_ms'],
                 facts['total_s'])
        return image, facts

    # The cut

    def _hold(self, context, instance):
        """Quiesce or pause the guest.

        :returns: ``(consistency, held)``; ``held`` when we froze or paused
            the guest and must release it.
        """
        current = self.driver.get_power_state(instance)
        if instance.get('vm_state') != vm_states.ACTIVE or \
                current != power_state.RUNNING:
            # A paused guest's vCPUs already stand still; a stopped or
            # saved one does not write at all. Nova quiesces only ACTIVE.
            return (PAUSED if current == power_state.PAUSED else OFFLINE,
                    False)
        required = requires_quiesce(instance)
        if wants_quiesce(instance):
            try:
                self.driver.quiesce(context, instance,
                                    self.conf.compute.quiesce_deadline)
                return QUIESCED, True
            except (exception.InstanceQuiesceNotSupported,
                    exception.InstanceQuiesceFailed,
                    NotImplementedError) as exc:
                if required:
                    raise
                LOG.warning('Could not quiesce %s, going on without: %s',
                            instance['uuid'], exc)
        elif required:
            # Nova: QemuGuestAgentNotEnabled, re-raised because required.
            raise exception.InstanceQuiesceNotSupported(
                instance_id=instance['uuid'],
                reason='the image requires quiesce (os_require_quiesce) but '
                       'does not enable the guest agent '
                       '(hw_qemu_guest_agent)')
        if self.conf.compute.pause_for_volume_cut:
            try:
                paused = self.driver.pause_vcpus(
                    instance, deadline=self.conf.compute.quiesce_deadline)
                # False: it was paused already (not ours to resume).
                return PAUSED, paused is not False
            except Exception as exc:
                LOG.warning('Could not pause %s for the cut, going on '
                            'crash-consistent: %s', instance['uuid'], exc)
        return CRASH_CONSISTENT, False

    def _release(self, context, instance, consistency):
        try:
            if consistency == QUIESCED:
                self.driver.unquiesce(context, instance)
            elif consistency == PAUSED:
                self.driver.resume_vcpus(instance)
        except Exception:
            # The snapshots are fine; the watchdog (or the next start-up)
            # thaws the guest at the deadline.
            LOG.exception('Could not thaw %s after the volume snapshot',
                          instance['uuid'])

    def _cut(self, context, instance, volume_bdms, name, created,
             created_lock, facts):
        """Hold the guest, request all snapshots, release as soon as none
        is 'creating'. Returns the snapshot dicts in BDM order."""
        deadline = self.conf.compute.quiesce_deadline
        held_at = time.monotonic()
        consistency, frozen = self._hold(context, instance)
        fault_injection.point('volume.held')
        cut = False
        try:
            snapshots = compute_volumes.run_parallel(
                lambda bdm: self._request(context, bdm, name, created,
                                          created_lock),
                volume_bdms)
            fault_injection.point('volume.requested')
            if frozen:
                self._wait_cut(context, instance, snapshots,
                               held_at + max(deadline - _DEADLINE_MARGIN,
                                             deadline / 2.0))
            cut = True
        except _StillCreating:
            pass
        finally:
            if frozen:
                self._release(context, instance, consistency)
            freeze_ms = int(round((time.monotonic() - held_at) * 1000))
        facts['freeze_ms'] = freeze_ms if frozen else 0
        fault_injection.point('volume.released')
        if frozen:
            LOG.info('Guest %s %s for %d ms while %d volume snapshot(s) '
                     'were cut', instance['uuid'], consistency, freeze_ms,
                     len(volume_bdms))
        if not cut:
            # The window closed before Cinder fixed the point in time: the
            # cut may have happened after the thaw.
            if requires_quiesce(instance):
                raise exception.InstanceQuiesceFailed(
                    reason='the volume snapshots were not cut within the '
                           'quiesce deadline of %s s' % deadline)
            LOG.warning('Snapshots of %s still creating at the freeze '
                        'deadline; the image is crash-consistent',
                        instance['uuid'])
            consistency = CRASH_CONSISTENT
        facts['consistency'] = consistency
        return snapshots

    def _request(self, context, bdm, name, created, created_lock):
        snapshot = self.volume_api.create_snapshot_force(
            context, bdm['volume_id'], name,
            metadata={INSTANCE_TAG: bdm['instance_uuid'],
                      REQUEST_TAG: context.request_id})
        with created_lock:
            created.append((bdm['volume_id'], snapshot['id']))
            fault_injection.point('volume.snapshot_requested')
        return snapshot

    def _wait_cut(self, context, instance, snapshots, poll_until):
        """Return once no snapshot is 'creating' (their point in time is
        fixed); _StillCreating at ``poll_until``.

        One list call per poll, filtered by this request's tag, whatever
        the number of volumes: per-snapshot polls from every worker made
        Cinder's API busiest exactly while it had the snapshots to make.
        """
        pending = {snapshot['id'] for snapshot in snapshots
                   if snapshot.get('status') == 'creating'}
        interval = self.conf.compute.snapshot_poll_interval
        while pending:
            if time.monotonic() >= poll_until:
                raise _StillCreating()
            time.sleep(interval)
            listed = {snapshot['id']: snapshot for snapshot in
                      self.volume_api.list_snapshots(
                          context, metadata={REQUEST_TAG: context.request_id})}
            for snapshot_id in sorted(pending):
                snapshot = listed.get(snapshot_id) or \
                    self.volume_api.get_snapshot(context, snapshot_id)
                status = snapshot.get('status')
                if status == 'error':
                    raise exception.VolumeSnapshotFailed(
                        instance_uuid=instance['uuid'],
                        reason='snapshot %s of volume %s went to error' % (
                            snapshot_id, snapshot.get('volume_id')))
                if status != 'creating':
                    pending.discard(snapshot_id)

    # After the cut

    def _wait_available(self, context, instance, snapshots):
        timeout = self.conf.compute.volume_snapshot_timeout
        deadline = time.monotonic() + timeout

        def wait(snapshot):
            left = max(deadline - time.monotonic(), 0.001)
            try:
                self.volume_api.wait_for_snapshot(context, snapshot['id'],
                                                  left)
            except exception.VolumeError as exc:
                raise exception.VolumeSnapshotFailed(
                    instance_uuid=instance['uuid'],
                    reason='snapshot %s of volume %s: %s' % (
                        snapshot['id'], snapshot.get('volume_id'),
                        exc.format_message()))
        compute_volumes.run_parallel(wait, snapshots)

    # After a crash

    def clean_interrupted(self, context, instance):
        """Undo what a dead service left of the request in ``context``.

        ``context`` is the interrupted request's (its project, user and
        request id). The service may have died before, while or after the
        zero-byte image was made: an active image made for the request
        keeps the snapshots it lists; an unfinished one is deleted; every
        other snapshot requested for it is deleted.

        :returns: the ids of the snapshots deleted
        """
        uuid = instance['uuid']
        ours = [(snapshot.get('volume_id'), snapshot['id'])
                for snapshot in self.volume_api.list_snapshots(
                    context, metadata={INSTANCE_TAG: uuid,
                                       REQUEST_TAG: context.request_id})]
        kept = set()
        for image in images_of_request(self.image_api, context,
                                       context.request_id,
                                       instance.get('project_id')):
            if image.get('status') != 'active':
                self.image_api.delete(context, image['id'])
                continue
            try:
                kept.update(block_device.snapshot_ids_of_image(image))
            except exception.InvalidBDM as exc:
                # Cannot tell what it records: deleting could break it.
                LOG.warning('Image %s of %s has an unreadable mapping (%s); '
                            'keeping snapshots %s', image['id'], uuid, exc,
                            [snapshot_id for _v, snapshot_id in ours])
                return []
        orphans = [item for item in ours if item[1] not in kept]
        left = self._delete_snapshots(context, orphans)
        if left:
            # Still tagged in Cinder: the next start-up or the reconciler
            # finds them by the same tags.
            raise exception.VolumeError(
                reason='could not delete Cinder snapshots %s' % left)
        return [snapshot_id for _volume_id, snapshot_id in orphans]

    def _delete_snapshots(self, context, created):
        """Delete what we made; a snapshot still 'creating' cannot be
        deleted, so wait for it to settle first.

        :returns: the ids of the snapshots that could not be deleted
            (they keep their request tags, by which the reconciler and the
            next start-up find them).
        """
        def delete(item):
            _volume_id, snapshot_id = item
            return compute_volumes.delete_patiently(
                lambda: self.volume_api.delete_snapshot(context, snapshot_id),
                exception.SnapshotNotFound, 'snapshot', snapshot_id)
        try:
            done = compute_volumes.run_parallel(delete, created)
        except Exception:
            LOG.exception('Cleanup of snapshots %s failed', created)
            return [snapshot_id for _volume_id, snapshot_id in created]
        left = [snapshot_id for (_volume_id, snapshot_id), gone
                in zip(created, done) if not gone]
        if left:
            LOG.warning('Cinder snapshots %s are left behind, tagged %s=%s',
                        left, REQUEST_TAG, context.request_id)
        return left
