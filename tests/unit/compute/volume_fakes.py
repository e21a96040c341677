"""Test doubles for volume-backed servers: an in-memory Cinder at the
CinderAPI boundary, a FakeDriver with the volume methods, and a test case
wiring them into the in-process compute service of ``fakes``."""

import threading
import time
from unittest import mock
import uuid as uuidlib

from nova_snapshot.compute import api as compute_api
from nova_snapshot import exception
from nova_snapshot.virt import fake as fake_virt
from nova_snapshot import volume
from tests.unit.compute import fakes


class FakeCinder(object):
    """The CinderAPI interface over dicts.

    Steering:

    * ``snapshot_creating_s``: seconds a new snapshot stays ``creating``;
      ``snapshot_available_s``: further seconds until ``available``
      (status moves with time, as Cinder's would);
    * ``snapshot_error_for``: volume ids whose snapshot goes to ``error``
      instead of ``available``;
    * ``snapshot_request_s``: how long ``create_snapshot_force`` takes;
    * ``fail_create_volume_for``: sources (image/snapshot id, or 'blank')
      whose volume goes to ``error``;
    * ``limits``: what ``get_absolute_limits`` returns.

    ``requests`` records ``(method, start, end, arg)`` with monotonic
    times; ``events`` records ``(time, what, id)`` status changes seen.
    """

    def __init__(self):
        self.volumes = {}
        self.snapshots = {}
        self.attachments = {}
        self.requests = []
        self.snapshot_creating_s = 0.15
        self.snapshot_available_s = 0.3
        self.snapshot_request_s = 0.1
        self.snapshot_error_for = set()
        self.fail_create_volume_for = set()
        self.limits = {'maxTotalSnapshots': -1, 'totalSnapshotsUsed': 0}
        self.deleted_volumes = []
        self.deleted_snapshots = []
        self.deleted_attachments = []
        self._lock = threading.Lock()

    def _record(self, method, start, arg):
        with self._lock:
            self.requests.append((method, start, time.monotonic(), arg))

    def calls(self, method):
        with self._lock:
            return [r for r in self.requests if r[0] == method]

    def add_volume(self, size=1, status='available', **extra):
        volume = {'id': str(uuidlib.uuid4()), 'size': size,
                  'status': status, 'volume_image_metadata': {}}
        volume.update(extra)
        self.volumes[volume['id']] = volume
        return dict(volume)

    # volumes

    def get(self, context, volume_id):
        try:
            return dict(self.volumes[volume_id])
        except KeyError:
            raise exception.VolumeNotFound(volume_id=volume_id)

    def create(self, context, size, name, snapshot_id=None, image_id=None,
               volume_type=None, description=None):
        start = time.monotonic()
        source = image_id or snapshot_id or 'blank'
        if snapshot_id is not None and size is None:
            size = self.snapshots[snapshot_id]['volume_size']
        volume = self.add_volume(
            size=size, name=name, snapshot_id=snapshot_id, image_id=image_id,
            volume_type=volume_type,
            status=('error' if source in self.fail_create_volume_for
                    else 'available'),
            volume_image_metadata=({'image_id': image_id} if image_id
                                   else {}))
        time.sleep(0.05)
        self._record('create', start, source)
        return volume

    def delete(self, context, volume_id):
        with self._lock:
            if volume_id not in self.volumes:
                raise exception.VolumeNotFound(volume_id=volume_id)
            if any(a['volume_id'] == volume_id
                   for a in self.attachments.values()):
                raise exception.Invalid(reason='volume is attached')
            if any(s['volume_id'] == volume_id
                   for s in self.snapshots.values()):
                raise exception.InvalidVolume(reason='volume has snapshots')
            del self.volumes[volume_id]
            self.deleted_volumes.append(volume_id)

    def wait_for_volume(self, context, volume_id, timeout,
                        statuses=('available',)):
        with self._lock:
            self.requests.append(('wait_for_volume', time.monotonic(),
                                  time.monotonic(), (volume_id, timeout)))
        status = self.get(context, volume_id)['status']
        if status not in statuses:
            raise exception.VolumeError(
                reason='volume %s is %s' % (volume_id, status))
        return self.get(context, volume_id)

    # attachments

    def attachment_create(self, context, volume_id, instance_uuid,
                          connector=None, mountpoint=None):
        self.get(context, volume_id)
        attachment = {'id': str(uuidlib.uuid4()), 'volume_id': volume_id,
                      'instance_uuid': instance_uuid, 'connector': connector,
                      'status': 'reserved'}
        with self._lock:
            self.attachments[attachment['id']] = attachment
            self.volumes[volume_id]['status'] = 'reserved'
        return {'id': attachment['id'], 'connection_info': None}

    def attachment_update(self, context, attachment_id, connector,
                          mountpoint=None):
        attachment = self.attachments[attachment_id]
        attachment.update(connector=connector, status='attaching',
                          mountpoint=mountpoint)
        return {'driver_volume_type': 'rbd',
                'data': {'name': 'volumes/volume-%s'
                         % attachment['volume_id'],
                         'volume_id': attachment['volume_id']}}

    def attachment_complete(self, context, attachment_id):
        attachment = self.attachments[attachment_id]
        attachment['status'] = 'attached'
        self.volumes[attachment['volume_id']]['status'] = 'in-use'

    def attachment_delete(self, context, attachment_id):
        with self._lock:
            attachment = self.attachments.pop(attachment_id, None)
            if attachment is None:
                raise exception.NotFound()
            self.deleted_attachments.append(attachment_id)
            volume = self.volumes.get(attachment['volume_id'])
            left = [a for a in self.attachments.values()
                    if a['volume_id'] == attachment['volume_id']]
            if volume is not None:
                # Cinder: the volume follows the attachments it still has.
                volume['status'] = (
                    'available' if not left else
                    'in-use' if any(a['status'] == 'attached' for a in left)
                    else 'reserved')

    def reimage(self, context, volume_id, image_id, reimage_reserved=False):
        """Cinder's os-reimage, done at once (``reimage_result``: the
        status it ends in, None for the one it had)."""
        start = time.monotonic()
        with self._lock:
            volume = self.volumes[volume_id]
            allowed = ('available', 'error') + (
                ('reserved',) if reimage_reserved else ())
            if volume['status'] not in allowed:
                raise exception.InvalidVolume(
                    reason='volume %s is %s' % (volume_id, volume['status']))
            volume['volume_image_metadata'] = {'image_id': image_id}
            volume['status'] = (getattr(self, 'reimage_result', None) or
                                volume['status'])
        self._record('reimage', start, (volume_id, image_id))

    # snapshots

    def _status(self, snapshot):
        age = time.monotonic() - snapshot['created']
        if age < self.snapshot_creating_s:
            return 'creating'
        if snapshot['volume_id'] in self.snapshot_error_for:
            return 'error'
        if age < self.snapshot_creating_s + self.snapshot_available_s:
            return 'creating-data'   # not a Cinder status; see get_snapshot
        return 'available'

    def create_snapshot_force(self, context, volume_id, name,
                              description=None, metadata=None):
        start = time.monotonic()
        volume = self.get(context, volume_id)
        time.sleep(self.snapshot_request_s)
        snapshot = {'id': str(uuidlib.uuid4()), 'volume_id': volume_id,
                    'volume_size': volume['size'], 'name': name,
                    'metadata': dict(metadata or {}),
                    'created': time.monotonic()}
        with self._lock:
            self.snapshots[snapshot['id']] = snapshot
        self._record('create_snapshot_force', start, volume_id)
        return self._snapshot_view(snapshot['id'])

    def _snapshot_view(self, snapshot_id):
        try:
            snapshot = dict(self.snapshots[snapshot_id])
        except KeyError:
            raise exception.SnapshotNotFound(snapshot_id=snapshot_id)
        status = self._status(snapshot)
        # 'creating' ends when the point in time is fixed; the fake then
        # shows a non-creating, not yet available status for a while so a
        # test can tell "left creating" from "available" apart.
        snapshot['status'] = 'backing-up' if status == 'creating-data' \
            else status
        return snapshot

    def get_snapshot(self, context, snapshot_id):
        snapshot = self._snapshot_view(snapshot_id)
        with self._lock:
            self.requests.append(('get_snapshot', time.monotonic(),
                                  time.monotonic(),
                                  (snapshot_id, snapshot['status'])))
        return snapshot

    def list_snapshots(self, context, volume_id=None, metadata=None):
        start = time.monotonic()
        with self._lock:
            ids = [snapshot_id for snapshot_id, snapshot
                   in self.snapshots.items()
                   if volume_id in (None, snapshot['volume_id']) and all(
                       snapshot['metadata'].get(k) == v
                       for k, v in (metadata or {}).items())]
        self._record('list_snapshots', start, (volume_id, metadata))
        return [self._snapshot_view(snapshot_id) for snapshot_id in ids]

    def wait_for_snapshot(self, context, snapshot_id, timeout,
                          statuses=('available',)):
        deadline = time.monotonic() + timeout
        while True:
            snapshot = self.get_snapshot(context, snapshot_id)
            if snapshot['status'] in statuses:
                return snapshot
            if snapshot['status'] == 'error' or time.monotonic() > deadline:
                raise exception.VolumeError(
                    reason='snapshot %s is %s' % (snapshot_id,
                                                  snapshot['status']))
            time.sleep(0.02)

    def delete_snapshot(self, context, snapshot_id):
        with self._lock:
            if snapshot_id not in self.snapshots:
                raise exception.SnapshotNotFound(snapshot_id=snapshot_id)
        if self.get_snapshot(context, snapshot_id)['status'] == 'creating':
            raise exception.Invalid(reason='snapshot is creating')
        with self._lock:
            del self.snapshots[snapshot_id]
            self.deleted_snapshots.append(snapshot_id)

    def get_absolute_limits(self, context):
        return dict(self.limits)


class VolumeFakeDriver(fake_virt.FakeDriver):
    """FakeDriver plus the volume methods of the design card."""

    def __init__(self, conf, image_api, volume_api=None):
        super().__init__(conf, image_api, volume_api=volume_api)
        self.block_device_infos = {}
        self.attached = {}     # uuid -> {mountpoint: connection_info}
        self.quiesce_error = None
        self.frozen = set()
        self.paused = set()
        self.hold_log = []     # (time, 'freeze'|'thaw'|'pause'|'resume')
        self.thawed_at_start = []
        self.pause_deadlines = []

    def spawn(self, context, instance, image_meta, block_device_info=None):
        state = super().spawn(context, instance, image_meta)
        self.block_device_infos[instance['uuid']] = block_device_info
        self.attached[instance['uuid']] = {
            m['mount_device']: m['connection_info']
            for m in (block_device_info or {}).get('block_device_mapping',
                                                   ())}
        return state

    def destroy(self, context, instance):
        super().destroy(context, instance)
        self.attached.pop(instance['uuid'], None)

    def get_volume_connector(self, instance):
        return {'host': 'fake-host', 'platform': 'x86_64', 'os_type': 'linux',
                'multipath': False, 'initiator': None}

    def attach_volume(self, context, connection_info, instance, mountpoint,
                      disk_bus=None):
        self._record('attach_volume', instance)
        self._state(instance)
        self.attached.setdefault(instance['uuid'], {})[mountpoint] = \
            connection_info

    def detach_volume(self, context, connection_info, instance, mountpoint):
        self._record('detach_volume', instance)
        self.attached.get(instance['uuid'], {}).pop(mountpoint, None)

    def quiesce(self, context, instance, deadline):
        self._record('quiesce', instance)
        if self.quiesce_error is not None:
            raise self.quiesce_error
        self.frozen.add(instance['uuid'])
        self.hold_log.append((time.monotonic(), 'freeze'))

    def unquiesce(self, context, instance):
        self._record('unquiesce', instance)
        self.frozen.discard(instance['uuid'])
        self.hold_log.append((time.monotonic(), 'thaw'))

    def pause_vcpus(self, instance, deadline=10.0):
        self._record('pause_vcpus', instance)
        self.pause_deadlines.append(deadline)
        self.paused.add(instance['uuid'])
        self.hold_log.append((time.monotonic(), 'pause'))
        return True

    def resume_vcpus(self, instance):
        self._record('resume_vcpus', instance)
        self.paused.discard(instance['uuid'])
        self.hold_log.append((time.monotonic(), 'resume'))

    def thaw_if_frozen(self, instance):
        self.thawed_at_start.append(instance['uuid'])
        was = instance['uuid'] in self.frozen | self.paused
        self.frozen.discard(instance['uuid'])
        self.paused.discard(instance['uuid'])
        return was


class VolumeImageAPI(fakes.FakeImageAPI):

    def create_active_empty(self, context, image_meta):
        meta = dict(image_meta)
        meta.setdefault('disk_format', 'raw')
        meta.setdefault('container_format', 'bare')
        image = self.create(context, meta)
        self.upload(context, image['id'], iter([b'']), size=0)
        return self.get(context, image['id'])


class VolumeComputeTestCase(fakes.ComputeTestCase):
    """ComputeTestCase with FakeCinder and VolumeFakeDriver."""

    def setUp(self):
        self.cinder = FakeCinder()
        patches = [
            mock.patch.object(fakes, 'FakeImageAPI', VolumeImageAPI),
            mock.patch.object(fakes.fake_virt, 'FakeDriver',
                              VolumeFakeDriver),
            mock.patch.object(volume, 'build_volume_api',
                              lambda conf: self.cinder),
        ]
        for patch in patches:
            patch.start()
        try:
            super().setUp()
        finally:
            for patch in patches:
                patch.stop()
        self.assertIs(self.cinder, self.manager.volume_api)
        self.api = compute_api.ComputeAPI(self.conf, self.db, self.image_api,
                                          self.rpcapi,
                                          volume_api=self.cinder)

    def boot_volume_backed(self):
        """A server on one volume made from the base image, whose guest
        has an agent (so a volume-backed snapshot freezes it)."""
        self.image_api.images[self.base_image['id']].update(
            hw_qemu_guest_agent='yes')
        return self.boot_from_volume([
            {'source_type': 'image', 'uuid': self.base_image['id'],
             'destination_type': 'volume', 'boot_index': 0,
             'volume_size': 1, 'delete_on_termination': True}])

    def boot_from_volume(self, bdms, image_ref=None, ctx=None,
                         state='active'):
        ctx = ctx or self.ctx
        instance = self.api.create(ctx, 'bfv', image_ref, '1',
                                   block_device_mapping=bdms)
        return self.wait_for_instance(
            instance['uuid'],
            lambda i: i['vm_state'] == state and i['task_state'] is None,
            'instance to become %s' % state)
