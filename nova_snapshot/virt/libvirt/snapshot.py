"""Capture the root disk of a libvirt guest and stream it into Glance.

Entry points: :func:`take_snapshot` (what ``LibvirtDriver.snapshot`` calls)
and :func:`repair` (what ``LibvirtDriver.repair_after_crash`` calls).

Paths:

* **live** (``[libvirt] live_snapshot``, guest running or paused): a libvirt
  push-mode backup job copies the disk while the vCPUs keep running; with
  ``live_snapshot_method = stream`` a pull-mode backup is read over NBD and
  uploaded as it is read (:mod:`snapshot_stream`).
* **suspend** (live disabled or not supported, guest running or paused):
  managed save (Nova's suspend), ``qemu-img convert``, restore the guest to
  the state it had, all before the upload starts.
* **cold** (guest stopped or already suspended): ``qemu-img convert``; the
  domain is left alone.

The guest always ends in the state it started in; the scratch copy lives
under ``[libvirt] snapshots_directory`` and is removed on success and on
failure. A marker file next to the disk records what was done, so
:func:`repair` can finish the job after a crash.
"""

import collections
import contextlib
import glob
import os
import shutil
import tempfile
import time
import uuid as uuidlib
from xml.etree import ElementTree

import libvirt
from oslo_log import log as logging

from nova_snapshot.compute import power_state
from nova_snapshot.compute import task_states
from nova_snapshot import exception
from nova_snapshot import fault_injection
from nova_snapshot.virt import image_inspection
from nova_snapshot.virt.libvirt import qemu_img
from nova_snapshot.virt.libvirt import snapshot_backup
from nova_snapshot.virt.libvirt import snapshot_marker
from nova_snapshot.virt.libvirt import snapshot_stream

LOG = logging.getLogger(__name__)

METHOD_LIVE = 'live'
METHOD_SUSPEND = 'suspend'
METHOD_COLD = 'cold'

# What the guest was doing when the snapshot began (stored in the marker).
RUNNING = 'running'
PAUSED = 'paused'
SHUTDOWN = 'shutdown'
SUSPENDED = 'suspended'   # managed-saved

POWER_STATES = {RUNNING: power_state.RUNNING, PAUSED: power_state.PAUSED,
                SHUTDOWN: power_state.SHUTDOWN,
                SUSPENDED: power_state.SUSPENDED}

# Glance reads the upload in chunks of its own; 1 MiB keeps memory flat and
# progress fine-grained.
CHUNK_SIZE = 1024 * 1024

RootDisk = collections.namedtuple('RootDisk', 'target path format')


def find_root_disk(domain):
    """Return the first disk device of the domain (Nova's root-disk rule)."""
    tree = ElementTree.fromstring(domain.XMLDesc(0))
    for disk in tree.findall('./devices/disk'):
        if disk.get('device', 'disk') != 'disk':
            continue
        target = disk.find('target')
        source = disk.find('source')
        driver = disk.find('driver')
        path = None
        if source is not None:
            path = source.get('file') or source.get('dev')
        return RootDisk(target=target.get('dev') if target is not None
                        else None,
                        path=path,
                        format=(driver.get('type') if driver is not None
                                else None) or 'raw')
    raise exception.SnapshotCaptureFailed(
        instance_uuid=domain.name(), reason='the domain has no disk')


def guest_state(domain):
    """Classify the domain as RUNNING, PAUSED, SHUTDOWN or SUSPENDED."""
    state = domain.state()[0]
    if state == libvirt.VIR_DOMAIN_PAUSED:
        return PAUSED
    if domain.isActive():
        return RUNNING
    if domain.hasManagedSaveImage(0):
        return SUSPENDED
    return SHUTDOWN


def restore_guest(domain, original):
    """Bring a guest that was RUNNING/PAUSED back to that state.

    Idempotent: returns True when it had to do something.
    """
    if original not in (RUNNING, PAUSED):
        return False
    if domain.isActive():
        if original == RUNNING and \
                domain.state()[0] == libvirt.VIR_DOMAIN_PAUSED:
            domain.resume()
            return True
        return False
    # Starting a domain with a managed-save image restores that image.
    domain.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED
                           if original == PAUSED else 0)
    return True


def snapshot_metadata(instance, image_format):
    """Image values the driver sets at upload time (Nova's libvirt set)."""
    sysmeta = instance.get('system_metadata') or {}
    values = {
        'disk_format': image_format,
        'container_format': 'bare',
        'image_location': 'snapshot',
        'image_state': 'available',
        'owner_id': instance['project_id'],
    }
    for key in ('kernel_id', 'ramdisk_id'):
        value = sysmeta.get('image_' + key)
        # Nova's glance layer drops the placeholder "none" values too.
        if value and value != 'none':
            values[key] = value
    os_type = instance.get('os_type') or sysmeta.get('image_os_type')
    if os_type:
        values['os_type'] = os_type
    return values


class _Progress(object):
    """Forward percentages to the caller, once per change, never failing."""

    def __init__(self, report):
        self._report = report
        self._last = None

    def __call__(self, percent):
        percent = max(0, min(100, int(percent)))
        if percent == self._last or self._report is None:
            return
        self._last = percent
        try:
            self._report(percent)
        except Exception:
            # Progress is cosmetic; a failing reporter must not fail the
            # snapshot.
            LOG.warning('Snapshot progress report failed', exc_info=True)

    def fraction(self, low, high, done, total):
        if total:
            self(low + (high - low) * min(done, total) / total)


@contextlib.contextmanager
def _libvirt_errors(instance):
    try:
        yield
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            raise exception.InstanceNotFound(
                instance_id=instance['uuid']) from exc
        raise exception.HypervisorError(reason=str(exc)) from exc


def _scratch_prefix(instance):
    return '%s-' % uuidlib.UUID(instance['uuid'])


def _scratch_dirs(conf, instance):
    return glob.glob(os.path.join(conf.libvirt.snapshots_directory,
                                  _scratch_prefix(instance) + '*'))


class _Snapshot(object):
    """One run of take_snapshot; holds what the cleanup has to know."""

    def __init__(self, domain, instance, image_id, conf, progress):
        self.domain = domain
        self.instance = instance
        self.image_id = image_id
        self.conf = conf
        self.progress = progress
        self.image_format = conf.libvirt.snapshot_image_format
        self.root = find_root_disk(domain)
        self.original = guest_state(domain)
        self.scratch = None
        self.stream = None      # a snapshot_stream.LiveStream when streaming
        self.facts = {'method': None, 'guest_paused_seconds': 0.0,
                      'capture_seconds': 0.0, 'upload_seconds': 0.0,
                      'bytes_uploaded': 0, 'disk_allocated_bytes': 0,
                      'original_state': self.original}

    # -- marker -------------------------------------------------------------

    def mark(self, method, phase):
        snapshot_marker.write(self.conf, self.instance, {
            'image_id': self.image_id,
            'method': method,
            'phase': phase,
            'original_state': self.original,
            'original_power_state': POWER_STATES[self.original],
            'scratch_dir': self.scratch,
            'started_at': time.time(),
        })

    # -- capture ------------------------------------------------------------

    def make_scratch(self):
        top = self.conf.libvirt.snapshots_directory
        os.makedirs(top, exist_ok=True)
        self.scratch = tempfile.mkdtemp(
            prefix=_scratch_prefix(self.instance), dir=top)
        # QEMU may run as another user; it needs to traverse, not to list.
        os.chmod(self.scratch, 0o701)

    def check_root_header(self):
        """Refuse a root disk whose header names a data or backing file.

        The disk began as a user's image. Spawn inspects images before
        using them; a server created before that check (or a disk changed
        behind the service's back) is caught here, before a backup job or
        ``qemu-img convert`` copies the file the header names into the
        user's image. Only the header is read.
        """
        if not self.root.path or not os.path.isabs(self.root.path):
            return
        try:
            image_inspection.check_local_disk(
                self.root.path, self.root.format,
                image_id=self.instance.get('image_ref') or '-')
        except exception.ImageUnacceptable as exc:
            raise exception.SnapshotCaptureFailed(
                instance_uuid=self.instance['uuid'],
                reason=exc.format_message())

    def capture(self):
        """Return the path of a standalone copy of the root disk."""
        self.check_root_header()
        live_ok = self.conf.libvirt.live_snapshot and \
            self.original in (RUNNING, PAUSED)
        if live_ok:
            try:
                if self.conf.libvirt.live_snapshot_method == 'stream' and \
                        self.image_format == 'qcow2':
                    return self.capture_stream()
                return self.capture_live()
            except snapshot_backup.BackupNotSupported as exc:
                LOG.warning('Push-mode backup is not available (%s); '
                            'suspending instance %s for its snapshot',
                            exc, self.instance['uuid'])
                self.facts['live_fallback_reason'] = str(exc)
        if self.original in (RUNNING, PAUSED):
            return self.capture_suspended()
        return self.capture_cold()

    def capture_live(self):
        self.facts['method'] = METHOD_LIVE
        self.mark(METHOD_LIVE, 'capture')
        backup_path = os.path.join(self.scratch, 'backup.qcow2')
        snapshot_backup.begin(self.domain, self.root.target, backup_path)
        fault_injection.point('live_push.backup_begun')
        try:
            snapshot_backup.wait(
                self.domain, lambda done, total: self.progress.fraction(
                    0, 45 if self.image_format == 'raw' else 50,
                    done, total))
        except snapshot_backup.BackupFailed as exc:
            raise exception.SnapshotCaptureFailed(
                instance_uuid=self.instance['uuid'], reason=str(exc))
        except BaseException:
            # Leave no job writing into a file we are about to delete.
            with contextlib.suppress(Exception):
                snapshot_backup.abort(self.domain)
            raise
        fault_injection.point('live_push.backup_done')
        if self.image_format == 'qcow2':
            return backup_path
        out = os.path.join(self.scratch, 'disk.' + self.image_format)
        self._qemu_img_convert(backup_path, 'qcow2', out)
        os.unlink(backup_path)
        return out

    def _qemu_img_convert(self, src, src_format, out):
        try:
            qemu_img.convert(src, src_format, out, self.image_format)
        except exception.QemuImgFailed as exc:
            raise exception.SnapshotCaptureFailed(
                instance_uuid=self.instance['uuid'],
                reason=exc.format_message())

    def capture_stream(self):
        """Start a pull backup; the data is read during the upload."""
        self.facts['method'] = METHOD_LIVE
        self.facts['live_method'] = 'stream'
        self.mark(METHOD_LIVE, 'capture')
        try:
            self.stream = snapshot_stream.LiveStream(
                self.domain, self.root.target, self.scratch)
            fault_injection.point('live_stream.pull_begun')
        except snapshot_backup.BackupFailed as exc:
            raise exception.SnapshotCaptureFailed(
                instance_uuid=self.instance['uuid'], reason=str(exc))
        return None

    def _convert_disk(self):
        if not self.root.path or not os.path.isabs(self.root.path):
            raise exception.SnapshotCaptureFailed(
                instance_uuid=self.instance['uuid'],
                reason='root disk %s is not a local file' % self.root.target)
        out = os.path.join(self.scratch, 'disk.' + self.image_format)
        self._qemu_img_convert(self.root.path, self.root.format, out)
        fault_injection.point('suspend.converted')
        return out

    def capture_suspended(self):
        self.facts['method'] = METHOD_SUSPEND
        self.mark(METHOD_SUSPEND, 'capture')
        started = time.monotonic()
        try:
            self.domain.managedSave(0)
            fault_injection.point('suspend.saved')
            self.progress(10)
            return self._convert_disk()
        finally:
            # Before the upload: the guest is down only while the disk is
            # read. A failure to restore wins over the capture's outcome.
            restore_guest(self.domain, self.original)
            self.facts['guest_paused_seconds'] = time.monotonic() - started

    def capture_cold(self):
        self.facts['method'] = METHOD_COLD
        self.mark(METHOD_COLD, 'capture')
        return self._convert_disk()

    # -- upload -------------------------------------------------------------

    def chunks(self, f, size, low=50):
        """Count what goes out of ``f`` (a file or an iterable of bytes)."""
        sent = 0
        pieces = iter(lambda: f.read(CHUNK_SIZE), b'') \
            if hasattr(f, 'read') else f
        for data in pieces:
            sent += len(data)
            self.facts['bytes_uploaded'] = sent
            fault_injection.point('image.mid_upload')
            self.progress.fraction(low, 100, sent, size)
            yield data

    def upload(self, path, image_api, context):
        image_api.update(context, self.image_id,
                         snapshot_metadata(self.instance, self.image_format))
        if self.stream is not None:
            # Capture and upload are one pass: progress runs 0-100.
            size = self.stream.size
            image_api.upload(context, self.image_id,
                             self.chunks(self.stream.chunks(), size, 0),
                             size=size)
        else:
            size = os.path.getsize(path)
            with open(path, 'rb') as f:
                image_api.upload(context, self.image_id,
                                 self.chunks(f, size), size=size)
        if self.facts['bytes_uploaded'] != size:
            raise exception.ImageUploadFailed(
                image_id=self.image_id,
                reason='sent %d of %d bytes' % (self.facts['bytes_uploaded'],
                                                size))
        self.progress(100)

    # -- cleanup ------------------------------------------------------------

    def cleanup(self, failed):
        """Remove scratch files and the marker; on failure, restore the guest.

        The marker stays when the guest could not be restored, so that
        repair() can try again when the service restarts.
        """
        restored = True
        if self.stream is not None:
            try:
                self.stream.close()
            except Exception:
                # Keep the marker: repair() aborts the job on restart.
                restored = False
                LOG.exception('Could not end the pull backup of instance %s',
                              self.instance['uuid'])
        if failed:
            try:
                snapshot_backup.abort(self.domain)
                restore_guest(self.domain, self.original)
            except libvirt.libvirtError as exc:
                # A guest that is gone has nothing left to restore.
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    restored = False
                    LOG.exception('Could not restore instance %s to %s',
                                  self.instance['uuid'], self.original)
            except Exception:
                restored = False
                LOG.exception('Could not restore instance %s to %s after a '
                              'failed snapshot', self.instance['uuid'],
                              self.original)
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)
        if restored:
            snapshot_marker.remove(self.conf, self.instance)


def take_snapshot(host, domain, instance, image_id, image_api, conf, context,
                  update_task_state, report_progress):
    """Capture the root disk of ``domain`` and upload it to ``image_id``.

    Follows ``ComputeDriver.snapshot``: task state IMAGE_PENDING_UPLOAD
    before the capture, IMAGE_UPLOADING before the upload; progress 0-50
    for the capture and 50-100 for the upload (a streamed live capture is
    one pass: 0-100 by the bytes streamed, and IMAGE_PENDING_UPLOAD covers
    only starting the pull job). ``host`` is unused (the
    domain is all this needs) and kept for the driver's call signature.

    :returns: facts: method, guest_paused_seconds, capture_seconds,
        upload_seconds, bytes_uploaded, disk_allocated_bytes (and
        live_fallback_reason when the live path was not available;
        live_method 'stream' when the capture was streamed).
    :raises InstanceNotFound: the domain disappeared.
    """
    progress = _Progress(report_progress)
    with _libvirt_errors(instance):
        run = _Snapshot(domain, instance, image_id, conf, progress)
    update_task_state(task_state=task_states.IMAGE_PENDING_UPLOAD,
                      expected_state=task_states.IMAGE_SNAPSHOT)
    progress(0)
    failed = True
    try:
        run.make_scratch()
        fault_injection.point('image.scratch_made')
        started = time.monotonic()
        with _libvirt_errors(instance):
            path = run.capture()
        run.facts['capture_seconds'] = time.monotonic() - started
        if run.stream is not None:
            # The file does not exist yet; its layout is fixed already.
            run.facts['disk_allocated_bytes'] = run.stream.size
            run.facts['disk_size_bytes'] = run.stream.size
        else:
            run.facts['disk_allocated_bytes'] = qemu_img.allocated_bytes(path)
            run.facts['disk_size_bytes'] = os.path.getsize(path)
            run.progress(50)
        run.mark(run.facts['method'], 'upload')

        update_task_state(task_state=task_states.IMAGE_UPLOADING,
                          expected_state=task_states.IMAGE_PENDING_UPLOAD)
        started = time.monotonic()
        run.upload(path, image_api, context)
        fault_injection.point('image.uploaded')
        run.facts['upload_seconds'] = time.monotonic() - started
        failed = False
    finally:
        with _libvirt_errors(instance):
            run.cleanup(failed)
    LOG.info('Snapshot %s of instance %s: %s', image_id, instance['uuid'],
             run.facts)
    return run.facts


def repair(domain, instance, conf):
    """Undo what an interrupted snapshot left behind; return what was done.

    Reads the marker: aborts a backup job still running, brings a guest
    that was running or paused before the snapshot back to that state,
    removes the scratch files and the marker. ``domain`` may be None when
    the hypervisor no longer knows the guest. A no-op without a marker.
    """
    record = snapshot_marker.read(conf, instance)
    if record is None:
        return []
    done = []
    if domain is not None:
        try:
            if snapshot_backup.abort(domain):
                done.append('aborted backup job')
            # Only act on a state we recorded: a torn marker says nothing
            # about what the user wanted the guest to be.
            if restore_guest(domain, record.get('original_state')):
                done.append('restored guest to %s' %
                            record['original_state'])
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise
    for path in _scratch_dirs(conf, instance):
        shutil.rmtree(path, ignore_errors=True)
        done.append('removed %s' % path)
    snapshot_marker.remove(conf, instance)
    LOG.info('Repaired instance %s after an interrupted snapshot (%s): %s',
             instance['uuid'], record.get('image_id'), done)
    return done
