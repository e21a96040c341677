"""The contract between the compute manager and a hypervisor driver.

Drivers are loaded by name from the ``nova_snapshot.virt.drivers`` entry-point
namespace (see :mod:`nova_snapshot.virt.loader`). They never touch the
database: the manager hands them an ``instance`` dict and callbacks, and they
talk to Glance/Cinder only through the ``image_api``/``volume_api`` objects
they are given.

The ``instance`` dict has at least: ``uuid``, ``name``, ``project_id``,
``user_id``, ``image_ref``, ``flavor`` (dict with ``name``, ``memory_mb``,
``vcpus``, ``root_gb``), ``vm_state``, ``power_state``, ``root_device_name``
and ``system_metadata`` (the base image's properties captured at boot, keys
prefixed ``image_``).
"""

import abc
import os
import socket

from nova_snapshot import fault_injection

GiB = 1024 ** 3


def disk_total_gb(path):
    """Size (GiB, rounded down) of the filesystem holding ``path``."""
    stats = os.statvfs(path)
    return stats.f_blocks * stats.f_frsize // GiB


def host_memory_mb():
    """Physical RAM of this machine in MiB."""
    return (os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
            // (1024 * 1024))


class ComputeDriver(abc.ABC):
    """A hypervisor driver.

    :param conf: the service's ``oslo_config.cfg.ConfigOpts``.
    :param image_api: a :class:`nova_snapshot.image.glance.GlanceAPI`.
    :param volume_api: a :class:`nova_snapshot.volume.cinder.CinderAPI` or
        None when the deployment has no Cinder.
    """

    def __init__(self, conf, image_api, volume_api=None):
        self.conf = conf
        self.image_api = image_api
        self.volume_api = volume_api

    def init_host(self, host):
        """Prepare the hypervisor connection; called once at service start."""

    @abc.abstractmethod
    def list_instance_uuids(self):
        """Return the UUIDs of the instances this host's hypervisor knows."""

    @abc.abstractmethod
    def spawn(self, context, instance, image_meta, block_device_info=None):
        """Create and start the guest of ``instance`` from a Glance image.

        :param image_meta: the Glance image (flattened dict: ``id``,
            ``disk_format``, ``container_format``, ``size``, ``min_disk``,
            ``min_ram`` and every property as a top-level key).
        :param block_device_info: volumes, ``{'root_device_name':
            '/dev/vda', 'block_device_mapping': [{'connection_info': {...},
            'mount_device': 'vda', 'boot_index': 0, 'disk_bus': 'virtio',
            'volume_id': ...}, ...]}``; None or no mappings: no volumes.
        Downloads the image (and its ``kernel_id``/``ramdisk_id`` images for
        direct kernel boot), defines and starts the domain. When a mapping
        has ``boot_index`` 0 that volume is the root disk and no image is
        downloaded; the kernel/ramdisk still come from ``image_meta`` or
        the instance's ``image_kernel_id``/``image_ramdisk_id``/
        ``image_os_command_line`` system metadata.
        :returns: the power state after start.
        """

    @abc.abstractmethod
    def destroy(self, context, instance):
        """Stop the guest and remove its domain and local files. Idempotent."""

    @abc.abstractmethod
    def get_power_state(self, instance):
        """Return a :mod:`nova_snapshot.compute.power_state` value.

        :raises InstanceNotFound: when the hypervisor has no such guest.
        """

    @abc.abstractmethod
    def power_off(self, instance):
        """Stop the guest (hard stop is acceptable for a test guest)."""

    @abc.abstractmethod
    def power_on(self, context, instance):
        """Start a stopped guest."""

    @abc.abstractmethod
    def pause(self, instance):
        """Stop the vCPUs, keep the memory."""

    @abc.abstractmethod
    def unpause(self, instance):
        """Restart the vCPUs of a paused guest."""

    @abc.abstractmethod
    def suspend(self, instance):
        """Save the guest's memory to disk and stop it (managed save)."""

    @abc.abstractmethod
    def resume(self, instance):
        """Restore a suspended guest."""

    def reboot(self, instance, reboot_type):
        """Reboot the guest; ``reboot_type`` 'SOFT' or 'HARD'.

        SOFT asks the guest to shut down and starts it again once it has,
        within a bounded wait; a guest that does not go down (or is not
        running) is rebooted hard instead, as Nova's libvirt driver does.
        HARD stops the guest at once (a suspended guest's saved memory is
        dropped) and starts the same definition again: disks and volumes
        are kept. Either way the guest runs afterwards.
        :returns: the power state after the reboot.
        """
        raise NotImplementedError()

    def rebuild(self, context, instance, image_meta, block_device_info=None):
        """Replace the guest by one booted from ``image_meta`` (same
        instance, same volumes): Nova's default rebuild, destroy then
        spawn. The local root disk is replaced by the new image; volumes'
        data is never touched (destroy only undefines them).
        :returns: the power state after start.
        """
        self.destroy(context, instance)
        # The old guest and its local disk are gone, the new not spawned.
        fault_injection.point('rebuild.old_disk_gone')
        if block_device_info is None:
            return self.spawn(context, instance, image_meta)
        return self.spawn(context, instance, image_meta, block_device_info)

    @abc.abstractmethod
    def get_console_output(self, instance):
        """Return what the guest wrote to its serial console, as text."""

    @abc.abstractmethod
    def snapshot(self, context, instance, image_id, update_task_state,
                 report_progress):
        """Capture the root disk of ``instance`` and upload it to ``image_id``.

        The Glance image exists (queued) when this is called. The driver
        moves the task state through ``update_task_state(task_state=...,
        expected_state=...)``: IMAGE_PENDING_UPLOAD (expected IMAGE_SNAPSHOT)
        when the capture starts, IMAGE_UPLOADING (expected
        IMAGE_PENDING_UPLOAD) when data starts to flow, and must return with
        the instance in IMAGE_UPLOADING. ``report_progress(percent)`` takes an
        int 0-100 whenever the driver knows more; the caller rate-limits it.

        The guest must end in the power state it started in, on success and
        on failure. The driver removes its scratch files; deleting the Glance
        image on failure is the caller's job.

        :returns: a dict of facts about the capture worth recording, e.g.
            ``{'method': 'live', 'guest_paused_seconds': 0.0,
            'bytes_uploaded': N}``.
        :raises InstanceNotFound: the guest disappeared.
        """

    # -- volumes (optional: drivers without Cinder support raise) ----------

    def get_volume_connector(self, instance):
        """Return the os-brick style connector dict Cinder wants for attach.

        ``{'host', 'ip', 'platform', 'os_type', 'multipath', 'initiator',
        'do_local_attach'}``.
        """
        raise NotImplementedError()

    def attach_volume(self, context, connection_info, instance, mountpoint,
                      disk_bus=None):
        """Attach a volume to the guest, live when it runs, and persistently.

        :param connection_info: Cinder's, ``{'driver_volume_type': 'rbd',
            'data': {...}}`` (the flat attachments-API shape is accepted
            too).
        :param mountpoint: ``/dev/vdb`` or ``vdb``.
        :raises VolumeDriverNotFound: unsupported ``driver_volume_type``.
        :raises InvalidDevicePath: bad or busy device name.
        """
        raise NotImplementedError()

    def detach_volume(self, context, connection_info, instance, mountpoint):
        """Detach a volume (live and persistent). Idempotent.

        :raises DeviceDetachFailed: the guest did not release the device.
        """
        raise NotImplementedError()

    def quiesce(self, context, instance, deadline):
        """Freeze the guest's filesystems through the guest agent.

        Before freezing, a watchdog outside the compute process is armed:
        it thaws the guest ``deadline`` seconds later whatever happens to
        the service, unless :meth:`unquiesce` stood it down.

        :returns: a dict of facts (``frozen_filesystems``...).
        :raises InstanceQuiesceNotSupported: no agent in this guest.
        :raises InstanceQuiesceFailed: the agent did not answer (the
            watchdog stays armed; calling unquiesce is still right).
        """
        raise NotImplementedError()

    def unquiesce(self, context, instance):
        """Thaw the guest and stand the watchdog down. Idempotent.

        :raises InstanceQuiesceFailed: the thaw failed (the watchdog stays
            armed and thaws at the deadline).
        """
        raise NotImplementedError()

    def pause_vcpus(self, instance, deadline=10.0):
        """Stop the vCPUs for a consistent cut without an agent.

        Guarded like :meth:`quiesce` (resumed at ``deadline``).
        :returns: True when this call paused the guest, False when it was
            already paused (then :meth:`resume_vcpus` leaves it paused).
        """
        raise NotImplementedError()

    def resume_vcpus(self, instance):
        """Resume what :meth:`pause_vcpus` paused. Idempotent."""
        raise NotImplementedError()

    def thaw_if_frozen(self, instance):
        """At service start: thaw/resume a guest a dead service left frozen.

        Returns a list of what was done. Default: nothing.
        """
        return []

    # -- the periodic reconciler -----------------------------------------

    @abc.abstractmethod
    def list_domains(self):
        """The guests of this service that the hypervisor runs or keeps.

        Only guests this service made (its naming rule and its instances
        directory), whatever the database says: the reconciler compares
        them with the instance rows.

        :returns: a list of ``{'uuid', 'name', 'power_state'}`` dicts.
        """
        raise NotImplementedError()

    @abc.abstractmethod
    def destroy_domain(self, instance_uuid):
        """Stop and remove a guest that has no live instance row, with its
        local disks and scratch files (volumes' data is never touched).
        Idempotent."""
        raise NotImplementedError()

    @abc.abstractmethod
    def power_off_domain(self, instance_uuid):
        """Stop a guest that has no live instance row; keep its domain and
        disks for an operator to look at. Idempotent."""
        raise NotImplementedError()

    @abc.abstractmethod
    def thaw_stale_freeze(self, instance, agent_timeout=5):
        """Thaw a guest that no freeze in progress here accounts for.

        The caller makes sure no freeze or vCPU pause of this guest is
        running in this service. Thaws when the guest agent says
        ``guest-fsfreeze-status`` is frozen, or a watchdog marker says a
        freeze or pause of ours was never ended (a guest its user paused
        stays paused). Agent calls wait at most ``agent_timeout`` seconds.

        :returns: a list of what was done (empty: nothing to do).
        """
        raise NotImplementedError()

    def has_snapshot_leftovers(self, instance):
        """True when a snapshot that ended left the guest or the host for
        ``repair_after_crash`` (it could not restore a managed-saved or
        paused guest, e.g. libvirtd restarted under it). Cheap: the
        reconciler asks every pass. Default: never."""
        return False

    def repair_after_crash(self, instance):
        """Undo what an interrupted snapshot may have left on the host.

        Called at service start for instances found in an image_* task
        state: resume a guest left paused or managed-saved by this driver,
        abort stale block jobs, remove scratch files. Default: nothing.
        """

    def capabilities(self):
        """Return a dict of optional features, e.g. ``{'live_snapshot': True}``."""
        return {}

    def get_available_resource(self):
        """What this host offers (Nova's get_available_resource, totals
        only: usage is counted by the scheduler's claims).

        :returns: ``{'vcpus', 'memory_mb', 'local_gb',
            'hypervisor_hostname'}``; ``local_gb`` is the size of the
            filesystem of ``instances_path``. Default: this machine's CPUs
            and RAM.
        """
        return {'vcpus': os.cpu_count() or 0,
                'memory_mb': host_memory_mb(),
                'local_gb': disk_total_gb(self.conf.instances_path),
                'hypervisor_hostname': socket.gethostname()}
