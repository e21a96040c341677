"""An in-memory ComputeAPI with the real one's interface (design.rst).

Enough behaviour for API unit tests: project scoping on get, Nova's state
check for snapshots, a task_state CAS, and instance actions. It keeps
every call so tests can assert what the handlers asked for.
"""

import datetime
import uuid as uuidlib

from nova_snapshot.compute import flavors
from nova_snapshot.compute import task_states
from nova_snapshot.compute import vm_states
from nova_snapshot import exception
from tests.unit.compute import fakes as compute_fakes


# The compute service row FakeComputeAPI.db holds (os-services).
FAKE_SERVICE_HOST = 'fake-host'


class FakeComputeAPI:

    def __init__(self):
        self._db = None
        self.instances = {}
        # Glance for the images proxy (the handlers use image_api).
        self.image_api = compute_fakes.FakeImageAPI()
        self.bdms = {}
        self.actions = {}
        self.calls = []
        # What snapshot_volume_backed raises; None: it succeeds.
        self.volume_snapshot_error = exception.VolumeBackedSnapshotNotSupported
        # Cinder as the handlers see it (the swap-volume checks); None: no
        # Cinder configured.
        self.volume_api = None

    @property
    def db(self):
        """A real in-memory SQLite database, made on first use, for the
        os-services handlers; it holds one compute service."""
        if self._db is None:
            from nova_snapshot.db import api as db_api
            self._db = db_api.Database('sqlite://')
            self._db.create_schema()
            self._db.service_update(FAKE_SERVICE_HOST,
                                    'nova-snapshot-compute',
                                    binary='nova-snapshot-compute')
        return self._db

    # -- test helpers ------------------------------------------------------
    def add_instance(self, project_id, user_id='user', **values):
        now = datetime.datetime(2024, 1, 2, 3, 4, 5)
        instance = {
            'uuid': str(uuidlib.uuid4()), 'name': 'server',
            'project_id': project_id, 'user_id': user_id, 'host': 'host1',
            'vm_state': vm_states.ACTIVE, 'task_state': None,
            'power_state': 1, 'progress': 0,
            'image_ref': str(uuidlib.uuid4()),
            'flavor': flavors.get_flavor('1'), 'root_device_name': '/dev/vda',
            'launched_at': now, 'created_at': now, 'updated_at': now,
            'metadata': {}, 'system_metadata': {}, 'fault': None,
        }
        instance.update(values)
        self.instances[instance['uuid']] = instance
        return instance

    # -- ComputeAPI --------------------------------------------------------
    def get(self, context, uuid, read_deleted=False):
        instance = self.instances.get(uuid)
        if instance is None or (not read_deleted and
                                instance['vm_state'] == vm_states.DELETED) or (
                not context.is_admin
                and instance['project_id'] != context.project_id):
            raise exception.InstanceNotFound(instance_id=uuid)
        return dict(instance)

    def get_all(self, context, filters=None, all_projects=False,
                limit=None, **kwargs):
        """Project scoping and limit only; the real filtering, sorting and
        paging are tested against a real database (test_server_list)."""
        self.calls.append(('get_all', dict(filters or {}), all_projects,
                           limit))
        every = all_projects and context.is_admin
        found = [dict(i) for i in self.instances.values()
                 if (every or i['project_id'] == context.project_id)
                 and i['vm_state'] != vm_states.DELETED]
        return found[:limit] if limit is not None else found

    def add_volume(self, instance, volume_id=None, boot_index=None,
                   device_name='/dev/vdb', delete_on_termination=False,
                   tag=None):
        bdm = {'id': sum(len(b) for b in self.bdms.values()) + 1,
               'volume_id': volume_id or str(uuidlib.uuid4()),
               'attachment_id': str(uuidlib.uuid4()), 'tag': tag,
               'source_type': 'volume', 'destination_type': 'volume',
               'boot_index': boot_index, 'device_name': device_name,
               'delete_on_termination': delete_on_termination}
        self.bdms.setdefault(instance['uuid'], []).append(bdm)
        return bdm

    def check_requested_destination(self, host=None, node=None):
        # One compute host, whose node has the host's name.
        for name in (host, node):
            if name and name != FAKE_SERVICE_HOST:
                raise exception.ComputeHostNotFound(host=name)

    def create(self, context, name, image_ref, flavor_id, metadata=None,
               block_device_mapping=None, access_ip_v4=None,
               access_ip_v6=None, auto_disk_config=None,
               availability_zone=None, forced_host=None, forced_node=None,
               hostname=None, key_name=None, min_count=1, max_count=1,
               description=None):
        self.calls.append(('create', name, image_ref, flavor_id, metadata))
        if (min_count, max_count) != (1, 1):
            self.calls.append(('create_counts', min_count, max_count))
        key_pair = {}
        if key_name is not None:  # the real lookup, in self.db
            key_pair = self.db.keypair_get(context.user_id, key_name)
        if hostname is not None:
            self.calls.append(('create_hostname', hostname))
        if availability_zone or forced_host or forced_node:
            self.calls.append(('create_destination', availability_zone,
                               forced_host, forced_node))
        if block_device_mapping is not None:
            self.calls.append(('create_bdms', block_device_mapping))
        try:
            flavor = flavors.get_flavor(flavor_id)
        except exception.FlavorNotFound:
            raise exception.FlavorNotFoundBadRequest(flavor_id=flavor_id)
        instance = self.add_instance(
            context.project_id, context.user_id, name=name,
            image_ref=image_ref, flavor=flavor,
            vm_state=vm_states.BUILDING, task_state=task_states.SCHEDULING,
            launched_at=None, metadata=dict(metadata or {}),
            access_ip_v4=access_ip_v4, access_ip_v6=access_ip_v6,
            auto_disk_config=bool(auto_disk_config),
            key_name=key_pair.get('name'),
            key_data=key_pair.get('public_key'), reservation_id='r-fake0001',
            description=description)
        for bdm in block_device_mapping or ():
            if bdm['destination_type'] == 'volume':
                self.add_volume(instance, bdm.get('uuid'),
                                boot_index=bdm['boot_index'],
                                device_name=bdm['device_name'],
                                delete_on_termination=bdm[
                                    'delete_on_termination'])
        self._record(context, instance, 'create')
        return dict(instance)

    def get_volume_attachments(self, context, instance):
        return [dict(b) for b in self.bdms.get(instance['uuid'], [])]

    def attach_volume(self, context, instance, volume_id, device=None,
                      tag=None, delete_on_termination=False):
        self.calls.append(('attach_volume', instance['uuid'], volume_id,
                           device))
        self.attach_options = {'tag': tag,
                               'delete_on_termination': delete_on_termination}
        self._check(instance, 'attach_volume',
                    (vm_states.ACTIVE, vm_states.STOPPED, vm_states.PAUSED,
                     vm_states.SHELVED, vm_states.SHELVED_OFFLOADED))
        if volume_id.startswith('00000000'):
            raise exception.VolumeNotFound(volume_id=volume_id)
        if any(b['volume_id'] == volume_id
               for b in self.bdms.get(instance['uuid'], [])):
            raise exception.InvalidVolume(reason='already attached')
        return device or '/dev/vdc'

    def update_volume_attachment(self, context, instance, bdm,
                                 delete_on_termination):
        self.calls.append(('update_volume_attachment', instance['uuid'],
                           bdm['volume_id'], delete_on_termination))
        for row in self.bdms.get(instance['uuid'], []):
            if row['id'] == bdm['id']:
                row['delete_on_termination'] = delete_on_termination
                return dict(row)
        raise exception.NotFound()

    def detach_volume(self, context, instance, volume_id):
        self.calls.append(('detach_volume', instance['uuid'], volume_id))
        self._check(instance, 'detach_volume',
                    (vm_states.ACTIVE, vm_states.STOPPED, vm_states.PAUSED,
                     vm_states.SHELVED, vm_states.SHELVED_OFFLOADED))

    def delete(self, context, instance):
        self.calls.append(('delete', instance['uuid']))
        self.instances[instance['uuid']]['vm_state'] = vm_states.DELETED

    def restore(self, context, instance):
        self._power(context, instance, 'restore', (vm_states.SOFT_DELETED,))

    def force_delete(self, context, instance):
        self.calls.append(('force_delete', instance['uuid']))
        self.instances[instance['uuid']]['vm_state'] = vm_states.DELETED

    def _check(self, instance, method, allowed):
        if instance['vm_state'] not in allowed:
            raise exception.InstanceInvalidState(
                attr='vm_state', instance_uuid=instance['uuid'],
                state=instance['vm_state'], method=method)
        if instance['task_state'] is not None:
            raise exception.InstanceInvalidState(
                attr='task_state', instance_uuid=instance['uuid'],
                state=instance['task_state'], method=method)

    def _power(self, context, instance, method, allowed):
        self.calls.append((method, instance['uuid']))
        self._check(instance, method, allowed)
        self._record(context, instance, method)

    def stop(self, context, instance):
        self._power(context, instance, 'stop', (vm_states.ACTIVE,))

    def start(self, context, instance):
        self._power(context, instance, 'start', (vm_states.STOPPED,))

    def pause(self, context, instance):
        self._power(context, instance, 'pause', (vm_states.ACTIVE,))

    def unpause(self, context, instance):
        self._power(context, instance, 'unpause', (vm_states.PAUSED,))

    def suspend(self, context, instance):
        self._power(context, instance, 'suspend', (vm_states.ACTIVE,))

    def resume(self, context, instance):
        self._power(context, instance, 'resume', (vm_states.SUSPENDED,))

    def shelve(self, context, instance):
        self._power(context, instance, 'shelve', vm_states.SHELVE_ALLOWED)

    def shelve_offload(self, context, instance):
        self._power(context, instance, 'shelveOffload', (vm_states.SHELVED,))

    def unshelve(self, context, instance, **kwargs):
        self.calls.append(('unshelve_args', instance['uuid'], kwargs))
        self._power(context, instance, 'unshelve',
                    vm_states.UNSHELVE_ALLOWED)

    def reboot(self, context, instance, reboot_type):
        self.calls.append(('reboot_type', instance['uuid'], reboot_type))
        self._power(context, instance, 'reboot', (vm_states.ACTIVE,))

    def rebuild(self, context, instance, image_href, **kwargs):
        self.calls.append(('rebuild_args', instance['uuid'], image_href,
                           kwargs))
        if kwargs.get('key_name') is not None:  # the real lookup
            self.db.keypair_get(context.user_id, kwargs['key_name'])
        self._power(context, instance, 'rebuild', (vm_states.ACTIVE,))
        self.instances[instance['uuid']].update(task_state='rebuilding',
                                                image_ref=image_href)

    def update_instance(self, context, instance, values, **kwargs):
        self.calls.append(('update_instance', instance['uuid'], values,
                           kwargs))
        stored = self.instances[instance['uuid']]
        stored.update(values)
        return dict(stored)

    def lock(self, context, instance, reason=None):
        self.calls.append(('lock', instance['uuid'], reason))
        self.instances[instance['uuid']].update(
            locked=True, locked_reason=reason, locked_by='owner'
            if context.project_id == instance['project_id'] else 'admin')

    def unlock(self, context, instance):
        self.calls.append(('unlock', instance['uuid']))
        self.instances[instance['uuid']].update(
            locked=False, locked_reason=None, locked_by=None)

    def get_console_output(self, context, instance, length=None):
        self.calls.append(('get_console_output', instance['uuid'], length))
        lines = ['line %d' % i for i in range(10)]
        if length is not None:
            lines = lines[-length:] if length else []
        return '\n'.join(lines)

    def is_volume_backed(self, context, instance):
        return not instance.get('image_ref')

    def snapshot(self, context, instance, name, extra_properties=None):
        self.calls.append(('snapshot', instance['uuid'], name,
                           extra_properties))
        self._check(instance, 'createImage', vm_states.SNAPSHOT_ALLOWED)
        stored = self.instances[instance['uuid']]
        stored['task_state'] = task_states.IMAGE_SNAPSHOT_PENDING
        self._record(context, instance, 'createImage')
        return {'id': str(uuidlib.uuid4()), 'name': name, 'status': 'queued'}

    def backup(self, context, instance, name, backup_type, rotation,
               extra_properties=None):
        self.calls.append(('backup', instance['uuid'], name, backup_type,
                           rotation, extra_properties))
        self._check(instance, 'createBackup', vm_states.SNAPSHOT_ALLOWED)
        if self.is_volume_backed(context, instance):
            from nova_snapshot.compute import backup
            raise backup.VolumeBackedBackupNotSupported()
        stored = self.instances[instance['uuid']]
        stored['task_state'] = task_states.IMAGE_BACKUP
        self._record(context, instance, 'createBackup')
        return {'id': str(uuidlib.uuid4()), 'name': name, 'status': 'queued'}

    def snapshot_volume_backed(self, context, instance, name,
                               extra_properties=None):
        self.calls.append(('snapshot_volume_backed', instance['uuid'], name,
                           extra_properties))
        self._check(instance, 'createImage', vm_states.SNAPSHOT_ALLOWED)
        error = self.volume_snapshot_error
        if isinstance(error, type):
            error = error(instance_uuid=instance['uuid'], reason='test')
        if error is not None:
            raise error
        return {'id': str(uuidlib.uuid4()), 'name': name, 'status': 'active',
                'size': 0}

    def _record(self, context, instance, action):
        self.actions.setdefault(instance['uuid'], []).insert(0, {
            'action': action, 'instance_uuid': instance['uuid'],
            'request_id': context.request_id or 'req-%s' % uuidlib.uuid4(),
            'user_id': context.user_id, 'project_id': context.project_id,
            'start_time': datetime.datetime(2024, 1, 2, 3, 4, 6),
            'finish_time': None, 'message': None,
            'events': [{'event': 'compute_%s' % action, 'result': 'Success',
                        'traceback': None,
                        'start_time': datetime.datetime(2024, 1, 2, 3, 4),
                        'finish_time': datetime.datetime(2024, 1, 2, 3, 5)}],
        })

    def get_instance_actions(self, context, instance):
        return [dict(a) for a in self.actions.get(instance['uuid'], [])]

    def get_instance_action(self, context, instance, request_id):
        for action in self.actions.get(instance['uuid'], []):
            if action['request_id'] == request_id:
                return dict(action)
        raise exception.InstanceActionNotFound(
            request_id=request_id, instance_uuid=instance['uuid'])
