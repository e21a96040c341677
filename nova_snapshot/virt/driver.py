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
    def spawn(self, context, instance, image_meta):
        """Create and start the guest of ``instance`` from a Glance image.

        :param image_meta: the Glance image (flattened dict: ``id``,
            ``disk_format``, ``container_format``, ``size``, ``min_disk``,
            ``min_ram`` and every property as a top-level key).
        Downloads the image (and its ``kernel_id``/``ramdisk_id`` images for
        direct kernel boot), defines and starts the domain.
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

    def repair_after_crash(self, instance):
        """Undo what an interrupted snapshot may have left on the host.

        Called at service start for instances found in an image_* task
        state: resume a guest left paused or managed-saved by this driver,
        abort stale block jobs, remove scratch files. Default: nothing.
        """

    def capabilities(self):
        """Return a dict of optional features, e.g. ``{'live_snapshot': True}``."""
        return {}
