"""The API side of every compute action.

The HTTP handlers call :class:`ComputeAPI`; it checks states, does the
compare-and-swap on ``task_state`` that serialises actions on one instance,
records the instance action and casts to the compute host. It never waits
for the hypervisor (except for the console, which is an RPC call).
"""

import logging
import uuid as uuidlib

from oslo_utils import excutils

from nova_snapshot.compute import flavors
from nova_snapshot.compute import power_state
from nova_snapshot.compute import scheduler
from nova_snapshot.compute import snapshot_metadata
from nova_snapshot.compute import task_states
from nova_snapshot.compute import vm_states
from nova_snapshot import exception

LOG = logging.getLogger(__name__)

# system_metadata key holding the Glance image an in-flight snapshot
# writes to, so a compute service restarted mid-snapshot can delete it.
# It is not ``image_``-prefixed, so snapshots never inherit it.
SNAPSHOT_IMAGE_KEY = 'snapshot_image_id'

# Nova's instance action names (os-instance-actions).
ACTION_CREATE = 'create'
ACTION_DELETE = 'delete'
ACTION_CREATE_IMAGE = 'createImage'

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


class ComputeAPI(object):

    def __init__(self, conf, db, image_api, rpcapi, volume_api=None):
        self.conf = conf
        self.db = db
        self.image_api = image_api
        self.rpcapi = rpcapi
        self.volume_api = volume_api

    # Reading

    def _visible(self, context, instance):
        return context.is_admin or instance['project_id'] == context.project_id

    def get(self, context, uuid):
        instance = self.db.instance_get(uuid)
        if not self._visible(context, instance):
            # Another project's server does not exist for this caller.
            raise exception.InstanceNotFound(instance_id=uuid)
        instance['fault'] = self.db.fault_get_latest(uuid)
        return instance

    def get_all(self, context, all_projects=False):
        project_id = None if (all_projects and context.is_admin) \
            else context.project_id
        return self.db.instance_get_all(project_id=project_id)

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

    def create(self, context, name, image_ref, flavor_id, metadata=None):
        try:
            flavor = flavors.get_flavor(flavor_id)
        except exception.FlavorNotFound:
            raise exception.FlavorNotFoundBadRequest(flavor_id=flavor_id)
        try:
            image = self.image_api.get(context, image_ref)
        except exception.ImageNotFound:
            raise exception.ImageNotFoundBadRequest(image_id=image_ref)
        self._check_image_fits(image, flavor)

        values = {
            'uuid': str(uuidlib.uuid4()),
            'name': name,
            'project_id': context.project_id,
            'user_id': context.user_id,
            'image_ref': image['id'],
            'flavor': flavor,
            'vm_state': vm_states.BUILDING,
            'task_state': task_states.SCHEDULING,
            'power_state': power_state.NOSTATE,
            'root_device_name': '/dev/vda',
            'metadata': dict(metadata or {}),
            'system_metadata': snapshot_metadata.system_metadata_from_image(
                image, flavor),
        }
        try:
            values['host'] = scheduler.select_host(self.conf, self.db)
        except exception.NoComputeHost as exc:
            # Like Nova: the request is accepted and the server goes to
            # ERROR with a fault the client can read.
            values.update(vm_state=vm_states.ERROR, task_state=None)
            instance = self.db.instance_create(values)
            self.db.action_start(context, instance['uuid'], ACTION_CREATE)
            self.db.fault_create(instance['uuid'], 500,
                                 'No valid host was found. %s'
                                 % exc.kwargs.get('reason', ''), None)
            return instance
        instance = self.db.instance_create(values)
        self.db.action_start(context, instance['uuid'], ACTION_CREATE)
        self.rpcapi.build_instance(context, instance, image['id'])
        return instance

    @staticmethod
    def _check_image_fits(image, flavor):
        if image.get('status') != 'active':
            raise exception.ImageUnacceptable(
                image_id=image['id'], reason='status is %s, not active'
                % image.get('status'))
        if int(image.get('min_ram') or 0) > flavor['memory_mb']:
            raise exception.Invalid(
                reason='Flavor\'s memory is too small for requested image.')
        if int(image.get('min_disk') or 0) > flavor['root_gb']:
            raise exception.Invalid(
                reason='Flavor\'s disk is too small for requested image.')

    def delete(self, context, instance):
        if instance['task_state'] == task_states.DELETING:
            return  # already on its way out; deleting is idempotent
        try:
            instance = self.db.instance_update(
                instance['uuid'], {'task_state': task_states.DELETING})
        except exception.InstanceNotFound:
            return
        self.db.action_start(context, instance['uuid'], ACTION_DELETE)
        if not instance.get('host') or not self._host_is_up(
                instance['host']):
            # Nothing (alive) to tell: delete the record here, as Nova's
            # local delete does. A compute service coming back finds no row.
            LOG.info('Deleting instance %s locally: host %s is not up',
                     instance['uuid'], instance.get('host'))
            self.db.instance_update(instance['uuid'], {
                'vm_state': vm_states.DELETED, 'task_state': None,
                'power_state': power_state.NOSTATE})
            self.db.instance_destroy(instance['uuid'])
            return
        self.rpcapi.terminate_instance(context, instance)

    def _host_is_up(self, host):
        return any(service['host'] == host and scheduler.service_is_up(service)
                   for service in self.db.service_get_all(scheduler.TOPIC))

    # Power actions

    def _power_action(self, context, instance, method):
        action, allowed, new_task_state, rpc_method = _POWER_ACTIONS[method]
        check_instance_state(instance, action, vm_state=allowed)
        try:
            instance = self.db.instance_update(
                instance['uuid'], {'task_state': new_task_state},
                expected_task_state=None, expected_vm_state=allowed)
        except (exception.InstanceNotFound,
                exception.UnexpectedTaskStateError) as exc:
            raise _conflict_from_cas(exc, instance['uuid'], action)
        self.db.action_start(context, instance['uuid'], action)
        getattr(self.rpcapi, rpc_method)(context, instance)
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

        sysmeta = dict(instance.get('system_metadata') or {})
        sysmeta[SNAPSHOT_IMAGE_KEY] = image['id']
        try:
            instance = self.db.instance_update(
                instance['uuid'],
                {'task_state': task_states.IMAGE_SNAPSHOT_PENDING,
                 'system_metadata': sysmeta},
                expected_task_state=None)
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
                self._revert_snapshot_task_state(instance)
        return image

    def snapshot_volume_backed(self, context, instance, name,
                               extra_properties=None):
        raise exception.VolumeBackedSnapshotNotSupported(
            instance_uuid=instance['uuid'])

    def _delete_image_quietly(self, context, image_id):
        try:
            self.image_api.delete(context, image_id)
        except exception.ImageNotFound:
            pass
        except Exception:
            LOG.warning('Could not delete image %s', image_id, exc_info=True)

    def _revert_snapshot_task_state(self, instance):
        sysmeta = dict(instance.get('system_metadata') or {})
        sysmeta.pop(SNAPSHOT_IMAGE_KEY, None)
        try:
            self.db.instance_update(
                instance['uuid'], {'task_state': None,
                                   'system_metadata': sysmeta},
                expected_task_state=task_states.IMAGE_SNAPSHOT_PENDING)
        except (exception.InstanceNotFound,
                exception.UnexpectedTaskStateError):
            pass
