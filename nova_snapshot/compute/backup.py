"""createBackup: a snapshot kept in a rotation, as Nova does it.

API side (:func:`start`): Nova's checks in Nova's order (vm_state 409,
then a volume-backed server is a 400: Nova backs up image-backed servers
only), a queued image with ``image_type=backup`` and ``backup_type``,
task_state ``image_backup`` taken by compare-and-swap, the
``createBackup`` instance action, then the ``backup_instance`` cast. A
cast that cannot be sent gives the task state back and deletes the image.

Compute side: the capture is the image-backed snapshot's own
(``ComputeManager._queue_capture``: same lock, slots, faults, undo and
release), under ``image_backup`` instead of ``image_snapshot``. Once the
image is active and the task state released, :func:`rotate_and_record`
deletes the oldest of the server's backups of that type beyond
``rotation`` (0 deletes them all, the new one too). Rotation has its own
action event (``compute_rotate_backups``): an image it could not delete is
logged and that event ends in error; the backup itself stays a success,
and the next rotation of the type tries that image again (it is still one
of the oldest).
"""

import logging

from oslo_utils import excutils

from nova_snapshot.compute import action_record
from nova_snapshot.compute import api as compute_api
from nova_snapshot.compute import snapshot_metadata
from nova_snapshot.compute import task_states
from nova_snapshot.compute import vm_states
from nova_snapshot import exception
from nova_snapshot import fault_injection

LOG = logging.getLogger(__name__)

ACTION = 'createBackup'
# The capture's event (Nova's name: compute_ + the manager method).
BACKUP_EVENT = 'compute_backup_instance'
ROTATE_EVENT = 'compute_rotate_backups'
IMAGE_TYPE = 'backup'


class VolumeBackedBackupNotSupported(exception.Invalid):
    # Nova's words (InvalidRequest, a 400).
    msg_fmt = 'Backup is not supported for volume-backed instances.'


class RotationIncomplete(exception.NovaSnapshotException):
    msg_fmt = ('Rotation of the %(backup_type)s backups of %(instance_uuid)s '
               'could not delete %(image_ids)s')


# -- API side -----------------------------------------------------------------

def start(api, context, instance, name, backup_type, rotation,
          extra_properties=None):
    """Start a backup of ``instance``; returns the queued image.

    :param api: the ComputeAPI (its conf, db, image_api, rpcapi).
    :raises InstanceInvalidState: wrong vm_state or a task in progress.
    :raises VolumeBackedBackupNotSupported: a volume-backed server.
    """
    compute_api.check_instance_state(instance, ACTION,
                                     vm_state=vm_states.SNAPSHOT_ALLOWED)
    if api.is_volume_backed(context, instance):
        LOG.info('Refusing to back up volume-backed instance %s',
                 instance['uuid'])
        raise VolumeBackedBackupNotSupported()
    # backup_type wins over the user's metadata, image_type does not
    # (Nova's order).
    properties = dict(extra_properties or {}, backup_type=backup_type)
    image_meta = snapshot_metadata.snapshot_image_meta(
        api.conf, context, instance, name, properties, image_type=IMAGE_TYPE)
    image = api.image_api.create(context, image_meta)

    def allowed(current):
        # The vm_state again, on the row the write is checked against.
        compute_api.check_instance_state(current, ACTION,
                                         vm_state=vm_states.SNAPSHOT_ALLOWED)
    try:
        instance = api.db.instance_update_checked(
            instance['uuid'], {'task_state': task_states.IMAGE_BACKUP},
            expected_task_state=None, check=allowed,
            system_metadata={compute_api.SNAPSHOT_IMAGE_KEY: image['id'],
                             compute_api.VOLUME_SNAPSHOT_HOLD_KEY: None})
    except exception.InstanceInvalidState:
        api._delete_image_quietly(context, image['id'])
        raise
    except (exception.InstanceNotFound,
            exception.UnexpectedTaskStateError) as exc:
        api._delete_image_quietly(context, image['id'])
        raise compute_api._conflict_from_cas(exc, instance['uuid'], ACTION)
    api.db.action_start(context, instance['uuid'], ACTION)
    try:
        api.rpcapi.backup_instance(context, instance, image['id'],
                                   backup_type, rotation)
    except Exception:
        with excutils.save_and_reraise_exception():
            # The cast never left: nothing on a compute host will clean up.
            api._delete_image_quietly(context, image['id'])
            compute_api.give_back_task_state(
                api.db, instance['uuid'], task_states.IMAGE_BACKUP,
                image_id=image['id'])
    return image


# -- compute side: rotation ---------------------------------------------------

def _owners(context, instance):
    """Whose images count: the server's project, and the caller's when an
    admin backs up another project's server (the new image is the
    caller's). Never a third project's: anyone can make a public image
    with these properties, and it must not push real backups out."""
    owners = [instance['project_id']]
    if context.project_id and context.project_id != instance['project_id']:
        owners.append(context.project_id)
    return owners


def backups_of(image_api, context, instance, backup_type, new_image_id=None):
    """The server's backups of ``backup_type``, newest first, from the new
    image on when it is given.

    Glance lists newest first (created_at, then id, at the database's
    precision); the stable sort below only merges the owners' lists.
    Images listed before the new one are later requests' (a backup cast
    right after this one's task state was released): their own rotation
    counts them, and this one must not delete them while they upload.
    """
    found = {}
    for owner in _owners(context, instance):
        for image in image_api.list(context, instance_uuid=instance['uuid'],
                                    image_type=IMAGE_TYPE,
                                    backup_type=backup_type, owner=owner):
            found.setdefault(image['id'], image)
    images = sorted(found.values(), key=lambda i: str(i.get('created_at')
                                                      or ''), reverse=True)
    ids = [image['id'] for image in images]
    if new_image_id in ids:
        images = images[ids.index(new_image_id):]
    return images


def excess(images, rotation):
    """The images beyond the ``rotation`` newest (oldest last, as given)."""
    return list(images[max(rotation, 0):])


def rotate(image_api, delete, context, instance, backup_type, rotation,
           new_image_id=None):
    """Delete the backups beyond ``rotation``.

    :param delete: ``delete(context, image_id)`` -> True when the image is
        gone (the manager's retried delete).
    :returns: (kept ids, deleted ids, ids that could not be deleted)
    """
    images = backups_of(image_api, context, instance, backup_type,
                        new_image_id)
    doomed = excess(images, rotation)
    LOG.info('Instance %s has %d %s backup(s), rotation %d: deleting %d',
             instance['uuid'], len(images), backup_type, rotation,
             len(doomed))
    deleted, failed = [], []
    # Oldest first: an interrupted rotation leaves the newest.
    for image in reversed(doomed):
        if delete(context, image['id']):
            deleted.append(image['id'])
            # Rotation half done: the oldest deleted, the rest kept.
            fault_injection.point('backup.mid_rotation')
        else:
            LOG.warning('Rotation of %s could not delete backup image %s; '
                        'the next rotation of %s backups tries again',
                        instance['uuid'], image['id'], backup_type)
            failed.append(image['id'])
    kept = [image['id'] for image in images[:len(images) - len(doomed)]]
    return kept, deleted, failed


_ROTATION_OUTCOMES = (
    # The backup is made and the server is fine: no fault, no release;
    # the event says what is left.
    (RotationIncomplete, action_record.Outcome(
        'rotation incomplete', fault=False, notify=False, release=False,
        level=logging.WARNING, traceback=False)),
    (Exception, action_record.Outcome(
        'rotation failed', fault=False, notify=False, release=False,
        level=logging.WARNING)),
)


def rotate_and_record(manager, context, instance, image_id, backup_type,
                      rotation):
    """The rotation after a successful backup, under its own event."""
    uuid = instance['uuid']
    # The backup is made and its task state released; no rotation yet.
    fault_injection.point('backup.captured')
    record = action_record.ActionRecord(manager, context, uuid, ROTATE_EVENT,
                                        outcomes=_ROTATION_OUTCOMES)
    with record:
        kept, deleted, failed = rotate(
            manager.image_api, manager._delete_image, context, instance,
            backup_type, rotation, new_image_id=image_id)
        record.details = 'rotation %d: kept %s, deleted %s' % (
            rotation, ','.join(kept) or '-', ','.join(deleted) or '-')
        if failed:
            record.details += ', not deleted %s' % ','.join(failed)
            raise RotationIncomplete(instance_uuid=uuid,
                                     backup_type=backup_type,
                                     image_ids=','.join(failed))
    return record
