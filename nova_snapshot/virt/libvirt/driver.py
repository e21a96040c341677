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

Volumes (Cinder on Ceph RBD) are network disks QEMU opens itself
(:mod:`volume`); a root volume (``boot_index`` 0) replaces the local disk.
The driver never writes or deletes a volume's data: destroy only undefines.
Freezes and short vCPU pauses go through :mod:`quiesce`, which guards each
with a watchdog process.

Snapshots are delegated to :mod:`nova_snapshot.virt.libvirt.snapshot`.
"""

import glob
import os
import platform
import shutil
import time
import uuid as uuidlib
from xml.etree import ElementTree

import libvirt
from oslo_log import log as logging

from nova_snapshot.compute import power_state
from nova_snapshot import exception
from nova_snapshot import fault_injection
from nova_snapshot.virt import driver
from nova_snapshot.virt import image_inspection
from nova_snapshot.virt.libvirt import config as vconfig
from nova_snapshot.virt.libvirt import host as vhost
from nova_snapshot.virt.libvirt import qemu_img
from nova_snapshot.virt.libvirt import quiesce as vquiesce
from nova_snapshot.virt.libvirt import snapshot_marker
from nova_snapshot.virt.libvirt import volume as vvolume

LOG = logging.getLogger(__name__)

DEFAULT_CMDLINE = 'console=ttyS0'
# Nova's cap on what get_console_output returns.
MAX_CONSOLE_BYTES = 100 * 1024
GiB = 1024 ** 3
TRUE_STRINGS = ('1', 'true', 'yes', 'on', 'y', 't')
# A live detach needs the guest to let go of the device; libvirt waits a
# few seconds per request, the driver asks again until this many seconds.
DETACH_TIMEOUT = 60.0
# How often a soft reboot looks whether the guest went down.
SOFT_REBOOT_POLL_SECONDS = 0.5


def _truthy(value):
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in TRUE_STRINGS


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

    def get_available_resource(self):
        """vCPUs and RAM from libvirt's node info (virNodeGetInfo), disk
        from the filesystem of instances_path."""
        try:
            conn = self._host.get_connection()
            info = conn.getInfo()
            hostname = conn.getHostname()
        except libvirt.libvirtError as exc:
            raise exception.HypervisorError(reason=str(exc))
        # [model, memory MiB, active CPUs, MHz, NUMA nodes, sockets,
        #  cores, threads]
        return {'vcpus': int(info[2]), 'memory_mb': int(info[1]),
                'local_gb': driver.disk_total_gb(self.conf.instances_path),
                'hypervisor_hostname': hostname}

    def list_instance_uuids(self):
        try:
            return self._host.list_instance_uuids()
        except libvirt.libvirtError as exc:
            raise exception.HypervisorError(reason=str(exc))

    # -- spawn ------------------------------------------------------------

    def _prepare_root_disk(self, context, instance, image_meta, inst_dir):
        image_id = image_meta['id']
        disk_format = image_meta.get('disk_format') or 'raw'
        image_inspection.check_disk_format(image_id, disk_format)
        download = os.path.join(inst_dir, 'disk.download')
        disk = os.path.join(inst_dir, 'disk')
        self.image_api.download(context, image_id, download)
        # The user's file is inspected before any qemu-img call opens it;
        # the format is the one Glance recorded (checked against the data),
        # never probed by QEMU.
        image = image_inspection.inspect(
            download, disk_format, image_id,
            max_virtual_size=self.conf.libvirt.max_image_virtual_size_gb * GiB)
        root_size = _flavor_root_bytes(instance)
        _check_flavor_disk(root_size, image)
        if disk_format == 'qcow2':
            os.replace(download, disk)
        else:
            qemu_img.convert(download, 'raw', disk, 'qcow2')
            os.unlink(download)
        if root_size and image.virtual_size < root_size:
            qemu_img.resize(disk, 'qcow2', root_size)
        return disk

    def _download_boot_file(self, context, image_id, dest):
        self.image_api.download(context, image_id, dest)
        return dest

    def _guest_config(self, context, instance, image_meta, inst_dir, disk,
                      volumes=()):
        flavor = instance.get('flavor') or {}
        prop = _image_property_getter(instance, image_meta)
        guest = vconfig.GuestConfig(
            name=vhost.domain_name(instance['uuid']),
            uuid=str(uuidlib.UUID(instance['uuid'])),
            memory_mb=int(flavor.get('memory_mb') or 64),
            vcpus=int(flavor.get('vcpus') or 1),
            disk_path=disk,
            console_log=self._console_log(instance),
            virt_type=self.conf.libvirt.virt_type,
            guest_agent=_truthy(prop('hw_qemu_guest_agent') or False),
            volumes=list(volumes),
        )
        kernel_id = prop('kernel_id')
        if kernel_id:
            guest.kernel = self._download_boot_file(
                context, kernel_id, os.path.join(inst_dir, 'kernel'))
            ramdisk_id = prop('ramdisk_id')
            if ramdisk_id:
                guest.initrd = self._download_boot_file(
                    context, ramdisk_id, os.path.join(inst_dir, 'ramdisk'))
            guest.cmdline = prop('os_command_line') or DEFAULT_CMDLINE
        return guest

    def _volume_disks(self, block_device_info):
        """The network disks of ``block_device_info``, root first.

        Returns ``(root_disk_or_None, [NetworkDisk...])``. Cephx secrets
        are checked (or defined) here, before the domain is.
        """
        mappings = list((block_device_info or {}).get(
            'block_device_mapping') or [])
        disks = []
        root = None
        seen = set()
        for bdm in mappings:
            connection_info = bdm.get('connection_info')
            if not connection_info:
                raise exception.InvalidConnectionInfo(
                    reason='volume %s has no connection_info' %
                    bdm.get('volume_id'))
            is_root = _is_root(bdm)
            mount = bdm.get('mount_device') or (
                vconfig.ROOT_DEVICE if is_root else None)
            disk = vvolume.network_disk(
                connection_info, mount, disk_bus=bdm.get('disk_bus'),
                serial=bdm.get('volume_id'))
            if disk.target_dev in seen:
                raise exception.InvalidConnectionInfo(
                    reason='two volumes on %s' % disk.target_dev)
            seen.add(disk.target_dev)
            vvolume.ensure_secret(self._host.get_connection(), disk,
                                  connection_info)
            if is_root:
                if root is not None:
                    raise exception.InvalidConnectionInfo(
                        reason='more than one volume with boot_index 0')
                root = disk
            else:
                disks.append(disk)
        disks.sort(key=lambda d: (len(d.target_dev), d.target_dev))
        if root is None and vconfig.ROOT_DEVICE in seen:
            raise exception.InvalidConnectionInfo(
                reason='%s is the local root disk' % vconfig.ROOT_DEVICE)
        if root is not None:
            disks.insert(0, root)
        return root, disks

    def spawn(self, context, instance, image_meta, block_device_info=None):
        """Boot from the image, or from the root volume when there is one.

        With a root volume (``boot_index`` 0) nothing is downloaded but
        the kernel/ramdisk of direct kernel boot, named by the image or
        by the instance's ``image_*`` system metadata.
        """
        image_meta = image_meta or {}
        inst_dir = self._instance_dir(instance)
        os.makedirs(inst_dir, exist_ok=True)
        try:
            root_volume, volumes = self._volume_disks(block_device_info)
            if root_volume is None:
                disk = self._prepare_root_disk(context, instance, image_meta,
                                               inst_dir)
            else:
                disk = None
            guest = self._guest_config(context, instance, image_meta,
                                       inst_dir, disk, volumes)
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
            raise vhost.hypervisor_error(exc)

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

    def reboot(self, instance, reboot_type):
        """Soft: ACPI shutdown, wait up to ``[libvirt]
        wait_soft_reboot_seconds`` for the guest to go down, start the
        same domain again; hard when that does not happen (Nova's order).
        Hard: destroy (dropping a suspended guest's saved memory) and
        start the same definition: disks and volumes stay."""
        domain = self._domain(instance)
        if reboot_type == 'SOFT':
            if self._soft_reboot(instance, domain):
                LOG.info('Soft rebooted instance %s', instance['uuid'])
                return self._host.power_state(domain)
            LOG.warning('Instance %s did not shut down for a soft reboot '
                        'within %d s; rebooting it hard', instance['uuid'],
                        self.conf.libvirt.wait_soft_reboot_seconds)
        self._hard_reboot(instance, domain)
        LOG.info('Hard rebooted instance %s', instance['uuid'])
        return self._host.power_state(domain)

    def _soft_reboot(self, instance, domain):
        """True once the guest shut down and was started again; False
        when the caller must reboot it hard."""
        if self._host.power_state(domain) != power_state.RUNNING:
            return False
        try:
            domain.shutdown()
        except libvirt.libvirtError as exc:
            LOG.info('Soft reboot of %s refused (%s)', instance['uuid'], exc)
            return False
        deadline = time.monotonic() + \
            self.conf.libvirt.wait_soft_reboot_seconds
        while True:
            if not self._call(instance, domain.isActive):
                self._call(instance, domain.create)
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(SOFT_REBOOT_POLL_SECONDS)

    def _hard_reboot(self, instance, domain):
        if self._call(instance, domain.isActive):
            try:
                domain.destroy()
            except libvirt.libvirtError as exc:
                # The guest went down by itself meanwhile: fine.
                if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:
                    raise exception.HypervisorError(reason=str(exc))
        # A hard reboot boots afresh: a suspended guest's saved memory
        # would otherwise be restored by create().
        if self._call(instance, domain.hasManagedSaveImage, 0):
            self._call(instance, domain.managedSaveRemove, 0)
        # The guest is down, its definition and disks kept.
        fault_injection.point('reboot.destroyed')
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
                    raise vhost.hypervisor_error(exc)
            try:
                domain.undefineFlags(
                    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
                    libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
                    libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA)
            except libvirt.libvirtError as exc:
                if not vhost.is_not_found(exc):
                    raise vhost.hypervisor_error(exc)
        shutil.rmtree(self._instance_dir(instance), ignore_errors=True)
        for path in self._scratch_paths(instance):
            _remove_path(path)
        LOG.info('Destroyed instance %s', instance['uuid'])

    # -- volumes ----------------------------------------------------------

    def get_volume_connector(self, instance):
        # QEMU opens RBD images itself, so Cinder's RBD driver ignores the
        # connector; it still wants one, shaped as os-brick makes it.
        return {
            'host': self.conf.host,
            'ip': '127.0.0.1',
            'platform': platform.machine(),
            'os_type': 'linux',
            'multipath': False,
            'do_local_attach': False,
            'initiator': 'iqn.2004-10.org.nova-snapshot:%s' % self.conf.host,
        }

    def attach_volume(self, context, connection_info, instance, mountpoint,
                      disk_bus=None):
        """Hot-plug the volume (if running) and keep it in the config."""
        disk = vvolume.network_disk(connection_info, mountpoint,
                                    disk_bus=disk_bus)
        domain = self._domain(instance)
        if self._find_disk(instance, domain, disk.target_dev) is not None:
            raise exception.InvalidDevicePath(
                path='%s (already in use)' % mountpoint)
        vvolume.ensure_secret(self._host.get_connection(), disk,
                              connection_info)
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if self._call(instance, domain.isActive):
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        self._call(instance, domain.attachDeviceFlags,
                   vconfig.network_disk_xml(disk), flags)
        LOG.info('Attached %s to instance %s as %s', disk.name,
                 instance['uuid'], disk.target_dev)

    def _find_disk(self, instance, domain, dev, inactive=False):
        """The ``<disk>`` element on target ``dev`` (live or config)."""
        flags = libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0
        root = ElementTree.fromstring(
            self._call(instance, domain.XMLDesc, flags))
        for disk in root.findall('./devices/disk'):
            target = disk.find('target')
            if target is not None and target.get('dev') == dev:
                return disk
        return None

    def detach_volume(self, context, connection_info, instance, mountpoint):
        """Unplug the volume and drop it from the config. Idempotent.

        A live detach needs the guest's cooperation (PCI hot-unplug): the
        request is repeated until the device is gone or DETACH_TIMEOUT,
        then DeviceDetachFailed.
        """
        dev = vvolume.target_dev(mountpoint)
        _type, data = vvolume.split_connection_info(connection_info)
        domain = self._domain(instance)

        def matching(inactive):
            elem = self._find_disk(instance, domain, dev, inactive=inactive)
            if elem is None:
                return None
            source = elem.find('source')
            if source is None or source.get('name') != data.get('name'):
                # Another volume sits on that device now: not ours to touch.
                LOG.warning('%s of instance %s is not %s; not detaching',
                            dev, instance['uuid'], data.get('name'))
                return None
            return ElementTree.tostring(elem, encoding='unicode')

        config_xml = matching(inactive=True)
        if config_xml is not None:
            self._call(instance, domain.detachDeviceFlags, config_xml,
                       libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        if not self._call(instance, domain.isActive):
            return
        deadline = time.monotonic() + DETACH_TIMEOUT
        while True:
            live_xml = matching(inactive=False)
            if live_xml is None:
                break
            if time.monotonic() > deadline:
                raise exception.DeviceDetachFailed(
                    device=dev, reason='the guest did not release it in '
                                       '%d s' % DETACH_TIMEOUT)
            try:
                domain.detachDeviceFlags(live_xml,
                                         libvirt.VIR_DOMAIN_AFFECT_LIVE)
            except libvirt.libvirtError as exc:
                # "already in the process of unplug": wait for it.
                if vhost.is_not_found(exc):
                    raise exception.InstanceNotFound(
                        instance_id=instance['uuid'])
                LOG.debug('detach of %s: %s', dev, exc)
            time.sleep(0.5)
        LOG.info('Detached %s from instance %s', dev, instance['uuid'])

    # -- quiesce -----------------------------------------------------------

    def quiesce(self, context, instance, deadline):
        """Freeze the guest's filesystems; a watchdog thaws at ``deadline``.

        :returns: facts (``frozen_filesystems``, ``freeze_seconds``...).
        """
        domain = self._domain(instance)
        return vquiesce.quiesce(self._host.uri, domain, instance['uuid'],
                                self._instance_dir(instance), deadline)

    def unquiesce(self, context, instance):
        domain = self._domain(instance)
        vquiesce.unquiesce(domain, instance['uuid'],
                           self._instance_dir(instance))

    def pause_vcpus(self, instance, deadline=vquiesce.DEFAULT_DEADLINE):
        """Suspend the vCPUs (guarded); False when the guest was paused."""
        domain = self._domain(instance)
        return vquiesce.pause_vcpus(self._host.uri, domain, instance['uuid'],
                                    self._instance_dir(instance), deadline)

    def resume_vcpus(self, instance):
        domain = self._domain(instance)
        return vquiesce.resume_vcpus(domain, instance['uuid'],
                                     self._instance_dir(instance))

    def thaw_if_frozen(self, instance):
        try:
            domain = self._domain(instance)
        except exception.InstanceNotFound:
            domain = None
        try:
            return vquiesce.thaw_if_frozen(domain, instance['uuid'],
                                           self._instance_dir(instance))
        except libvirt.libvirtError as exc:
            raise exception.HypervisorError(reason=str(exc))

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

    def has_snapshot_leftovers(self, instance):
        """A snapshot's marker outlives its snapshot only when the guest
        could not be put back (see snapshot._Snapshot.cleanup)."""
        return os.path.exists(snapshot_marker.marker_path(self.conf,
                                                          instance))

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
        try:
            done.extend(self.thaw_if_frozen(instance))
        except exception.NovaSnapshotException:
            LOG.exception('Thawing instance %s failed', instance['uuid'])
        return done

    # -- the periodic reconciler (nova_snapshot.compute.reconciler) ---------

    def _owned(self, domain):
        """True when the domain keeps its files in this service's
        instances directory: two services on one libvirtd (a test cloud)
        both name domains ``instance-<uuid>``."""
        prefix = os.path.join(os.path.realpath(self.conf.instances_path), '')
        try:
            root = ElementTree.fromstring(domain.XMLDesc(0))
        except (libvirt.libvirtError, ElementTree.ParseError):
            return False
        for source in root.iter('source'):
            path = source.get('file') or source.get('path')
            if path and os.path.realpath(path).startswith(prefix):
                return True
        return False

    def list_domains(self):
        try:
            domains = self._host.get_connection().listAllDomains(0)
        except libvirt.libvirtError as exc:
            raise exception.HypervisorError(reason=str(exc))
        found = []
        for domain in domains:
            try:
                uuid_ = domain.UUIDString()
                if domain.name() != vhost.domain_name(uuid_) or \
                        not self._owned(domain):
                    continue
                state = self._host.power_state(domain)
            except (libvirt.libvirtError, exception.InstanceNotFound):
                # Undefined while we looked: not ours to worry about.
                continue
            found.append({'uuid': uuid_, 'name': domain.name(),
                          'power_state': state})
        return found

    def destroy_domain(self, instance_uuid):
        # destroy() needs nothing of the instance but its UUID.
        self.destroy(None, {'uuid': instance_uuid})

    def power_off_domain(self, instance_uuid):
        self.power_off({'uuid': instance_uuid})

    def thaw_stale_freeze(self, instance, agent_timeout=5):
        try:
            domain = self._domain(instance)
        except exception.InstanceNotFound:
            domain = None
        try:
            return vquiesce.release_stale_freeze(
                domain, instance['uuid'], self._instance_dir(instance),
                agent_timeout)
        except libvirt.libvirtError as exc:
            raise exception.HypervisorError(reason=str(exc))


def _flavor_root_bytes(instance):
    return int((instance.get('flavor') or {}).get('root_gb') or 0) * GiB


def _check_flavor_disk(root_size, image):
    """The image must fit the flavor's root disk, as Nova checks at spawn.

    A root_gb of 0 means the disk is the image's size (Nova's legacy rule),
    so there is nothing to compare. The API checks the same when Glance
    reports the sizes; this catches images whose sizes it did not know.
    """
    if not root_size:
        return
    too_big = max(image.virtual_size, image.file_size)
    if too_big > root_size:
        raise exception.FlavorDiskSmallerThanImage(flavor_size=root_size,
                                                   image_size=too_big)


def _is_root(bdm):
    try:
        return int(bdm.get('boot_index')) == 0
    except (TypeError, ValueError):
        return False


def _image_property_getter(instance, image_meta):
    """Look a property up in the image, then in ``image_*`` system metadata.

    A volume-backed instance may be spawned with an empty image_meta; what
    its base image said (kernel_id, hw_qemu_guest_agent...) was captured
    in the instance's system metadata at create time.
    """
    sysmeta = instance.get('system_metadata') or {}

    def get(key):
        value = image_meta.get(key)
        if value in (None, ''):
            value = sysmeta.get('image_' + key)
        return value if value not in (None, '') else None
    return get


def _remove_path(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
