"""The compute side of an instance's volumes: create, attach, release.

At build every volume BDM gets its volume (made by Cinder from an image, a
snapshot or nothing, or an existing one), all in parallel, then an
attachment for this host's connector. Each step is written to the BDM row
as soon as it happens, so whatever fails later (or a restart) can find
what to release. The driver turns the rows' ``connection_info`` into disks.
"""

import concurrent.futures
import json
import logging
import time

from nova_snapshot.compute import block_device
from nova_snapshot import exception

LOG = logging.getLogger(__name__)

# Cap on parallel Cinder requests from one build.
MAX_PARALLEL = 16
# A volume still 'creating' cannot be deleted; how long cleanup waits.
CLEANUP_WAIT = 60
# Statuses Cinder leaves by itself; a delete refused in one is retried.
# 'in-use' is among them here: right after its attachment is deleted a
# volume still shows it for a moment.
_MOVING_STATUSES = frozenset([
    'creating', 'attaching', 'detaching', 'reserved', 'in-use', 'deleting',
    'downloading', 'uploading', 'backing-up', 'restoring-backup',
    'extending', 'retyping', 'maintenance'])
_SETTLED = ('available', 'error', 'in-use')


def volume_bdms(bdms):
    return [bdm for bdm in bdms if block_device.is_volume(bdm)]


def run_parallel(func, items, max_workers=MAX_PARALLEL):
    """``func(item)`` for every item at once; waits for all of them.

    :returns: the results in order.
    :raises: the first item's exception, after every call has finished
        (so the caller's cleanup sees everything that was made).
    """
    items = list(items)
    if not items:
        return []
    workers = max(1, min(len(items), max_workers))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(func, item) for item in items]
        concurrent.futures.wait(futures)
    for future in futures:
        error = future.exception()
        if error is not None:
            raise error
    return [future.result() for future in futures]


def decode_connection_info(value):
    if not value:
        return None
    return json.loads(value) if isinstance(value, str) else value


def delete_patiently(delete, gone_exc, kind, item_id, status=None):
    """Call ``delete`` until it works, ``gone_exc`` says it is gone, or
    CLEANUP_WAIT passes; True when the item is gone.

    Cinder refuses (``Invalid``) to delete while a status is moving, e.g.
    a snapshot still 'creating' or a volume 'detaching'; that is waited
    out. With ``status`` (a callable returning the item's status) a refusal
    in a settled status ends the wait at once: a volume that still has
    snapshots stays refused however long one waits.
    """
    deadline = time.monotonic() + CLEANUP_WAIT
    while True:
        try:
            delete()
            return True
        except gone_exc:
            return True
        except exception.Invalid as exc:
            if status is not None:
                try:
                    current = status()
                except gone_exc:
                    return True
                if current not in _MOVING_STATUSES:
                    LOG.warning('Cinder refuses to delete %s %s (%s): %s; '
                                'it is left behind', kind, item_id, current,
                                exc)
                    return False
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        except Exception:
            break
    LOG.warning('Could not delete %s %s; it is left behind', kind, item_id,
                exc_info=True)
    return False


class InstanceVolumes(object):
    """Volume work of one compute host (used by the manager)."""

    def __init__(self, conf, db, driver, volume_api):
        self.conf = conf
        self.db = db
        self.driver = driver
        self.volume_api = volume_api

    def _require_cinder(self):
        if self.volume_api is None:
            raise exception.VolumeError(
                reason='this compute service has no Cinder configured')

    def create_timeout(self, size_gb):
        """Seconds to wait for a new volume: a volume from an image copies
        the data, so the wait grows with the size."""
        compute = self.conf.compute
        return (compute.volume_create_timeout +
                compute.volume_create_timeout_per_gb * int(size_gb or 1))

    # Build

    def prepare(self, context, instance, bdms):
        """Create/check every volume in parallel and attach it to this host.

        :returns: the driver's ``block_device_info``.
        :raises: the first failure; the rows tell :meth:`cleanup` what
            was made.
        """
        bdms = volume_bdms(bdms)
        if not bdms:
            return None
        self._require_cinder()
        started = time.monotonic()
        connector = self.driver.get_volume_connector(instance)
        rows = run_parallel(
            lambda bdm: self._prepare_one(context, instance, bdm, connector),
            bdms)
        LOG.info('Volumes of %s ready and attached in %.2f s (%d)',
                 instance['uuid'], time.monotonic() - started, len(rows))
        return self.block_device_info(instance, rows)

    def _prepare_one(self, context, instance, bdm, connector):
        volume_id = bdm.get('volume_id')
        if bdm['source_type'] == 'volume':
            volume = self.volume_api.get(context, volume_id)
            if volume.get('status') != 'available':
                raise exception.InvalidVolume(
                    reason='volume %s is %s, not available' % (
                        volume_id, volume.get('status')))
        elif not volume_id:
            volume_id = self._create_volume(context, instance, bdm)
        attachment = self.volume_api.attachment_create(
            context, volume_id, instance['uuid'])
        bdm = self.db.bdm_update(bdm['id'],
                                 {'attachment_id': attachment['id']})
        connection_info = self.volume_api.attachment_update(
            context, attachment['id'], connector,
            mountpoint=bdm['device_name'])
        return self.db.bdm_update(
            bdm['id'], {'connection_info': json.dumps(connection_info)})

    def _create_volume(self, context, instance, bdm):
        size = bdm.get('volume_size')
        name = '%s-%s' % (instance['uuid'],
                          block_device.strip_dev(bdm['device_name']))
        kwargs = {'volume_type': bdm.get('volume_type')}
        if bdm['source_type'] == 'image':
            kwargs['image_id'] = bdm['image_id']
        elif bdm['source_type'] == 'snapshot':
            kwargs['snapshot_id'] = bdm['snapshot_id']
            if not size:
                size = self.volume_api.get_snapshot(
                    context, bdm['snapshot_id']).get('volume_size')
        volume = self.volume_api.create(context, size, name, **kwargs)
        # Recorded before the wait: a volume that never becomes available
        # must still be found and deleted.
        self.db.bdm_update(bdm['id'], {'volume_id': volume['id']})
        timeout = self.create_timeout(size)
        started = time.monotonic()
        self.volume_api.wait_for_volume(context, volume['id'], timeout)
        LOG.info('Volume %s (%s GiB from %s) of %s available after %.2f s',
                 volume['id'], size, bdm['source_type'], instance['uuid'],
                 time.monotonic() - started)
        return volume['id']

    @staticmethod
    def block_device_info(instance, rows):
        mappings = []
        for bdm in rows:
            mappings.append({
                'connection_info': decode_connection_info(
                    bdm.get('connection_info')),
                'mount_device': block_device.strip_dev(bdm['device_name']),
                'boot_index': bdm.get('boot_index'),
                'disk_bus': bdm.get('disk_bus') or 'virtio',
                'device_type': bdm.get('device_type') or 'disk',
                'volume_id': bdm.get('volume_id'),
                'delete_on_termination': bool(
                    bdm.get('delete_on_termination')),
            })
        return {'root_device_name': instance.get('root_device_name') or
                block_device.ROOT_DEVICE_NAME,
                'block_device_mapping': mappings}

    def complete(self, context, bdms):
        """Tell Cinder the attachments are in use (after the spawn)."""
        for bdm in volume_bdms(bdms):
            if bdm.get('attachment_id'):
                self.volume_api.attachment_complete(context,
                                                    bdm['attachment_id'])

    # Release

    def cleanup(self, context, bdms, failed_build=False):
        """Release the attachments; delete volumes by delete_on_termination.

        :param failed_build: only volumes this service created are deleted
            (an existing volume the user handed in stays theirs).
        Best effort: every volume is tried; problems are logged.
        """
        bdms = volume_bdms(bdms)
        if not bdms or self.volume_api is None:
            return
        run_parallel(lambda bdm: self._release_one(context, bdm,
                                                   failed_build), bdms)

    def _release_one(self, context, bdm, failed_build):
        values = {}
        if bdm.get('attachment_id'):
            try:
                self.volume_api.attachment_delete(context,
                                                  bdm['attachment_id'])
            except exception.NotFound:
                pass
            except Exception:
                LOG.warning('Could not delete attachment %s of volume %s',
                            bdm['attachment_id'], bdm.get('volume_id'),
                            exc_info=True)
            values.update(attachment_id=None, connection_info=None)
        ours = bdm['source_type'] != 'volume'
        if bdm.get('volume_id') and bdm.get('delete_on_termination') and (
                ours or not failed_build):
            if self.delete_volume(context, bdm['volume_id']):
                values['volume_id'] = None
        if values and bdm.get('id') is not None:
            try:
                self.db.bdm_update(bdm['id'], values)
            except exception.NotFound:
                pass

    def delete_volume(self, context, volume_id):
        """Delete a volume, waiting out 'creating'/'detaching'; True when
        it is gone."""
        return delete_patiently(
            lambda: self.volume_api.delete(context, volume_id),
            exception.VolumeNotFound, 'volume', volume_id,
            status=lambda: self.volume_api.get(context, volume_id)['status'])

    # Attach and detach of data volumes (os-volume_attachments)

    def attach(self, context, instance, bdm):
        """Connect the reserved attachment of ``bdm`` and plug the disk."""
        self._require_cinder()
        connector = self.driver.get_volume_connector(instance)
        connection_info = self.volume_api.attachment_update(
            context, bdm['attachment_id'], connector,
            mountpoint=bdm['device_name'])
        bdm = self.db.bdm_update(
            bdm['id'], {'connection_info': json.dumps(connection_info)})
        self.driver.attach_volume(context, connection_info, instance,
                                  bdm['device_name'],
                                  disk_bus=bdm.get('disk_bus'))
        self.volume_api.attachment_complete(context, bdm['attachment_id'])
        return bdm

    def detach(self, context, instance, bdm):
        """Unplug the disk (if connected), release the attachment, forget
        the BDM."""
        connection_info = decode_connection_info(bdm.get('connection_info'))
        if connection_info:
            try:
                self.driver.detach_volume(context, connection_info, instance,
                                          bdm['device_name'])
            except exception.InstanceNotFound:
                pass  # no guest, nothing plugged
        if bdm.get('attachment_id') and self.volume_api is not None:
            try:
                self.volume_api.attachment_delete(context,
                                                  bdm['attachment_id'])
            except exception.NotFound:
                pass
        self.db.bdm_destroy(bdm['id'])
