"""Rebuild (Nova's ``rebuild`` server action): the same server, its root
disk replaced by an image (typically one of its own snapshots).

API side (:func:`request`), in Nova's order: the lock check; vm_state
ACTIVE, STOPPED or ERROR with no task state; the image (400 when Glance
does not find it); OS-DCF:diskConfig against the image; a volume-backed
server may only be rebuilt with the image its root volume came from (Nova
before 2.93: the root volume is never re-imaged, 400 otherwise); the image
must fit the flavor as at create. Then one compare-and-swap from task state
None to ``rebuilding`` writes what the request changes (image_ref, the
``image_*`` system metadata of the new image, name, metadata, access
addresses, diskConfig), so the 202 body already shows them, as Nova's
does; the instance action; the cast. A cast that never left puts every
one of those fields back (compare-and-swap from ``rebuilding``) and the
caller answers 503.

Host side (:func:`run`): ``rebuilding`` -> ``rebuild_block_device_mapping``
(the first compare-and-swap, before any work, so a duplicate or replayed
cast backs off) -> ``rebuild_spawning`` -> None. The guest is destroyed and
spawned again from the image (the driver's ``rebuild``); volumes keep their
attachments and data (the domain is redefined with the same connection
info). A server rebuilt while STOPPED is powered off again and stays
STOPPED; from ACTIVE or ERROR it ends ACTIVE. A failure after the guest was
touched is Nova's: ERROR with a fault.

``preserve_ephemeral`` is accepted and recorded in the action event; there
are no ephemeral disks here, so it changes nothing.
"""

import logging

from oslo_utils import excutils
from oslo_utils import timeutils

from nova_snapshot.compute import block_device
from nova_snapshot.compute import lock as instance_lock
from nova_snapshot.compute import snapshot_metadata
from nova_snapshot.compute import task_states
from nova_snapshot.compute import vm_states
from nova_snapshot.compute import volumes as compute_volumes
from nova_snapshot import exception
from nova_snapshot import fault_injection

LOG = logging.getLogger(__name__)

ACTION = 'rebuild'
EVENT = 'compute_rebuild_instance'
# Nova's check_instance_state of rebuild.
REBUILD_ALLOWED = (vm_states.ACTIVE, vm_states.STOPPED, vm_states.ERROR)
# Fields a rebuild request may change (and a failed cast puts back).
_FIELDS = ('image_ref', 'name', 'metadata', 'access_ip_v4', 'access_ip_v6',
           'auto_disk_config', 'progress')
VOLUME_BACKED_IMAGE_CHANGE = ('Unable to rebuild with a different image for '
                              'a volume-backed server.')


def _image_sysmeta_updates(current, new):
    """system_metadata changes that swap the ``image_*`` keys of
    ``current`` for those of ``new`` (None removes a key)."""
    updates = {key: None for key in current
               if key.startswith(snapshot_metadata.SYSMETA_PREFIX)}
    updates.update(new)
    return updates


def _root_volume_image(api, context, instance):
    """The image id a volume-backed server's root volume was made from
    (Cinder's volume_image_metadata), or None."""
    bdms = api.db.bdm_get_by_instance(instance['uuid'])
    root = block_device.root_bdm(bdms)
    if root is None or not root.get('volume_id') or api.volume_api is None:
        return None
    volume = api.volume_api.get(context, root['volume_id'])
    return (volume.get('volume_image_metadata') or {}).get('image_id')


def request(api, context, instance, image_href, name=None, metadata=None,
            access_ip_v4=None, access_ip_v6=None, auto_disk_config=None,
            preserve_ephemeral=False):
    """Accept a rebuild (``api``: the ComputeAPI); returns the instance
    with the request's changes and task state ``rebuilding``.

    ``None`` leaves a field as it is; ``metadata`` replaces the server's
    metadata (Nova).

    :raises: InstanceIsLocked, InstanceInvalidState (409), ImageNotFound,
        Invalid (400: image, flavor, diskConfig, volume-backed),
        ComputeServiceUnavailable (503, everything put back).
    """
    from nova_snapshot.compute import api as compute_api
    instance_lock.check(context, instance)
    compute_api.check_instance_state(instance, ACTION,
                                     vm_state=REBUILD_ALLOWED)
    image = api.image_api.get(context, image_href)
    auto_disk_config = compute_api.disk_config_for_create(image,
                                                          auto_disk_config)
    flavor = instance.get('flavor') or {}
    volume_backed = api.is_volume_backed(context, instance)
    if volume_backed and _root_volume_image(api, context, instance) != \
            image_href:
        raise exception.ImageUnacceptable(image_id=image_href,
                                          reason=VOLUME_BACKED_IMAGE_CHANGE)
    api._check_image_fits(image, dict(flavor, root_gb=2 ** 31)
                          if volume_backed else flavor)
    new_sysmeta = snapshot_metadata.system_metadata_from_image(
        image, dict(flavor, root_gb=0) if volume_backed else flavor)

    values = {'task_state': task_states.REBUILDING, 'progress': 0,
              'auto_disk_config': auto_disk_config}
    if not volume_backed:
        # A volume-backed server keeps image_ref '' (Nova's marker).
        values['image_ref'] = image['id']
    for field, value in (('name', name), ('metadata', metadata),
                         ('access_ip_v4', access_ip_v4),
                         ('access_ip_v6', access_ip_v6)):
        if value is not None:
            values[field] = value
    before = {}

    def still_allowed(current):
        compute_api.check_instance_state(current, ACTION,
                                         vm_state=REBUILD_ALLOWED)
        before.clear()
        before.update({field: current.get(field) for field in _FIELDS})
        before['system_metadata'] = dict(current['system_metadata'])
    sysmeta_updates = _image_sysmeta_updates(instance['system_metadata'],
                                             new_sysmeta)
    try:
        instance = api.db.instance_update_checked(
            instance['uuid'], values, expected_task_state=None,
            check=still_allowed,
            system_metadata=sysmeta_updates)
    except (exception.InstanceNotFound,
            exception.UnexpectedTaskStateError) as exc:
        raise compute_api._conflict_from_cas(exc, instance['uuid'], ACTION)
    api.db.action_start(context, instance['uuid'], ACTION)
    try:
        api.rpcapi.rebuild_instance(context, instance, image['id'],
                                    preserve_ephemeral=preserve_ephemeral)
    except Exception:
        with excutils.save_and_reraise_exception():
            _put_back(api.db, instance, before)
    return instance


def _put_back(db, instance, before):
    """Undo an accepted rebuild whose cast never left: the fields and the
    ``image_*`` system metadata as they were, task state None."""
    values = {field: before.get(field) for field in _FIELDS}
    values['task_state'] = None
    sysmeta = _image_sysmeta_updates(
        instance['system_metadata'],
        {key: value for key, value in before['system_metadata'].items()
         if key.startswith(snapshot_metadata.SYSMETA_PREFIX)})
    try:
        db.instance_update_checked(
            instance['uuid'], values,
            expected_task_state=task_states.REBUILDING,
            system_metadata=sysmeta)
    except (exception.InstanceNotFound, exception.UnexpectedTaskStateError):
        pass
    except Exception:
        LOG.warning('Could not put back %s after an unsent rebuild',
                    instance['uuid'], exc_info=True)


def run(manager, context, instance_uuid, image_ref,
        preserve_ephemeral=False):
    """The compute side of a rebuild (``manager``: the host's
    ComputeManager)."""
    db = manager.db
    record = manager._record(context, instance_uuid, EVENT, action=ACTION)
    record.on_release(lambda exc: _failed(manager, record))
    # Recorded whatever happens: the request asked for it.
    record.details = ('preserve_ephemeral=%s (no ephemeral disks on this '
                      'service)' % bool(preserve_ephemeral))
    with record:
        instance = db.instance_get(instance_uuid)
        if instance['image_ref'] and image_ref != instance['image_ref']:
            # A stale cast: a later rebuild (or its undo) changed the image.
            raise exception.UnexpectedTaskStateError(
                instance_uuid=instance_uuid,
                expected={'image_ref': image_ref},
                actual={'image_ref': instance['image_ref']})
        orig_vm_state = instance['vm_state']
        # The first compare-and-swap comes before any work: of a cast and
        # its replay (or a duplicate) only one goes on.
        instance = db.instance_update(
            instance_uuid,
            {'task_state': task_states.REBUILD_BLOCK_DEVICE_MAPPING},
            expected_task_state=task_states.REBUILDING)
        record.start(instance)
        image = manager._boot_image(context, instance, instance['image_ref'])
        rows = compute_volumes.volume_bdms(
            db.bdm_get_by_instance(instance_uuid))
        block_device_info = None
        if rows:
            block_device_info = manager.volumes.block_device_info(instance,
                                                                  rows)
        instance = db.instance_update(
            instance_uuid, {'task_state': task_states.REBUILD_SPAWNING},
            expected_task_state=task_states.REBUILD_BLOCK_DEVICE_MAPPING)
        record.instance = instance
        fault_injection.point('rebuild.spawning_set')
        state = manager.driver.rebuild(context, instance, image,
                                       block_device_info)
        fault_injection.point('rebuild.spawned')
        vm_state = vm_states.ACTIVE
        if orig_vm_state == vm_states.STOPPED:
            # Nova: a server rebuilt while stopped is stopped again.
            manager.driver.power_off(instance)
            state = None
            vm_state = vm_states.STOPPED
        if state is None:
            state = manager.driver.get_power_state(instance)
        record.instance = db.instance_update(
            instance_uuid, {'vm_state': vm_state, 'task_state': None,
                            'power_state': state, 'progress': 0,
                            'launched_at': timeutils.utcnow()},
            expected_task_state=task_states.REBUILD_SPAWNING)


def _failed(manager, record):
    """Nova's _set_instance_obj_error_state: ERROR, task state None, while
    a rebuild state is still ours (a delete keeps its own)."""
    try:
        record.instance = manager.db.instance_update(
            record.instance_uuid, {'vm_state': vm_states.ERROR,
                                   'task_state': None},
            expected_task_state=task_states.REBUILD_STATES)
    except (exception.InstanceNotFound, exception.UnexpectedTaskStateError):
        pass


def repair_at_start_up(manager, instance):
    """A rebuild interrupted by a restart of the compute service: ERROR
    with a fault, as Nova's ``_init_instance`` does (the old disk may be
    gone already); the user rebuilds again or deletes."""
    uuid = instance['uuid']
    message = ('Rebuild interrupted by a restart of the compute service '
               '(task_state was %s)' % instance['task_state'])
    manager._fault(uuid, exception.NovaSnapshotException(message))
    try:
        return manager.db.instance_update(
            uuid, {'vm_state': vm_states.ERROR, 'task_state': None},
            expected_task_state=instance['task_state'])
    except exception.UnexpectedTaskStateError:
        return manager.db.instance_get(uuid)
