"""An in-memory compute driver for unit tests of the manager.

It keeps a power state per instance and follows the driver contract
(task-state moves, progress, upload through ``image_api``) without a
hypervisor. Tests steer it through attributes:

* ``fail_<method>_with``: an exception class or instance that the next
  calls of ``spawn``/``power_off``/.../``snapshot`` raise (``None``: off).
* ``fail_snapshot_at``: where ``fail_snapshot_with`` is raised: ``'start'``
  (before any task-state move, the default), ``'capture'`` (after
  IMAGE_PENDING_UPLOAD) or ``'upload'`` (after IMAGE_UPLOADING).
* ``snapshot_gate``: a ``threading.Event`` the snapshot waits on after the
  capture, to hold a snapshot in flight.
* ``snapshot_data``: the bytes uploaded.

``calls`` records ``(method, instance_uuid)`` tuples in order.

Run as a service (``[compute] compute_driver = fake``, for control-plane
benchmarks) it is steered through its own ``[fake]`` options, registered on
the service's configuration when the driver is loaded:

* ``snapshot_hold_dir``: a snapshot of instance U, once captured, waits
  while the file ``<snapshot_hold_dir>/U`` exists (at most
  ``snapshot_hold_timeout`` seconds), so another process can hold one
  snapshot in flight and release it by removing the file.

Volumes and quiesce: ``volumes[uuid]`` maps a device (``vdb``) to its
connection_info (spawn's ``block_device_info`` and attach/detach keep it);
``frozen`` and ``paused_vcpus`` are sets of UUIDs; ``quiesce_log`` records
``(event, uuid, time.monotonic())`` for ``freeze``/``thaw``/``pause``/
``resume`` so tests can measure the window. ``fail_<method>_with`` works
for ``quiesce``, ``unquiesce``, ``pause_vcpus``, ``resume_vcpus``,
``attach_volume``, ``detach_volume`` and ``get_volume_connector`` too;
``quiesce_supported = False`` makes quiesce raise
InstanceQuiesceNotSupported as a guest without an agent does.
"""

import os
import time

import threading

from oslo_config import cfg

from nova_snapshot.compute import power_state
from nova_snapshot.compute import task_states
from nova_snapshot import exception
from nova_snapshot.virt import driver

FAIL_POINTS = ('start', 'capture', 'upload')

FAKE_GROUP = 'fake'
FAKE_OPTS = [
    cfg.StrOpt('snapshot_hold_dir',
               help='Directory whose file named after an instance UUID holds '
                    'that instance\'s snapshot after the capture until the '
                    'file is removed (fake driver only; for benchmarks).'),
    cfg.FloatOpt('snapshot_hold_timeout', default=300.0, min=0.0,
                 help='Longest time one snapshot is held by a hold file.'),
]
HOLD_POLL_SECONDS = 0.05


class FakeDriver(driver.ComputeDriver):

    def __init__(self, conf, image_api, volume_api=None):
        super().__init__(conf, image_api, volume_api=volume_api)
        # Registered here, not in nova_snapshot.conf: only this driver reads
        # them (oslo.config reads already-parsed files for late options).
        conf.register_opts(FAKE_OPTS, group=FAKE_GROUP)
        self.instances = {}        # uuid -> power state
        self.consoles = {}         # uuid -> text
        self.calls = []
        self.repaired = []
        # Instances a snapshot left for repair_after_crash (tests set it).
        self.snapshot_leftovers = set()
        self.snapshot_data = b'fake-snapshot-data\n' * 64
        self.snapshot_gate = None
        self.fail_snapshot_at = 'start'
        self.volumes = {}          # uuid -> {device: connection_info}
        self.block_device_info = {}
        self.frozen = set()
        self.paused_vcpus = set()
        self.quiesce_supported = True
        self.quiesce_log = []
        for name in ('spawn', 'destroy', 'power_off', 'power_on', 'pause',
                     'unpause', 'suspend', 'resume', 'snapshot',
                     'get_console_output', 'quiesce', 'unquiesce',
                     'pause_vcpus', 'resume_vcpus', 'attach_volume',
                     'detach_volume', 'get_volume_connector',
                     'thaw_stale_freeze', 'reboot'):
            setattr(self, 'fail_%s_with' % name, None)
        self._lock = threading.Lock()

    # -- helpers ----------------------------------------------------------

    def _record(self, method, instance):
        with self._lock:
            self.calls.append((method, instance['uuid']))

    def _maybe_fail(self, method):
        error = getattr(self, 'fail_%s_with' % method)
        if error is None:
            return
        if isinstance(error, type):
            error = error()
        raise error

    def _state(self, instance):
        try:
            return self.instances[instance['uuid']]
        except KeyError:
            raise exception.InstanceNotFound(instance_id=instance['uuid'])

    def _set(self, instance, state):
        self._state(instance)
        self.instances[instance['uuid']] = state

    def _transition(self, method, instance, allowed, new_state):
        self._record(method, instance)
        self._maybe_fail(method)
        current = self._state(instance)
        if current not in allowed:
            raise exception.HypervisorError(
                reason='cannot %s instance %s in power state %s' % (
                    method, instance['uuid'],
                    power_state.NAMES.get(current, current)))
        self._set(instance, new_state)

    # -- the contract ------------------------------------------------------

    def list_instance_uuids(self):
        return list(self.instances)

    def spawn(self, context, instance, image_meta, block_device_info=None):
        self._record('spawn', instance)
        self._maybe_fail('spawn')
        self.block_device_info[instance['uuid']] = block_device_info
        self.volumes[instance['uuid']] = {
            _dev(bdm.get('mount_device') or 'vda'): bdm.get('connection_info')
            for bdm in (block_device_info or {}).get(
                'block_device_mapping') or []}
        self.instances[instance['uuid']] = power_state.RUNNING
        self.consoles[instance['uuid']] = (
            'fake guest %s booted from image %s\n' % (
                instance['uuid'], image_meta.get('id')))
        return power_state.RUNNING

    def destroy(self, context, instance):
        self._record('destroy', instance)
        self._maybe_fail('destroy')
        self.instances.pop(instance['uuid'], None)
        self.consoles.pop(instance['uuid'], None)
        # Only the domain goes: volumes' data is never touched.
        self.volumes.pop(instance['uuid'], None)
        self.frozen.discard(instance['uuid'])
        self.paused_vcpus.discard(instance['uuid'])

    def get_power_state(self, instance):
        return self._state(instance)

    def power_off(self, instance):
        self._transition('power_off', instance,
                         (power_state.RUNNING, power_state.PAUSED,
                          power_state.SHUTDOWN), power_state.SHUTDOWN)

    def power_on(self, context, instance):
        self._transition('power_on', instance,
                         (power_state.SHUTDOWN, power_state.RUNNING),
                         power_state.RUNNING)

    def pause(self, instance):
        self._transition('pause', instance, (power_state.RUNNING,),
                         power_state.PAUSED)

    def unpause(self, instance):
        self._transition('unpause', instance, (power_state.PAUSED,),
                         power_state.RUNNING)

    def suspend(self, instance):
        # Like libvirt's managed save: the guest is shut off (see host.py).
        self._transition('suspend', instance,
                         (power_state.RUNNING, power_state.PAUSED),
                         power_state.SHUTDOWN)

    def resume(self, instance):
        self._transition('resume', instance, (power_state.SHUTDOWN,),
                         power_state.RUNNING)

    def reboot(self, instance, reboot_type):
        # Soft needs a running guest, as the libvirt driver's ACPI request
        # does; anything else goes the hard way (also from suspended).
        self._record('reboot_%s' % reboot_type.lower(), instance)
        self._maybe_fail('reboot')
        self._state(instance)
        self.frozen.discard(instance['uuid'])
        self.paused_vcpus.discard(instance['uuid'])
        self._set(instance, power_state.RUNNING)
        self.consoles[instance['uuid']] = (
            self.consoles.get(instance['uuid'], '') +
            'fake guest %s rebooted (%s)\n' % (instance['uuid'],
                                               reboot_type))
        return power_state.RUNNING

    def get_console_output(self, instance):
        self._record('get_console_output', instance)
        self._maybe_fail('get_console_output')
        self._state(instance)
        return self.consoles.get(instance['uuid'], '')

    def snapshot(self, context, instance, image_id, update_task_state,
                 report_progress):
        self._record('snapshot', instance)
        if self.fail_snapshot_at not in FAIL_POINTS:
            raise ValueError('fail_snapshot_at must be one of %s' %
                             (FAIL_POINTS,))
        self._state(instance)
        if self.fail_snapshot_at == 'start':
            self._maybe_fail('snapshot')

        update_task_state(task_state=task_states.IMAGE_PENDING_UPLOAD,
                          expected_state=task_states.IMAGE_SNAPSHOT)
        report_progress(0)
        if self.fail_snapshot_at == 'capture':
            self._maybe_fail('snapshot')
        if self.snapshot_gate is not None:
            self.snapshot_gate.wait()
        self._wait_while_held(instance)
        # The guest may have been deleted while the snapshot was held.
        self._state(instance)
        report_progress(50)

        update_task_state(task_state=task_states.IMAGE_UPLOADING,
                          expected_state=task_states.IMAGE_PENDING_UPLOAD)
        if self.fail_snapshot_at == 'upload':
            self._maybe_fail('snapshot')
        data = self.snapshot_data
        self.image_api.update(context, image_id,
                              {'disk_format': 'raw',
                               'container_format': 'bare'})
        self.image_api.upload(context, image_id, iter([data]), size=len(data))
        report_progress(100)
        return {'method': 'fake', 'guest_paused_seconds': 0.0,
                'bytes_uploaded': len(data)}

    def _wait_while_held(self, instance):
        hold_dir = self.conf.fake.snapshot_hold_dir
        if not hold_dir:
            return
        path = os.path.join(hold_dir, instance['uuid'])
        deadline = time.monotonic() + self.conf.fake.snapshot_hold_timeout
        while os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(HOLD_POLL_SECONDS)

    # -- volumes and quiesce ------------------------------------------------

    def get_volume_connector(self, instance):
        self._record('get_volume_connector', instance)
        self._maybe_fail('get_volume_connector')
        return {'host': 'fake-host', 'ip': '127.0.0.1',
                'platform': 'x86_64', 'os_type': 'linux',
                'multipath': False, 'do_local_attach': False,
                'initiator': 'iqn.fake'}

    def attach_volume(self, context, connection_info, instance, mountpoint,
                      disk_bus=None):
        self._record('attach_volume', instance)
        self._maybe_fail('attach_volume')
        self._state(instance)
        disks = self.volumes.setdefault(instance['uuid'], {})
        dev = _dev(mountpoint)
        if dev in disks:
            raise exception.InvalidDevicePath(path='%s (already in use)' %
                                              mountpoint)
        disks[dev] = connection_info

    def detach_volume(self, context, connection_info, instance, mountpoint):
        self._record('detach_volume', instance)
        self._maybe_fail('detach_volume')
        self._state(instance)
        self.volumes.get(instance['uuid'], {}).pop(_dev(mountpoint), None)

    def _log_quiesce(self, event, instance):
        with self._lock:
            self.quiesce_log.append((event, instance['uuid'],
                                     time.monotonic()))

    def quiesce(self, context, instance, deadline):
        self._record('quiesce', instance)
        self._maybe_fail('quiesce')
        if self._state(instance) != power_state.RUNNING:
            raise exception.InstanceNotRunning(instance_id=instance['uuid'])
        if not self.quiesce_supported:
            raise exception.InstanceQuiesceNotSupported(
                instance_id=instance['uuid'],
                reason='QEMU guest agent is not configured')
        self.frozen.add(instance['uuid'])
        self._log_quiesce('freeze', instance)
        return {'frozen_filesystems': 1, 'freeze_seconds': 0.0,
                'deadline': deadline}

    def unquiesce(self, context, instance):
        self._record('unquiesce', instance)
        self._maybe_fail('unquiesce')
        if instance['uuid'] in self.frozen:
            self.frozen.discard(instance['uuid'])
            self._log_quiesce('thaw', instance)

    def pause_vcpus(self, instance, deadline=10.0):
        self._record('pause_vcpus', instance)
        self._maybe_fail('pause_vcpus')
        if self._state(instance) != power_state.RUNNING:
            return False
        self.paused_vcpus.add(instance['uuid'])
        self._log_quiesce('pause', instance)
        return True

    def resume_vcpus(self, instance):
        self._record('resume_vcpus', instance)
        self._maybe_fail('resume_vcpus')
        if instance['uuid'] not in self.paused_vcpus:
            return False
        self.paused_vcpus.discard(instance['uuid'])
        self._log_quiesce('resume', instance)
        return True

    def thaw_if_frozen(self, instance):
        self._record('thaw_if_frozen', instance)
        done = []
        if instance['uuid'] in self.frozen:
            self.frozen.discard(instance['uuid'])
            done.append('thawed filesystems')
        if instance['uuid'] in self.paused_vcpus:
            self.paused_vcpus.discard(instance['uuid'])
            done.append('resumed vcpus')
        return done

    def has_snapshot_leftovers(self, instance):
        return instance['uuid'] in self.snapshot_leftovers

    def repair_after_crash(self, instance):
        """Returns what was done, as the libvirt driver does."""
        self._record('repair_after_crash', instance)
        uuid = instance['uuid']
        done = ['restored guest'] if uuid in self.snapshot_leftovers else []
        self.snapshot_leftovers.discard(uuid)
        self.frozen.discard(uuid)
        self.paused_vcpus.discard(uuid)
        self.repaired.append(uuid)
        return done

    # -- the periodic reconciler ---------------------------------------------

    def list_domains(self):
        return [{'uuid': uuid, 'name': 'instance-%s' % uuid,
                 'power_state': state}
                for uuid, state in list(self.instances.items())]

    def destroy_domain(self, instance_uuid):
        self.destroy(None, {'uuid': instance_uuid})

    def power_off_domain(self, instance_uuid):
        self._record('power_off_domain', {'uuid': instance_uuid})
        if instance_uuid in self.instances:
            self.instances[instance_uuid] = power_state.SHUTDOWN

    def thaw_stale_freeze(self, instance, agent_timeout=5):
        """``frozen`` stands for both the agent's status and a token;
        ``paused_vcpus`` for a pause token."""
        self._record('thaw_stale_freeze', instance)
        self._maybe_fail('thaw_stale_freeze')
        return self.thaw_if_frozen(instance)

    def capabilities(self):
        return {'live_snapshot': True}

    def get_available_resource(self):
        """The ``[fake]`` vcpus/memory_mb/local_gb options: a host of any
        size for control-plane tests; no node name (the service's host)."""
        opts = self.conf.fake
        return {'vcpus': opts.vcpus, 'memory_mb': opts.memory_mb,
                'local_gb': opts.local_gb, 'hypervisor_hostname': None}


def _dev(mountpoint):
    return str(mountpoint).rsplit('/', 1)[-1]
