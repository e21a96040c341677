"""The libvirt/QEMU compute driver.

Disk layout (everything of one instance lives in one directory)::

    <instances_path>/<uuid>/disk          root disk, a standalone qcow2
    <instances_path>/<uuid>/kernel        direct kernel boot (kernel_id)
    <instances_path>/<uuid>/ramdisk       direct kernel boot (ramdisk_id)
    <instances_path>/<uuid>/console.log   serial console

The root disk is a full copy of the Glance image, not an overlay over a
shared base file: a snapshot then reads one file with no backing chain, and
deleting an instance never has to reason about who else uses a base.
The cost is one image-sized copy per spawn, small for the images this
service boots.

Snapshots are delegated to :mod:`nova_snapshot.virt.libvirt.snapshot`.
"""

import glob
import json
import os
import shutil
import subprocess
import uuid as uuidlib

import libvirt
from oslo_log import log as logging

from nova_snapshot import exception
from nova_snapshot.virt import driver
from nova_snapshot.virt.libvirt import config as vconfig
from nova_snapshot.virt.libvirt import host as vhost

LOG = logging.getLogger(__name__)

DEFAULT_CMDLINE = 'console=ttyS0'
# Nova's cap on what get_console_output returns.
MAX_CONSOLE_BYTES = 100 * 1024
GiB = 1024 ** 3
TRUE_STRINGS = ('1', 'true', 'yes', 'on', 'y', 't')


def _truthy(value):
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in TRUE_STRINGS


def _qemu_img(argv, instance_uuid):
    """Run qemu-img (argv list, never a shell); return stdout as text."""
    try:
        result = subprocess.run(['qemu-img'] + argv, capture_output=True,
                                check=False)
    except OSError as exc:
        raise exception.HypervisorError(reason='cannot run qemu-img: %s' % exc)
    if result.returncode != 0:
        raise exception.HypervisorError(
            reason='qemu-img %s for instance %s failed: %s' % (
                argv[0], instance_uuid,
                result.stderr.decode('utf-8', 'replace').strip()))
    return result.stdout.decode('utf-8', 'replace')


class LibvirtDriver(driver.ComputeDriver):

    def __init__(self, conf, image_api, volume_api=None):
        super().__init__(conf, image_api, volume_api=volume_api)
        self._host = vhost.Host(conf.libvirt.connection_uri)

    # -- paths ----------------------------------------------------------

    def _instance_dir(self, instance):
        # Only the UUID (validated) ever forms a path.
        return os.path.join(self.conf.instances_path,
                            str(uuidlib.UUID(instance['uuid'])))

    def _console_log(self, instance):
        return os.path.join(self._instance_dir(instance), 'console.log')

    def _scratch_paths(self, instance):
        prefix = '%s-' % uuidlib.UUID(instance['uuid'])
        return glob.glob(os.path.join(self.conf.libvirt.snapshots_directory,
                                      glob.escape(prefix) + '*'))

    # -- lifecycle of the service --------------------------------------

    def init_host(self, host):
        self._host.get_connection()
        os.makedirs(self.conf.instances_path, exist_ok=True)

    def capabilities(self):
        return {
            'live_snapshot': bool(self.conf.libvirt.live_snapshot) and
            hasattr(libvirt.virDomain, 'backupBegin'),
            'direct_kernel_boot': True,
            'guest_agent': True,
            'image_formats': ('qcow2', 'raw'),
        }

    def list_instance_uuids(self):
        try:
            return self._host.list_instance_uuids()
        except libvirt.libvirtError as exc:
            raise exception.HypervisorError(reason=str(exc))

    # -- spawn ------------------------------------------------------------

    def _prepare_root_disk(self, context, instance, image_meta, inst_dir):
        image_id = image_meta['id']
        disk_format = image_meta.get('disk_format') or 'raw'
        if disk_format not in ('qcow2', 'raw'):
            raise exception.ImageUnacceptable(
                image_id=image_id,
                reason='disk_format %s is not supported' % disk_format)
        download = os.path.join(inst_dir, 'disk.download')
        disk = os.path.join(inst_dir, 'disk')
        self.image_api.download(context, image_id, download)
        # The format is the one Glance recorded, never probed: probing a
        # user's file could make a raw image be read as qcow2.
        info = json.loads(_qemu_img(['info', '-f', disk_format,
                                     '--output=json', download],
                                    instance['uuid']))
        if info.get('backing-filename') or info.get('full-backing-filename'):
            # A backing file named by a user could point anywhere on the host.
            raise exception.ImageUnacceptable(
                image_id=image_id, reason='images with a backing file are '
                                          'not accepted')
        if disk_format == 'qcow2':
            os.replace(download, disk)
        else:
            _qemu_img(['convert', '-f', 'raw', '-O', 'qcow2', download, disk],
                      instance['uuid'])
            os.unlink(download)
        root_gb = int((instance.get('flavor') or {}).get('root_gb') or 0)
        if root_gb and info.get('virtual-size', 0) < root_gb * GiB:
            _qemu_img(['resize', '-f', 'qcow2', disk, str(root_gb * GiB)],
                      instance['uuid'])
        return disk

    def _download_boot_file(self, context, image_id, dest):
        self.image_api.download(context, image_id, dest)
        return dest

    def _guest_config(self, context, instance, image_meta, inst_dir, disk):
        flavor = instance.get('flavor') or {}
        guest = vconfig.GuestConfig(
            name=vhost.domain_name(instance['uuid']),
            uuid=str(uuidlib.UUID(instance['uuid'])),
            memory_mb=int(flavor.get('memory_mb') or 64),
            vcpus=int(flavor.get('vcpus') or 1),
            disk_path=disk,
            console_log=self._console_log(instance),
            virt_type=self.conf.libvirt.virt_type,
            guest_agent=_truthy(image_meta.get('hw_qemu_guest_agent', False)),
        )
        kernel_id = image_meta.get('kernel_id')
        if kernel_id:
            guest.kernel = self._download_boot_file(
                context, kernel_id, os.path.join(inst_dir, 'kernel'))
            ramdisk_id = image_meta.get('ramdisk_id')
            if ramdisk_id:
                guest.initrd = self._download_boot_file(
                    context, ramdisk_id, os.path.join(inst_dir, 'ramdisk'))
            guest.cmdline = image_meta.get('os_command_line') or \
                DEFAULT_CMDLINE
        return guest

    def spawn(self, context, instance, image_meta):
        inst_dir = self._instance_dir(instance)
        os.makedirs(inst_dir, exist_ok=True)
        try:
            disk = self._prepare_root_disk(context, instance, image_meta,
                                           inst_dir)
            guest = self._guest_config(context, instance, image_meta,
                                       inst_dir, disk)
            xml = vconfig.domain_xml(guest)
            try:
                domain = self._host.define(xml)
                domain.create()
            except libvirt.libvirtError as exc:
                raise exception.HypervisorError(reason=str(exc))
        except BaseException:
            # Leave nothing half-built behind; the manager sets the error.
            try:
                self.destroy(context, instance)
            except Exception:
                LOG.exception('Cleanup after failed spawn of %s failed',
                              instance['uuid'])
            raise
        LOG.info('Spawned instance %s', instance['uuid'])
        return self._host.power_state(domain)

    # -- power ------------------------------------------------------------

    def _domain(self, instance):
        return self._host.get_domain(instance['uuid'])

    def _call(self, instance, func, *args):
        """Run a libvirt call, translating its errors."""
        try:
            return func(*args)
        except libvirt.libvirtError as exc:
            if vhost.is_not_found(exc):
                raise exception.InstanceNotFound(instance_id=instance['uuid'])
            raise exception.HypervisorError(reason=str(exc))

    def get_power_state(self, instance):
        return self._host.power_state(self._domain(instance))

    def power_off(self, instance):
        domain = self._domain(instance)
        if self._call(instance, domain.isActive):
            self._call(instance, domain.destroy)

    def power_on(self, context, instance):
        domain = self._domain(instance)
        if not self._call(instance, domain.isActive):
            # With a managed-save image this restores it, as Nova does.
            self._call(instance, domain.create)

    def pause(self, instance):
        domain = self._domain(instance)
        self._call(instance, domain.suspend)

    def unpause(self, instance):
        domain = self._domain(instance)
        self._call(instance, domain.resume)

    def suspend(self, instance):
        domain = self._domain(instance)
        self._call(instance, domain.managedSave, 0)

    def resume(self, instance):
        domain = self._domain(instance)
        if not self._call(instance, domain.isActive):
            self._call(instance, domain.create)

    def get_console_output(self, instance):
        # The domain must exist: a console log of a deleted guest is gone.
        self._domain(instance)
        path = self._console_log(instance)
        try:
            with open(path, 'rb') as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - MAX_CONSOLE_BYTES))
                data = f.read()
        except FileNotFoundError:
            return ''
        return data.decode('utf-8', 'replace')

    # -- destroy ----------------------------------------------------------

    def destroy(self, context, instance):
        try:
            domain = self._domain(instance)
        except exception.InstanceNotFound:
            domain = None
        if domain is not None:
            try:
                if domain.isActive():
                    domain.destroy()
            except libvirt.libvirtError as exc:
                # Raced with the guest stopping on its own: fine.
                if exc.get_error_code() not in (
                        libvirt.VIR_ERR_NO_DOMAIN,
                        libvirt.VIR_ERR_OPERATION_INVALID):
                    raise exception.HypervisorError(reason=str(exc))
            try:
                domain.undefineFlags(
                    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
                    libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
                    libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA)
            except libvirt.libvirtError as exc:
                if not vhost.is_not_found(exc):
                    raise exception.HypervisorError(reason=str(exc))
        shutil.rmtree(self._instance_dir(instance), ignore_errors=True)
        for path in self._scratch_paths(instance):
            _remove_path(path)
        LOG.info('Destroyed instance %s', instance['uuid'])

    # -- snapshot ---------------------------------------------------------

    def snapshot(self, context, instance, image_id, update_task_state,
                 report_progress):
        # Imported here: the capture code is the heavier half of the driver
        # and only snapshots need it.
        from nova_snapshot.virt.libvirt import snapshot as vsnapshot
        domain = self._domain(instance)
        return vsnapshot.take_snapshot(
            self._host, domain, instance, image_id, self.image_api, self.conf,
            context, update_task_state, report_progress)

    def repair_after_crash(self, instance):
        """Put back what an interrupted snapshot did; see snapshot.repair.

        The marker written by the snapshot code says whether the guest was
        paused or managed-saved by it; without a marker the guest's state is
        the user's and is left alone. Scratch files are removed either way:
        this runs at service start, when no snapshot can be running.
        """
        from nova_snapshot.virt.libvirt import snapshot as vsnapshot
        try:
            domain = self._domain(instance)
        except exception.InstanceNotFound:
            domain = None
        try:
            done = vsnapshot.repair(domain, instance, self.conf)
        except libvirt.libvirtError as exc:
            raise exception.HypervisorError(reason=str(exc))
        for path in self._scratch_paths(instance):
            _remove_path(path)
            done.append('removed %s' % path)
        return done


def _remove_path(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
