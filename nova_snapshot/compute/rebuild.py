"""Rebuild (Nova's ``rebuild`` server action): the same server, its root
disk replaced by an image (typically one of its own snapshots).

API side (:func:`request`), in Nova's order: the lock check; vm_state
ACTIVE, STOPPED or ERROR with no task state; the image (400 when Glance
does not find it); OS-DCF:diskConfig against the image; a volume-backed
server may only be rebuilt with the image its root volume came from (Nova
before 2.93: the root volume is never re-imaged, 400 otherwise); from 2.93
(``reimage_boot_volume``) any image, and then every one of its volumes must
be ``in-use`` (Nova's _check_volume_status, 400) and the image must fit the
root volume; the image must fit the flavor as at create. Then one compare-and-swap from task state
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

Re-imaging the root volume (2.93, a volume-backed server): the API records
the image in system_metadata (``REIMAGE_KEY``, in the same compare-and-swap
as ``rebuilding``), so a replayed lost cast re-images too. On the host, in
``rebuild_block_device_mapping``, as Nova's _rebuild_volume_backed_instance:
the guest is destroyed; a new attachment without a connector keeps the
volume ``reserved`` while the old one is deleted; Cinder's ``os-reimage``
(volume API 3.68, ``reimage_reserved``) writes the image over the volume;
the volume's status is polled until it is ``reserved`` again, at most
``[compute] reimage_timeout`` + ``reimage_timeout_per_gb`` per GiB
(``error`` or the deadline fails the rebuild: ERROR with a fault); then the
attachment gets this host's connector, the guest boots from the same
volume id and the attachment is completed. Nova waits for Cinder's
``volume-reimaged`` external event; this service polls instead.

``preserve_ephemeral`` is accepted and recorded in the action event; there
are no ephemeral disks here, so it changes nothing.
"""

import json
import logging

from oslo_utils import excutils
from oslo_utils import timeutils

from nova_snapshot.compute import block_device
from nova_snapshot.compute import lock as instance_lock
from nova_snapshot.compute import server_update
from nova_snapshot.compute import snapshot_metadata
from nova_snapshot.compute import task_states
from nova_snapshot.compute import vm_states
from nova_snapshot.compute import volumes as compute_volumes
from nova_snapshot import context as ns_context
from nova_snapshot import exception
from nova_snapshot import fault_injection

LOG = logging.getLogger(__name__)

ACTION = 'rebuild'
EVENT = 'compute_rebuild_instance'
# Nova's check_instance_state of rebuild.
REBUILD_ALLOWED = (vm_states.ACTIVE, vm_states.STOPPED, vm_states.ERROR)
# Fields a rebuild request may change (and a failed cast puts back).
_FIELDS = ('image_ref', 'name', 'metadata', 'access_ip_v4', 'access_ip_v6',
           'auto_disk_config', 'progress', 'description', 'key_name',
           'key_data')
# ``description``'s default: leave it (None removes it, 2.19).
KEEP = object()
VOLUME_BACKED_IMAGE_CHANGE = ('Unable to rebuild with a different image for '
                              'a volume-backed server.')
# system_metadata key: the image a volume-backed rebuild (2.93) writes over
# the root volume; set with ``rebuilding``, removed when the rebuild ends.
REIMAGE_KEY = 'rebuild_reimage_image_id'


def _image_sysmeta_updates(current, new):
    """system_metadata changes that swap the ``image_*`` keys of
    ``current`` for those of ``new`` (None removes a key)."""
    updates = {key: None for key in current
               if key.startswith(snapshot_metadata.SYSMETA_PREFIX)}
    updates.update(new)
    return updates


def _root_volume(api, context, instance):
    """A volume-backed server's root volume (Cinder's view), or None."""
    bdms = api.db.bdm_get_by_instance(instance['uuid'])
    root = block_device.root_bdm(bdms)
    if root is None or not root.get('volume_id') or api.volume_api is None:
        return None
    return api.volume_api.get(context, root['volume_id'])


def _root_volume_image(volume):
    """The image id a root volume was made from (Cinder's
    volume_image_metadata), or None."""
    return ((volume or {}).get('volume_image_metadata') or {}).get('image_id')


def _check_reimage(api, context, instance, image, root_volume):
    """Nova's checks of a 2.93 rebuild of a volume-backed server: every
    volume ``in-use`` (InvalidVolume) and the image no larger than the root
    volume (Cinder's own check, made here so the answer is a 400)."""
    if root_volume is None:
        raise exception.InvalidVolume(
            reason='the server has no root volume to re-image')
    for bdm in compute_volumes.volume_bdms(
            api.db.bdm_get_by_instance(instance['uuid'])):
        if not bdm.get('volume_id'):
            continue
        volume = (root_volume if bdm['volume_id'] == root_volume['id']
                  else api.volume_api.get(context, bdm['volume_id']))
        if volume.get('status') != 'in-use':
            raise exception.InvalidVolume(
                reason="volume %s status must be 'in-use', but current "
                       "status is '%s'" % (volume['id'],
                                           volume.get('status')))
    size = int(root_volume.get('size') or 0) * 1024 ** 3
    min_disk = int(image.get('min_disk') or 0) * 1024 ** 3
    for what, needed in (('size', int(image.get('virtual_size') or
                                      image.get('size') or 0)),
                         ('min_disk', min_disk)):
        if size and needed > size:
            raise exception.InvalidVolume(
                reason='image %s (%s %d bytes) is larger than the root '
                       'volume %s (%d bytes)' % (image['id'], what, needed,
                                                 root_volume['id'], size))


def request(api, context, instance, image_href, name=None, metadata=None,
            access_ip_v4=None, access_ip_v6=None, auto_disk_config=None,
            preserve_ephemeral=False, reimage_boot_volume=False,
            description=KEEP, key_name=KEEP, hostname=None):
    """Accept a rebuild (``api``: the ComputeAPI); returns the instance
    with the request's changes and task state ``rebuilding``.

    ``None`` leaves a field as it is (``description``: KEEP does, None
    removes it); ``metadata`` replaces the server's metadata (Nova).
    ``reimage_boot_volume`` (microversion 2.93): a volume-backed server's
    root volume is re-imaged with the image, even the one it already
    holds, as in Nova.

    ``hostname`` (2.90): the server's new hostname (system metadata); a
    rename without one keeps the hostname the server had (as an update
    does, compute/server_update.py).

    ``key_name`` (2.54): a keypair of the caller's user (users own
    keypairs; another user of the project may rebuild the server), whose
    name and public key the server keeps; None removes the server's.

    :raises: InstanceIsLocked, InstanceInvalidState (409), ImageNotFound,
        Invalid (400: image, flavor, diskConfig, volume-backed),
        KeypairNotFound, ComputeServiceUnavailable (503, everything put
        back).
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
    reimage = False
    if volume_backed:
        root_volume = _root_volume(api, context, instance)
        reimage = bool(reimage_boot_volume)
        if reimage:
            _check_reimage(api, context, instance, image, root_volume)
        elif _root_volume_image(root_volume) != image_href:
            raise exception.ImageUnacceptable(
                image_id=image_href, reason=VOLUME_BACKED_IMAGE_CHANGE)
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
    if description is not KEEP:
        values['description'] = description
    if key_name is not KEEP:
        key_pair = (api.db.keypair_get(context.user_id, key_name)
                    if key_name is not None else {})
        values['key_name'] = key_pair.get('name')
        values['key_data'] = key_pair.get('public_key')
    before = {}

    def still_allowed(current):
        compute_api.check_instance_state(current, ACTION,
                                         vm_state=REBUILD_ALLOWED)
        before.clear()
        before.update({field: current.get(field) for field in _FIELDS})
        before['system_metadata'] = dict(current['system_metadata'])
    sysmeta_updates = _image_sysmeta_updates(instance['system_metadata'],
                                             new_sysmeta)
    sysmeta_updates[REIMAGE_KEY] = image['id'] if reimage else None
    if hostname is not None:
        sysmeta_updates[compute_api.HOSTNAME_KEY] = hostname
    elif name is not None:
        sysmeta_updates[compute_api.HOSTNAME_KEY] = (
            lambda kept: kept or server_update.default_hostname(
                before.get('name'), instance['uuid']))
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
    """Undo an accepted rebuild whose cast never left: the fields, the
    ``image_*`` system metadata and the hostname as they were, task state
    None."""
    from nova_snapshot.compute import api as compute_api
    values = {field: before.get(field) for field in _FIELDS}
    values['task_state'] = None
    sysmeta = _image_sysmeta_updates(
        instance['system_metadata'],
        {key: value for key, value in before['system_metadata'].items()
         if key.startswith(snapshot_metadata.SYSMETA_PREFIX)})
    sysmeta[REIMAGE_KEY] = None
    sysmeta[compute_api.HOSTNAME_KEY] = before['system_metadata'].get(
        compute_api.HOSTNAME_KEY)
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
        reimage_id = (instance.get('system_metadata') or {}).get(REIMAGE_KEY)
        root = block_device.root_bdm(rows) if reimage_id else None
        if root is not None:
            record.details += '; root volume %s re-imaged with image %s' % (
                root['volume_id'], reimage_id)
            rows = _reimage_root_volume(manager, context, instance, rows,
                                        root, reimage_id)
            root = block_device.root_bdm(rows)
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
        if root is not None:
            # The new attachment is in use (the volume ``in-use`` again).
            manager.volume_api.attachment_complete(context,
                                                   root['attachment_id'])
        fault_injection.point('rebuild.spawned')
        vm_state = vm_states.ACTIVE
        if orig_vm_state == vm_states.STOPPED:
            # Nova: a server rebuilt while stopped is stopped again.
            manager.driver.power_off(instance)
            state = None
            vm_state = vm_states.STOPPED
        if state is None:
            state = manager.driver.get_power_state(instance)
        record.instance = db.instance_update_checked(
            instance_uuid, {'vm_state': vm_state, 'task_state': None,
                            'power_state': state, 'progress': 0,
                            'launched_at': timeutils.utcnow()},
            expected_task_state=task_states.REBUILD_SPAWNING,
            system_metadata={REIMAGE_KEY: None})


def reimage_timeout(conf, size_gb):
    """Seconds a re-image of a volume of ``size_gb`` may take."""
    return (conf.compute.reimage_timeout +
            conf.compute.reimage_timeout_per_gb * int(size_gb or 1))


def _reimage_root_volume(manager, context, instance, rows, root, image_id):
    """Write ``image_id`` over the root volume (Nova's
    _rebuild_volume_backed_instance, the event wait replaced by a bounded
    poll); returns the volume rows with the root's new connection info.

    :raises: VolumeError (Cinder refused, the volume went to ``error``, or
        it was not ``reserved`` again by the deadline).
    """
    volume_api = manager.volume_api
    if volume_api is None:
        raise exception.VolumeError(
            reason='this compute service has no Cinder configured')
    uuid = instance['uuid']
    volume_id = root['volume_id']
    # No guest may hold the volume while Cinder rewrites it.
    manager.driver.destroy(context, instance)
    fault_injection.point('rebuild.reimage_guest_gone')
    # The new attachment first: the volume stays reserved to the server
    # once the old one (and its host connection) is gone.
    attachment = volume_api.attachment_create(context, volume_id, uuid)
    old = root.get('attachment_id')
    root = manager.db.bdm_update(root['id'], {
        'attachment_id': attachment['id'], 'connection_info': None})
    if old:
        try:
            volume_api.attachment_delete(context, old)
        except exception.NotFound:
            pass
    size = volume_api.get(context, volume_id).get('size')
    started = timeutils.utcnow()
    volume_api.reimage(context, volume_id, image_id, reimage_reserved=True)
    fault_injection.point('rebuild.reimage_requested')
    volume_api.wait_for_volume(context, volume_id,
                               timeout=reimage_timeout(manager.conf, size),
                               statuses=('reserved',))
    LOG.info('Root volume %s of %s re-imaged with image %s in %.2f s',
             volume_id, uuid, image_id,
             timeutils.delta_seconds(started, timeutils.utcnow()))
    connection_info = volume_api.attachment_update(
        context, attachment['id'], manager.driver.get_volume_connector(
            instance), mountpoint=root['device_name'])
    root = manager.db.bdm_update(root['id'], {
        'connection_info': json.dumps(connection_info)})
    return [root if row['id'] == root['id'] else row for row in rows]


def _failed(manager, record):
    """Nova's _set_instance_obj_error_state: ERROR, task state None, while
    a rebuild state is still ours (a delete keeps its own)."""
    try:
        record.instance = manager.db.instance_update_checked(
            record.instance_uuid, {'vm_state': vm_states.ERROR,
                                   'task_state': None},
            expected_task_state=task_states.REBUILD_STATES,
            system_metadata={REIMAGE_KEY: None})
    except (exception.InstanceNotFound, exception.UnexpectedTaskStateError):
        pass


def repair_at_start_up(manager, instance):
    """A rebuild interrupted by a restart of the compute service: ERROR
    with a fault, as Nova's ``_init_instance`` does (the old disk may be
    gone already); the user rebuilds again or deletes."""
    uuid = instance['uuid']
    message = ('Rebuild interrupted by a restart of the compute service '
               '(task_state was %s)' % instance['task_state'])
    reimage_id = (instance.get('system_metadata') or {}).get(REIMAGE_KEY)
    if reimage_id:
        message += ('; the root volume may be partly re-imaged with image '
                    '%s' % reimage_id)
        _reconnect_root_volume(manager, instance)
    manager._fault(uuid, exception.NovaSnapshotException(message))
    try:
        return manager.db.instance_update_checked(
            uuid, {'vm_state': vm_states.ERROR, 'task_state': None},
            expected_task_state=instance['task_state'],
            system_metadata={REIMAGE_KEY: None})
    except exception.UnexpectedTaskStateError:
        return manager.db.instance_get(uuid)


def _reconnect_root_volume(manager, instance):
    """After an interrupted re-image: a root volume whose attachment has
    no connection to this host (the re-image had begun) gets one again and
    is in use, so a hard reboot or another rebuild finds a disk to boot.
    Best effort: a volume still being written, or in ``error``, is left as
    it is (logged).
    """
    root = block_device.root_bdm(compute_volumes.volume_bdms(
        manager.db.bdm_get_by_instance(instance['uuid'])))
    if root is None or root.get('connection_info') or \
            not root.get('attachment_id') or manager.volume_api is None:
        return
    # The server's project (no token: with Keystone this acts as the
    # service; without it Cinder needs the project), as the reconciler.
    context = ns_context.RequestContext(
        user_id=instance.get('user_id'), project_id=instance.get('project_id'),
        roles=['member', 'reader'], overwrite=False)
    try:
        volume = manager.volume_api.get(context, root['volume_id'])
        if volume.get('status') != 'reserved':
            LOG.warning('Root volume %s of %s is %s after an interrupted '
                        're-image; not reconnected', root['volume_id'],
                        instance['uuid'], volume.get('status'))
            return
        connection_info = manager.volume_api.attachment_update(
            context, root['attachment_id'],
            manager.driver.get_volume_connector(instance),
            mountpoint=root['device_name'])
        manager.db.bdm_update(root['id'], {
            'connection_info': json.dumps(connection_info)})
        # Completed, so the volume is ``in-use`` again: a 2.93 rebuild
        # (the user's way out of ERROR) needs every volume in use, and an
        # attachment left ``attaching`` refused it (fault campaign,
        # rebuild.reimage_requested).
        manager.volume_api.attachment_complete(context,
                                               root['attachment_id'])
    except Exception:
        LOG.warning('Could not reconnect root volume %s of %s after an '
                    'interrupted re-image', root['volume_id'],
                    instance['uuid'], exc_info=True)
