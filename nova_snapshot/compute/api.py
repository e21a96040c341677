"""The API side of every compute action.

The HTTP handlers call :class:`ComputeAPI`; it checks states, does the
compare-and-swap on ``task_state`` that serialises actions on one instance,
records the instance action and casts to the compute host. It never waits
for the hypervisor (except for the console, which is an RPC call).
"""

import logging
import uuid as uuidlib

from oslo_utils import excutils
from oslo_utils import strutils

from nova_snapshot.compute import backup
from nova_snapshot.compute import block_device
from nova_snapshot.compute import flavors
from nova_snapshot.compute import lock as instance_lock
from nova_snapshot.compute import multiple_create
from nova_snapshot.compute import power_state
from nova_snapshot.compute import reboot
from nova_snapshot.compute import rebuild
from nova_snapshot.compute import scheduler
from nova_snapshot.compute import server_update
from nova_snapshot.compute import snapshot_metadata
from nova_snapshot.compute import soft_delete
from nova_snapshot.compute import task_states
from nova_snapshot.compute import vm_states
from nova_snapshot.compute import volume_snapshot
from nova_snapshot import exception

LOG = logging.getLogger(__name__)

# system_metadata key holding the Glance image an in-flight snapshot
# writes to, so a compute service restarted mid-snapshot can delete it.
# It is not ``image_``-prefixed, so snapshots never inherit it.
SNAPSHOT_IMAGE_KEY = 'snapshot_image_id'
# system_metadata key naming the request whose volume-backed createImage
# holds the server (task_state image_snapshot) for its cut: only that
# request's API call or compute side releases it, so a late release can
# never end someone else's hold.
VOLUME_SNAPSHOT_HOLD_KEY = 'volume_snapshot_request_id'
# Images of failed snapshots whose delete failed: kept here (comma
# separated) until a delete succeeds, so no later snapshot overwrites the
# only reference to them.
SNAPSHOT_LEFTOVERS_KEY = 'snapshot_images_to_delete'
# system_metadata key of the availability zone the create asked for:
# Nova's pinned_availability_zone (shown from 2.96; unset when none was).
PINNED_AZ_KEY = 'pinned_availability_zone'
# system_metadata key of the hostname the create asked for (2.90); without
# one the API shows the name made a hostname.
HOSTNAME_KEY = 'hostname'

# Nova's instance action names (os-instance-actions).
ACTION_CREATE = 'create'
ACTION_DELETE = 'delete'
ACTION_CREATE_IMAGE = 'createImage'
ACTION_ATTACH_VOLUME = 'attach_volume'
ACTION_DETACH_VOLUME = 'detach_volume'
# Nova's attach/detach_volume vm_states (of those this service has); the
# API takes the shelved ones from microversion 2.20.
VOLUME_ATTACH_STATES = (vm_states.ACTIVE, vm_states.PAUSED, vm_states.STOPPED,
                        vm_states.SHELVED, vm_states.SHELVED_OFFLOADED)

# method -> (Nova action name, allowed vm_states, task_state set, rpc method)
_POWER_ACTIONS = {
    'stop': ('stop', (vm_states.ACTIVE, vm_states.ERROR),
             task_states.POWERING_OFF, 'stop_instance'),
    'start': ('start', (vm_states.STOPPED,),
              task_states.POWERING_ON, 'start_instance'),
    'pause': ('pause', (vm_states.ACTIVE,),
              task_states.PAUSING, 'pause_instance'),
    'unpause': ('unpause', (vm_states.PAUSED,),
                task_states.UNPAUSING, 'unpause_instance'),
    'suspend': ('suspend', (vm_states.ACTIVE,),
                task_states.SUSPENDING, 'suspend_instance'),
    'resume': ('resume', (vm_states.SUSPENDED,),
               task_states.RESUMING, 'resume_instance'),
}


def check_instance_state(instance, method, vm_state=None,
                         task_state=(None,), must_have_launched=True):
    """Nova's ``check_instance_state``: vm_state, then task_state, then
    launched_at; each failure is InstanceInvalidState (409)."""
    if vm_state is not None and instance['vm_state'] not in vm_state:
        raise exception.InstanceInvalidState(
            attr='vm_state', instance_uuid=instance['uuid'],
            state=instance['vm_state'], method=method)
    if task_state is not None and instance['task_state'] not in task_state:
        raise exception.InstanceInvalidState(
            attr='task_state', instance_uuid=instance['uuid'],
            state=instance['task_state'], method=method)
    if must_have_launched and not instance.get('launched_at'):
        raise exception.InstanceInvalidState(
            attr='launched_at', instance_uuid=instance['uuid'],
            state=instance.get('launched_at'), method=method)


def _conflict_from_cas(exc, instance_uuid, method):
    """Turn a lost compare-and-swap into the 409 a client expects."""
    if isinstance(exc, exception.InstanceNotFound):
        return exception.InstanceInvalidState(
            attr='vm_state', instance_uuid=instance_uuid,
            state=vm_states.DELETED, method=method)
    if isinstance(exc, exception.UnexpectedDeletingTaskStateError):
        return exception.InstanceInvalidState(
            attr='task_state', instance_uuid=instance_uuid,
            state=task_states.DELETING, method=method)
    actual = (exc.kwargs.get('actual') or {}).get('task_state')
    return exception.InstanceInvalidState(
        attr='task_state', instance_uuid=instance_uuid, state=actual,
        method=method)


def in_volume_snapshot_cut(instance):
    """The server is held by a volume-backed createImage."""
    return (instance.get('task_state') == task_states.IMAGE_SNAPSHOT and
            bool((instance.get('system_metadata') or {}).get(
                VOLUME_SNAPSHOT_HOLD_KEY)))


class _NotHeld(Exception):
    """The hold to release is not (or no longer) the caller's."""


def release_volume_snapshot_hold(db, instance_uuid, request_id, **values):
    """End the hold of request ``request_id``: task_state back to None.

    Both the API (when its call returns or fails) and the compute side
    (when its work ends) call this; whoever comes second, or finds another
    request's hold, changes nothing.

    :returns: the updated instance, or None when there was nothing of
        ours to release.
    """
    def ours(instance):
        if not in_volume_snapshot_cut(instance) or \
                instance['system_metadata'].get(
                    VOLUME_SNAPSHOT_HOLD_KEY) != request_id:
            raise _NotHeld()
    values['task_state'] = None
    try:
        return db.instance_update_checked(
            instance_uuid, values, check=ours,
            system_metadata={VOLUME_SNAPSHOT_HOLD_KEY: None})
    except (_NotHeld, exception.InstanceNotFound):
        return None


def give_back_task_state(db, instance_uuid, expected, image_id=None,
                         system_metadata=None, **values):
    """Undo what an action's API took when its cast never left: nothing on
    a compute host will ever move the task state on.

    One compare-and-swap: ``task_state`` (None unless ``values`` says
    otherwise) and ``values`` are written only while the task state is
    still ``expected`` and, with ``image_id``, while that image is still
    the server's snapshot or backup request (whose key is then removed).
    Quietly nothing when a delete or another action moved the server
    meanwhile: the state is theirs now.
    """
    def still_this_request(current):
        if current['system_metadata'].get(SNAPSHOT_IMAGE_KEY) != image_id:
            raise _NotHeld()

    values.setdefault('task_state', None)
    if image_id is not None:
        system_metadata = dict(system_metadata or {},
                               **{SNAPSHOT_IMAGE_KEY: None})
    try:
        db.instance_update_checked(
            instance_uuid, values, expected_task_state=expected,
            check=still_this_request if image_id is not None else None,
            system_metadata=system_metadata)
    except (_NotHeld, exception.InstanceNotFound,
            exception.UnexpectedTaskStateError):
        pass


def add_leftover(value, image_id):
    """``SNAPSHOT_LEFTOVERS_KEY``'s new value with ``image_id`` added."""
    ids = [i for i in (value or '').split(',') if i]
    if image_id not in ids:
        ids.append(image_id)
    return ','.join(ids)


def _warn_if_rpc_timeout_too_short(opts):
    """The API must outwait the compute service's own volume snapshot
    deadlines: if it gives up first, the user gets an error while the
    compute service may still go on to make the image."""
    needed = opts.quiesce_deadline + opts.volume_snapshot_timeout
    if opts.volume_snapshot_rpc_timeout <= needed:
        LOG.warning('[compute] volume_snapshot_rpc_timeout (%s s) should be '
                    'longer than quiesce_deadline + volume_snapshot_timeout '
                    '(%s s); a volume-backed createImage may then report an '
                    'error for a snapshot that still completes',
                    opts.volume_snapshot_rpc_timeout, needed)
        return True
    return False


class _AlreadyDeleting(Exception):
    """Another delete got there first."""


class ComputeAPI(object):

    def __init__(self, conf, db, image_api, rpcapi, volume_api=None):
        self.conf = conf
        self.db = db
        self.image_api = image_api
        self.rpcapi = rpcapi
        self.volume_api = volume_api
        _warn_if_rpc_timeout_too_short(conf.compute)

    # Reading

    def _visible(self, context, instance):
        return context.is_admin or instance['project_id'] == context.project_id

    def get(self, context, uuid, read_deleted=False):
        """The instance (404 when another project's).

        :param read_deleted: a deleted instance too (its last row), as
            Nova's read_deleted='yes' for the 2.21 instance actions.
        """
        if read_deleted:
            rows = self.db.instance_list({'uuid': uuid, 'deleted': None})
            live = [row for row in rows if not row.get('deleted')]
            if not rows:
                raise exception.InstanceNotFound(instance_id=uuid)
            instance = (live or rows)[0]
        else:
            instance = self.db.instance_get(uuid)
        if not self._visible(context, instance):
            # Another project's server does not exist for this caller.
            raise exception.InstanceNotFound(instance_id=uuid)
        instance['fault'] = self.db.fault_get_latest(uuid)
        return instance

    def get_all(self, context, filters=None, all_projects=False,
                limit=None, marker=None, sort_keys=None, sort_dirs=None,
                with_faults=False, with_bdms=False):
        """One page of servers (``Database.instance_list``), scoped to the
        caller's project unless an admin asks for all projects; then a
        ``project_id`` filter may pick one."""
        filters = dict(filters or {})
        if not (all_projects and context.is_admin):
            filters['project_id'] = context.project_id
        order = {}
        if sort_keys:
            order = {'sort_keys': sort_keys, 'sort_dirs': sort_dirs}
        return self.db.instance_list(
            filters, limit=limit, marker=marker, with_faults=with_faults,
            with_bdms=with_bdms, **order)

    def get_instance_actions(self, context, instance):
        return self.db.actions_get(instance['uuid'])

    def get_instance_action(self, context, instance, request_id):
        return self.db.action_get_by_request_id(instance['uuid'], request_id)

    def is_volume_backed(self, context, instance):
        """Nova's rule: the root BDM (boot_index 0) decides; without one, a
        server with no image_ref booted from a volume."""
        bdms = self.db.bdm_get_by_instance(instance['uuid'])
        root = [bdm for bdm in bdms if bdm.get('boot_index') == 0]
        if root:
            return root[0].get('destination_type') == 'volume'
        return not instance.get('image_ref')

    # Create and delete

    def create(self, context, name, image_ref, flavor_id, metadata=None,
               block_device_mapping=None, availability_zone=None,
               forced_host=None, forced_node=None, access_ip_v4=None,
               access_ip_v6=None, auto_disk_config=None, hostname=None,
               min_count=None, max_count=None, key_name=None,
               description=None):
        """Create a server, or several (``min_count``/``max_count``:
        compute/multiple_create.py); returns the first.

        :param access_ip_v4: the request's ``accessIPv4`` (and
            ``access_ip_v6`` its ``accessIPv6``) in canonical text; stored
            and shown only, there is no networking here.
        :param auto_disk_config: ``OS-DCF:diskConfig`` AUTO (True) or
            MANUAL (False); None takes the boot image's
            ``auto_disk_config`` property, as Nova does.

        :param availability_zone: the zone part of the request's
            ``availability_zone`` (400 unless it is ours);
            ``forced_host``/``forced_node`` its ``host``/``node`` parts (an
            admin's target: filters skipped, claim made).

        :param block_device_mapping: the schema-checked
            ``block_device_mapping_v2`` list of the request (volumes).
            An ``image_ref`` naming a volume-backed snapshot (a zero-byte
            image with ``block_device_mapping``/``bdm_v2``) restores its
            volumes from their snapshots.

        :param key_name: a keypair of the caller's user (KeypairNotFound
            otherwise); the server keeps its name and public key.
        :param description: the 2.19 ``description`` (every server of a
            multiple create gets it).
        """
        key_pair = (self.db.keypair_get(context.user_id, key_name)
                    if key_name is not None else None)
        # Nova's defaults; the per-request bound is checked once the
        # request is otherwise valid, where Nova checks the quota.
        min_count = min_count or 1
        max_count = max_count or min_count
        if hostname and max_count > 1:
            raise exception.AmbiguousHostnameForMultipleInstances()
        if availability_zone and \
                availability_zone != self.conf.default_availability_zone:
            raise exception.AvailabilityZoneNotAvailable()
        try:
            flavor = flavors.get_flavor(flavor_id)
        except exception.FlavorNotFound:
            raise exception.FlavorNotFoundBadRequest(flavor_id=flavor_id)
        image = None
        if image_ref:
            try:
                image = self.image_api.get(context, image_ref)
            except exception.ImageNotFound:
                raise exception.ImageNotFoundBadRequest(image_id=image_ref)
        bdms = self._bdms_for_create(context, image, block_device_mapping,
                                     min_count, max_count)
        root = block_device.root_bdm(bdms)
        volume_backed = root is not None and block_device.is_volume(root)
        if root is not None and not volume_backed and image is None:
            # image -> local root names the image to boot.
            image_ref = root.get('image_id')
            image = self._get_image_bad_request(context, image_ref)
        if image is None and not volume_backed:
            raise exception.Invalid(
                reason='Block Device Mapping is Invalid: a server needs an '
                       'imageRef or a boot volume (boot_index 0).')
        boot_image = image
        if volume_backed and root.get('source_type') == 'image':
            boot_image = self._get_image_bad_request(context,
                                                     root['image_id'])
        if boot_image is not None:
            # A volume-backed server's root disk is not the flavor's: only
            # the image's own demands apply (Nova skips root_gb too).
            self._check_image_fits(
                boot_image, dict(flavor, root_gb=2 ** 31) if volume_backed
                else flavor)
            system_metadata = snapshot_metadata.system_metadata_from_image(
                boot_image, dict(flavor, root_gb=0) if volume_backed
                else flavor)
        else:
            system_metadata = self._system_metadata_from_volume(
                context, root)
        if availability_zone:
            system_metadata[PINNED_AZ_KEY] = availability_zone
        if hostname:
            system_metadata[HOSTNAME_KEY] = hostname
        bdms = [bdm for bdm in bdms if block_device.is_volume(bdm)]
        block_device.assign_device_names(bdms)

        values = {
            'uuid': str(uuidlib.uuid4()),
            'name': name,
            'project_id': context.project_id,
            'user_id': context.user_id,
            # Nova: a server booted from a volume alone has no image.
            'image_ref': image['id'] if image is not None else '',
            'flavor': flavor,
            'vm_state': vm_states.BUILDING,
            'task_state': task_states.SCHEDULING,
            'power_state': power_state.NOSTATE,
            'root_device_name': block_device.ROOT_DEVICE_NAME,
            'metadata': dict(metadata or {}),
            'system_metadata': system_metadata,
            'access_ip_v4': access_ip_v4,
            'access_ip_v6': access_ip_v6,
            'auto_disk_config': disk_config_for_create(boot_image,
                                                       auto_disk_config),
            'description': description,
        }
        if key_pair is not None:
            values.update(key_name=key_pair['name'],
                          key_data=key_pair['public_key'])
        min_count, max_count = multiple_create.counts(
            min_count, max_count, self.conf.api.max_servers_per_request)
        instances = multiple_create.create(
            self, context, values, bdms,
            scheduler.usage_for(flavor, volume_backed), min_count,
            max_count, forced_host, forced_node)
        multiple_create.send_builds(self, context, instances,
                                    values['image_ref'])
        return instances[0]

    def check_requested_destination(self, host=None, node=None):
        """Nova's _validate_host_or_node (2.74): some compute node has
        this host and/or hypervisor hostname, whatever its state (the
        scheduler then says whether it can take the server).

        :raises: ComputeHostNotFound
        """
        for compute in self.db.compute_node_get_all(scheduler.TOPIC):
            if (not host or compute['host'] == host) and (
                    not node or (compute.get('hypervisor_hostname') or
                                 compute['host']) == node):
                return
        raise exception.ComputeHostNotFound(host=host or node)

    def _fail_unsent_build(self, instance, exc):
        """The build cast never left: nobody would build the server or
        give its host's room back, so do both here (ERROR, fault)."""
        LOG.error('Could not ask %s to build %s: %s', instance['host'],
                  instance['uuid'], exc)
        try:
            self.db.instance_update(
                instance['uuid'], {'vm_state': vm_states.ERROR,
                                   'task_state': None},
                expected_task_state=task_states.SCHEDULING)
            self.db.fault_create(instance['uuid'], 500,
                                 'Build request not sent to the compute '
                                 'host', str(exc), host=instance['host'])
            self.db.instance_release_claim(instance['uuid'])
        except Exception:
            LOG.warning('Could not fail the unsent build of %s',
                        instance['uuid'], exc_info=True)

    def _get_image_bad_request(self, context, image_id):
        try:
            return self.image_api.get(context, image_id)
        except exception.ImageNotFound:
            raise exception.ImageNotFoundBadRequest(image_id=image_id)

    def _bdms_for_create(self, context, image, block_device_mapping,
                         min_count=1, max_count=1):
        """BDM rows from the request, merged over the image's mapping."""
        try:
            user = block_device.from_api(block_device_mapping)
            from_image = []
            if image is not None and block_device.image_has_mapping(image):
                from_image = block_device.from_image_mapping(
                    image['block_device_mapping'])
            bdms = block_device.merge(from_image, user)
            multiple_create.check_volumes(bdms, min_count, max_count)
            block_device.check_boot_sequence(bdms)
        except exception.InvalidBDM as exc:
            raise exception.Invalid(reason=exc.format_message())
        if any(block_device.is_volume(bdm) for bdm in bdms) and \
                self.volume_api is None:
            raise exception.Invalid(
                reason='volumes are not available: no Cinder configured')
        self._check_bdm_sources(context, bdms)
        return bdms

    def _check_bdm_sources(self, context, bdms):
        """Nova's BDM validation: every volume and snapshot named must be
        found by the caller, and a volume must be attachable, before
        anything is created. Cinder is asked with the caller's token, so
        another project's volume or snapshot is not found (400)."""
        for bdm in bdms:
            source = bdm.get('source_type')
            if source == 'volume':
                try:
                    volume = self.volume_api.get(context, bdm['volume_id'])
                except exception.VolumeNotFound:
                    raise exception.InvalidBDM(
                        reason='failed to get volume %s.' % bdm['volume_id'])
                if volume.get('status') != 'available':
                    raise exception.InvalidVolume(
                        reason='volume %s is %s, not available' % (
                            bdm['volume_id'], volume.get('status')))
                # Nova boots only from a volume Cinder calls bootable
                # (one made from an image, or marked so by its owner).
                if bdm.get('boot_index') == 0 and \
                        volume.get('bootable') is False:
                    raise exception.InvalidBDMVolumeNotBootable(
                        id=bdm['volume_id'])
            elif source == 'snapshot':
                try:
                    self.volume_api.get_snapshot(context, bdm['snapshot_id'])
                except exception.SnapshotNotFound:
                    raise exception.InvalidBDM(
                        reason='failed to get snapshot %s.'
                        % bdm['snapshot_id'])

    def _system_metadata_from_volume(self, context, root):
        """A server booted from an existing volume or snapshot inherits
        the image properties Cinder kept with the volume
        (``volume_image_metadata``), as in Nova."""
        image_props = {}
        try:
            if root.get('source_type') == 'volume':
                volume = self.volume_api.get(context, root['volume_id'])
            elif root.get('source_type') == 'snapshot':
                snapshot = self.volume_api.get_snapshot(context,
                                                        root['snapshot_id'])
                volume = self.volume_api.get(context, snapshot['volume_id'])
            else:
                volume = {}
            image_props = dict(volume.get('volume_image_metadata') or {})
        except exception.VolumeNotFound:
            raise exception.Invalid(reason='volume %s could not be found'
                                    % root.get('volume_id'))
        except exception.SnapshotNotFound:
            raise exception.Invalid(reason='snapshot %s could not be found'
                                    % root.get('snapshot_id'))
        except exception.NotFound:
            raise
        except Exception:
            LOG.warning('Could not read the image metadata of the boot '
                        'volume', exc_info=True)
        image_props.setdefault('id', image_props.get('image_id', ''))
        return snapshot_metadata.system_metadata_from_image(
            image_props, {'root_gb': 0})

    def _place(self, values, usage, forced_host=None, forced_node=None):
        """Store one new instance with its host and claim (the scheduler's
        compare-and-swap); nothing else of it.

        :raises: NoValidHost (nothing stored).
        """
        override = self.conf.compute.default_schedule_host
        if override and not (forced_host or forced_node):
            # Deprecated: no filters, no claim (the old behaviour).
            return self.db.instance_create(dict(values, host=override))
        return scheduler.schedule_and_create(
            self.conf, self.db, values, usage, force_host=forced_host,
            force_node=forced_node)

    def _store_unplaced(self, values):
        """Store one new instance that no host takes: like Nova, the
        request is accepted and the server is in ERROR (with the fault
        :meth:`_record_create` adds)."""
        return self.db.instance_create(dict(
            values, vm_state=vm_states.ERROR, task_state=None, host=None))

    def _record_create(self, context, instance, bdms, no_valid_host=None):
        """The BDMs and create action of a stored instance; with
        ``no_valid_host`` (what each host lacked) Nova's fault too."""
        self._store_bdms(instance, bdms)
        self.db.action_start(context, instance['uuid'], ACTION_CREATE)
        if no_valid_host is not None:
            self.db.fault_create(
                instance['uuid'], 500, 'No valid host was found. %s'
                % scheduler.NO_VALID_HOST, no_valid_host)

    def _store_bdms(self, instance, bdms):
        for bdm in bdms:
            row = {key: bdm.get(key)
                   for key in block_device.IMAGE_MAPPING_KEYS}
            row['delete_on_termination'] = bool(row['delete_on_termination'])
            row['no_device'] = bool(row['no_device'])
            row['instance_uuid'] = instance['uuid']
            self.db.bdm_create(row)

    @staticmethod
    def _check_image_fits(image, flavor):
        """Nova's _validate_flavor_image_nostatus for a local root disk.

        Glance's ``size`` (bytes of the file) and ``min_disk`` against the
        flavor's root disk as Nova does, and ``virtual_size`` too when Glance
        knows it (Nova finds that one only at spawn; here it is a 400 before
        anything is created). A root_gb of 0 is not checked (Nova's legacy
        rule: the disk is the image's size). The driver checks the sizes of
        the downloaded file again at spawn.
        """
        if image.get('status') != 'active':
            raise exception.ImageUnacceptable(
                image_id=image['id'], reason='status is %s, not active'
                % image.get('status'))
        if int(image.get('min_ram') or 0) > flavor['memory_mb']:
            raise exception.FlavorMemoryTooSmall()
        root_size = int(flavor['root_gb'] or 0) * 1024 ** 3
        if not root_size:
            return
        for key in ('size', 'virtual_size'):
            image_size = int(image.get(key) or 0)
            if image_size > root_size:
                raise exception.FlavorDiskSmallerThanImage(
                    flavor_size=root_size, image_size=image_size)
        min_disk = int(image.get('min_disk') or 0) * 1024 ** 3
        if min_disk > root_size:
            raise exception.FlavorDiskSmallerThanMinDisk(
                flavor_size=root_size, image_min_disk=min_disk)

    def delete(self, context, instance):
        """Delete in any task state (Nova), except during the cut of a
        volume-backed createImage: the guest may be frozen, and a delete
        would pull its volumes from under the snapshots (409 then)."""
        instance_lock.check(context, instance)
        if instance['task_state'] == task_states.DELETING:
            return  # already on its way out; deleting is idempotent

        previous = {}

        def deletable(current):
            previous['task_state'] = current['task_state']
            if current['task_state'] == task_states.DELETING:
                raise _AlreadyDeleting()
            if in_volume_snapshot_cut(current):
                raise exception.InstanceInvalidState(
                    attr='task_state', instance_uuid=current['uuid'],
                    state=current['task_state'], method=ACTION_DELETE)
        try:
            instance = self.db.instance_update_checked(
                instance['uuid'], {'task_state': task_states.DELETING},
                check=deletable)
        except (exception.InstanceNotFound, _AlreadyDeleting):
            return
        except exception.UnexpectedTaskStateError as exc:
            # The row kept changing under the check.
            raise _conflict_from_cas(exc, instance['uuid'], ACTION_DELETE)
        self.db.action_start(context, instance['uuid'], ACTION_DELETE)
        if not instance.get('host') or not self._host_is_up(
                instance['host']):
            # Nothing (alive) to tell: delete the record here, as Nova's
            # local delete does. A compute service coming back finds no row.
            LOG.info('Deleting instance %s locally: host %s is not up',
                     instance['uuid'], instance.get('host'))
            self._shelve_api().local_delete(context, instance)
            self._shelve_api().before_delete(context, instance)
            self.db.instance_update(instance['uuid'], {
                'vm_state': vm_states.DELETED, 'task_state': None,
                'power_state': power_state.NOSTATE})
            self.db.instance_destroy(instance['uuid'])
            return
        try:
            self.rpcapi.terminate_instance(context, instance)
        except Exception:
            with excutils.save_and_reraise_exception():
                # The cast never left: a server left in 'deleting' would
                # refuse every other action and never be deleted. Give the
                # task state back (unless someone moved it meanwhile) so the
                # user can retry.
                give_back_task_state(self.db, instance['uuid'],
                                     task_states.DELETING,
                                     task_state=previous['task_state'])
        # Only once the delete is on its way: a shelved server whose
        # delete failed must keep the image it unshelves from.
        self._shelve_api().before_delete(context, instance)

    # Soft delete (compute/soft_delete.py)

    def soft_delete(self, context, instance):
        """DELETE with reclaim_instance_interval > 0; raises
        soft_delete.NotSoftDeletable for a server deleted at once."""
        return soft_delete.soft_delete(self, context, instance)

    def restore(self, context, instance):
        return soft_delete.restore(self, context, instance)

    def force_delete(self, context, instance):
        return soft_delete.force_delete(self, context, instance)

    def _host_is_up(self, host):
        return any(service['host'] == host and scheduler.service_is_up(
            service, self.conf.service_down_time)
            for service in self.db.service_get_all(scheduler.TOPIC))

    # Shelve (the logic is in compute/shelve.py)

    def _shelve_api(self):
        from nova_snapshot.compute import shelve  # imports this module
        return shelve.ShelveAPI(self)

    def shelve(self, context, instance):
        instance_lock.check(context, instance)
        return self._shelve_api().shelve(context, instance)

    def shelve_offload(self, context, instance):
        instance_lock.check(context, instance)
        return self._shelve_api().shelve_offload(context, instance)

    def unshelve(self, context, instance, **kwargs):
        instance_lock.check(context, instance)
        return self._shelve_api().unshelve(context, instance, **kwargs)

    # Power actions

    def _power_action(self, context, instance, method):
        action, allowed, new_task_state, rpc_method = _POWER_ACTIONS[method]
        instance_lock.check(context, instance)
        check_instance_state(instance, action, vm_state=allowed)
        try:
            instance = self.db.instance_update(
                instance['uuid'], {'task_state': new_task_state},
                expected_task_state=None, expected_vm_state=allowed)
        except (exception.InstanceNotFound,
                exception.UnexpectedTaskStateError) as exc:
            raise _conflict_from_cas(exc, instance['uuid'], action)
        self.db.action_start(context, instance['uuid'], action)
        try:
            getattr(self.rpcapi, rpc_method)(context, instance)
        except Exception:
            with excutils.save_and_reraise_exception():
                # The cast never left: nothing on a compute host will clear
                # the task state we just set.
                give_back_task_state(self.db, instance['uuid'],
                                     new_task_state)
        return instance

    def stop(self, context, instance):
        return self._power_action(context, instance, 'stop')

    def start(self, context, instance):
        return self._power_action(context, instance, 'start')

    def pause(self, context, instance):
        return self._power_action(context, instance, 'pause')

    def unpause(self, context, instance):
        return self._power_action(context, instance, 'unpause')

    def suspend(self, context, instance):
        return self._power_action(context, instance, 'suspend')

    def resume(self, context, instance):
        return self._power_action(context, instance, 'resume')

    # Reboot, rebuild, lock (compute/reboot.py, rebuild.py, lock.py)

    def reboot(self, context, instance, reboot_type):
        return reboot.request(self, context, instance, reboot_type)

    def rebuild(self, context, instance, image_href, **kwargs):
        return rebuild.request(self, context, instance, image_href, **kwargs)

    def update_instance(self, context, instance, values, **kwargs):
        """PUT /servers/{id} (compute/server_update.py); the instance as
        updated, with the fault ``instance`` was read with."""
        updated = server_update.request(self, instance, values, **kwargs)
        return dict(updated, fault=instance.get('fault'))

    def lock(self, context, instance, reason=None):
        return instance_lock.lock(self.db, context, instance, reason=reason)

    def unlock(self, context, instance):
        return instance_lock.unlock(self.db, context, instance)

    def get_console_output(self, context, instance, length=None):
        if not instance.get('host') or \
                instance['task_state'] == task_states.DELETING:
            raise exception.InstanceInvalidState(
                attr='task_state', instance_uuid=instance['uuid'],
                state=instance['task_state'], method='getConsoleOutput')
        return self.rpcapi.get_console_output(context, instance, length=length)

    # Snapshots

    def snapshot(self, context, instance, name, extra_properties=None):
        """Start an image-backed snapshot; returns the queued image."""
        check_instance_state(instance, ACTION_CREATE_IMAGE,
                             vm_state=vm_states.SNAPSHOT_ALLOWED)
        image_meta = snapshot_metadata.snapshot_image_meta(
            self.conf, context, instance, name, extra_properties)
        image = self.image_api.create(context, image_meta)

        try:
            instance = self.db.instance_update_checked(
                instance['uuid'],
                {'task_state': task_states.IMAGE_SNAPSHOT_PENDING},
                expected_task_state=None,
                # A hold key left by a repair that only reset task_state
                # would make this snapshot look like a volume cut.
                system_metadata={SNAPSHOT_IMAGE_KEY: image['id'],
                                 VOLUME_SNAPSHOT_HOLD_KEY: None})
        except (exception.InstanceNotFound,
                exception.UnexpectedTaskStateError) as exc:
            # Someone else won (a second snapshot, a delete): the image we
            # just made would never be filled. Nova leaves it queued and
            # answers 500 for a plain race; a 409 is what the client can
            # act on.
            self._delete_image_quietly(context, image['id'])
            raise _conflict_from_cas(exc, instance['uuid'],
                                     ACTION_CREATE_IMAGE)
        self.db.action_start(context, instance['uuid'], ACTION_CREATE_IMAGE)
        try:
            self.rpcapi.snapshot_instance(context, instance, image['id'])
        except Exception:
            with excutils.save_and_reraise_exception():
                # The cast never left: nothing will clean up but us.
                self._delete_image_quietly(context, image['id'])
                give_back_task_state(
                    self.db, instance['uuid'],
                    task_states.IMAGE_SNAPSHOT_PENDING, image_id=image['id'])
        return image

    def backup(self, context, instance, name, backup_type, rotation,
               extra_properties=None):
        """createBackup (compute/backup.py); returns the queued image."""
        return backup.start(self, context, instance, name, backup_type,
                            rotation, extra_properties)

    def snapshot_volume_backed(self, context, instance, name,
                               extra_properties=None):
        """createImage of a volume-backed server; returns the active
        zero-byte image once every volume snapshot is available.

        Unlike Nova, the server is held for the call: task_state
        ``image_snapshot`` (compare-and-swap from None, the request named
        in system_metadata), so suspend, pause, stop and delete get a 409
        while the guest may be frozen. The hold is released when the call
        returns or fails, whatever happens (and by the compute side when
        its work ends, or at its start-up if it died).
        """
        check_instance_state(instance, ACTION_CREATE_IMAGE,
                             vm_state=vm_states.SNAPSHOT_ALLOWED)
        if self.volume_api is None:
            raise exception.VolumeBackedSnapshotNotSupported(
                instance_uuid=instance['uuid'])
        image_meta = snapshot_metadata.volume_snapshot_image_meta(
            self.conf, context, instance, name, extra_properties)
        volume_bdms = [bdm for bdm in
                       self.db.bdm_get_by_instance(instance['uuid'])
                       if block_device.is_volume(bdm)]
        # Before anything is frozen: a full snapshot quota is a 403.
        self._check_snapshot_quota(context, len(volume_bdms))

        def allowed(current):
            check_instance_state(current, ACTION_CREATE_IMAGE,
                                 vm_state=vm_states.SNAPSHOT_ALLOWED)
        try:
            instance = self.db.instance_update_checked(
                instance['uuid'], {'task_state': task_states.IMAGE_SNAPSHOT},
                expected_task_state=None, check=allowed,
                system_metadata={VOLUME_SNAPSHOT_HOLD_KEY:
                                 context.request_id})
        except (exception.InstanceNotFound,
                exception.UnexpectedTaskStateError) as exc:
            raise _conflict_from_cas(exc, instance['uuid'],
                                     ACTION_CREATE_IMAGE)
        try:
            self.db.action_start(context, instance['uuid'],
                                 ACTION_CREATE_IMAGE)
            return self.rpcapi.snapshot_volume_backed(
                context, instance, image_meta,
                timeout=self.conf.compute.volume_snapshot_rpc_timeout)
        except exception.ComputeServiceUnavailable:
            # The compute service may have died after the image became
            # active, before it answered: then the request did succeed,
            # and a 503 would hide an image the user owns (and pays for).
            image = self._finished_volume_snapshot_image(context, instance)
            if image is None:
                raise
            LOG.warning('The compute service of %s did not answer the '
                        'volume-backed snapshot %s, but its image %s is '
                        'active: answering with it', instance['uuid'],
                        context.request_id, image['id'])
            return image
        finally:
            self._release_hold(instance['uuid'], context.request_id)

    def _finished_volume_snapshot_image(self, context, instance):
        """The active image this request's volume-backed snapshot made,
        if any (looked for by its request tag, in the server's project)."""
        try:
            images = volume_snapshot.images_of_request(
                self.image_api, context, context.request_id,
                instance.get('project_id'))
        except Exception:
            LOG.warning('Could not look for the image of request %s',
                        context.request_id, exc_info=True)
            return None
        for image in images:
            if image.get('status') == 'active':
                return image
        return None

    def _release_hold(self, instance_uuid, request_id):
        try:
            release_volume_snapshot_hold(self.db, instance_uuid, request_id)
        except Exception:
            # Not the caller's problem: the compute side releases it too,
            # and its reconciler repairs a hold nobody works under.
            LOG.warning('Could not release the volume snapshot hold of %s '
                        '(request %s)', instance_uuid, request_id,
                        exc_info=True)

    def _check_snapshot_quota(self, context, count):
        """Nova's best-effort check of Cinder's snapshot quota."""
        if not count:
            return
        try:
            limits = self.volume_api.get_absolute_limits(context)
        except Exception:
            LOG.warning('Could not read the Cinder limits; not checking the '
                        'snapshot quota', exc_info=True)
            return
        maximum = int(limits.get('maxTotalSnapshots', -1))
        used = int(limits.get('totalSnapshotsUsed', 0))
        if maximum > -1 and used + count > maximum:
            raise exception.OverQuota(overs='snapshots')

    # Volume attachments (os-volume_attachments)

    def get_volume_attachments(self, context, instance):
        """The instance's volume BDMs (rows), in creation order."""
        bdms = instance.get('bdms')  # loaded with the page by get_all
        if bdms is None:
            bdms = self.db.bdm_get_by_instance(instance['uuid'])
        return [bdm for bdm in bdms
                if block_device.is_volume(bdm) and bdm.get('volume_id')]

    def attach_volume(self, context, instance, volume_id, device=None,
                      tag=None, delete_on_termination=False):
        """Reserve the volume (attachment without connector), store the
        BDM and cast the attach; returns the BDM (with ``device_name``).

        A SHELVED_OFFLOADED server has no host (Nova's
        _attach_volume_shelved_offloaded): the attachment is completed at
        once (the volume ``in-use``) and the BDM recorded; the unshelve
        connects it to the host it lands on. A tag is refused then (400).
        """
        instance_lock.check(context, instance)
        check_instance_state(instance, ACTION_ATTACH_VOLUME,
                             vm_state=VOLUME_ATTACH_STATES)
        offloaded = instance['vm_state'] == vm_states.SHELVED_OFFLOADED
        if offloaded and tag:
            raise exception.Invalid(
                reason='Tagged volume attachment is not supported for '
                       'shelved-offloaded instances.')
        if self.volume_api is None:
            raise exception.InvalidVolume(reason='no Cinder configured')
        bdms = self.db.bdm_get_by_instance(instance['uuid'])
        if any(bdm.get('volume_id') == volume_id for bdm in bdms):
            raise exception.InvalidVolume(
                reason='volume %s is already attached to this server'
                % volume_id)
        volume = self.volume_api.get(context, volume_id)
        if volume.get('status') != 'available':
            raise exception.InvalidVolume(
                reason='volume %s is %s, not available' % (
                    volume_id, volume.get('status')))
        used = [bdm.get('device_name') for bdm in bdms]
        used.append(instance.get('root_device_name') or
                    block_device.ROOT_DEVICE_NAME)
        device = block_device.normalize_device_name(device)
        if device is None or device in used:
            # Nova ignores the requested name for libvirt guests too.
            device = block_device.next_device_name(used)
        attachment = self.volume_api.attachment_create(
            context, volume_id, instance['uuid'])
        bdm = None
        try:
            bdm = self.db.bdm_create({
                'instance_uuid': instance['uuid'], 'source_type': 'volume',
                'destination_type': 'volume', 'volume_id': volume_id,
                'device_name': device, 'device_type': 'disk',
                'boot_index': None, 'tag': tag,
                'delete_on_termination': bool(delete_on_termination),
                'attachment_id': attachment['id']})
            self.db.action_start(context, instance['uuid'],
                                 ACTION_ATTACH_VOLUME)
            if offloaded:
                self.volume_api.attachment_complete(context,
                                                    attachment['id'])
            else:
                self.rpcapi.attach_volume(context, instance, volume_id,
                                          device)
        except Exception:
            with excutils.save_and_reraise_exception():
                # The cast never left (or the row could not be written):
                # forget the mapping and release the reservation, as a
                # failed attach on the compute side does.
                if bdm is not None:
                    try:
                        self.db.bdm_destroy(bdm['id'])
                    except Exception:
                        LOG.warning('Could not remove the mapping of %s',
                                    volume_id, exc_info=True)
                try:
                    self.volume_api.attachment_delete(context,
                                                      attachment['id'])
                except Exception:
                    LOG.warning('Could not release attachment %s',
                                attachment['id'], exc_info=True)
        return bdm

    def update_volume_attachment(self, context, instance, bdm,
                                 delete_on_termination):
        """PUT os-volume_attachments (2.85): the mapping's
        delete_on_termination (Nova saves it in any state; the delete reads
        it). NotFound when the mapping is gone."""
        return self.db.bdm_update(
            bdm['id'], {'delete_on_termination': bool(delete_on_termination)})

    def detach_volume(self, context, instance, volume_id):
        instance_lock.check(context, instance)
        check_instance_state(instance, ACTION_DETACH_VOLUME,
                             vm_state=VOLUME_ATTACH_STATES)
        for bdm in self.get_volume_attachments(context, instance):
            if bdm['volume_id'] == volume_id:
                break
        else:
            raise exception.VolumeAttachmentNotFound(
                volume_id=volume_id, instance_uuid=instance['uuid'])
        if bdm.get('boot_index') == 0:
            raise exception.InvalidVolume(
                reason="Can't detach root device volume")
        self.db.action_start(context, instance['uuid'], ACTION_DETACH_VOLUME)
        if instance['vm_state'] != vm_states.SHELVED_OFFLOADED:
            self.rpcapi.detach_volume(context, instance, volume_id)
            return
        # No host holds it (Nova's _detach_volume_shelved_offloaded): the
        # attachment goes, then the mapping.
        if bdm.get('attachment_id'):
            try:
                self.volume_api.attachment_delete(context,
                                                  bdm['attachment_id'])
            except exception.NotFound:
                pass
        self.db.bdm_destroy(bdm['id'])

    def _delete_image_quietly(self, context, image_id):
        try:
            self.image_api.delete(context, image_id)
        except exception.ImageNotFound:
            pass
        except Exception:
            LOG.warning('Could not delete image %s', image_id, exc_info=True)


def disk_config_for_create(image, requested):
    """The instance's auto_disk_config (Nova's rule): the request's choice,
    else the image's ``auto_disk_config`` property; AUTO for an image whose
    property says "disabled" is a 400."""
    image_value = (image or {}).get('auto_disk_config')
    if str(image_value).strip().lower() == 'disabled':
        if requested:
            raise exception.Invalid(
                reason='Requested image %s has automatic disk resize '
                       'disabled.' % image.get('id'))
        return False
    if requested is not None:
        return bool(requested)
    return strutils.bool_from_string(image_value)
