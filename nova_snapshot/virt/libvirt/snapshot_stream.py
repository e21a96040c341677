"""Live capture streamed straight into the upload (libvirt pull backup).

The push path copies the disk into a local qcow2 file and uploads it after;
end to end that costs capture + upload. Here QEMU exports the point-in-time
view of the root disk over NBD instead (``<domainbackup mode='pull'>``;
copy-before-write keeps old data in a scratch file while the guest runs
on), and the qcow2 file Glance receives is built on the fly while it is
read from that export, so reading and uploading overlap and nothing the
size of the disk is written locally.

The allocation map is read first (``qemu-img map`` on the export), which
fixes the whole qcow2 layout and so the exact upload size up front.

A pull job never ends by itself: :meth:`LiveStream.close` ends it with
``abortJob`` and removes the scratch files, on success and on failure.
"""

import os
import queue
import threading
from xml.etree import ElementTree

import libvirt
from oslo_log import log as logging

from nova_snapshot import exception
from nova_snapshot.virt.libvirt import nbd_client
from nova_snapshot.virt.libvirt import qcow2_stream
from nova_snapshot.virt.libvirt import qemu_img
from nova_snapshot.virt.libvirt import snapshot_backup

LOG = logging.getLogger(__name__)

SOCKET_NAME = 'nbd.sock'
# Chunks read ahead of the upload: reading the export and sending to
# Glance run in parallel, with at most this many reads in memory.
PREFETCH_DEPTH = 4


def pull_backup_xml(target_dev, socket_path, scratch_path):
    """The <domainbackup mode='pull'> document exporting only ``target_dev``.

    libvirt leaves out the disks a <disks> element does not list.
    """
    root = ElementTree.Element('domainbackup', mode='pull')
    ElementTree.SubElement(root, 'server', transport='unix',
                           socket=socket_path)
    disks = ElementTree.SubElement(root, 'disks')
    disk = ElementTree.SubElement(disks, 'disk', name=target_dev,
                                  backup='yes', type='file')
    ElementTree.SubElement(disk, 'scratch', file=scratch_path)
    return ElementTree.tostring(root, encoding='unicode')


def export_name(backup_xml, target_dev):
    """The NBD export name libvirt gave ``target_dev`` (default: its name)."""
    tree = ElementTree.fromstring(backup_xml)
    for disk in tree.findall('./disks/disk'):
        if disk.get('name') == target_dev:
            return disk.get('exportname') or target_dev
    return target_dev


def data_extents(socket_path, export):
    """``(offset, length)`` of every extent of the export that holds data.

    Extents that read as zeros (holes and zero clusters) are left out:
    the image leaves them unallocated.
    """
    try:
        extents = qemu_img.map_nbd(socket_path, export)
    except exception.QemuImgFailed as exc:
        raise snapshot_backup.BackupFailed(
            'reading the allocation map of the backup export failed: %s'
            % exc.format_message())
    return [(e['start'], e['length']) for e in extents
            if e.get('data') and not e.get('zero')]


def begin(domain, target_dev, socket_path, scratch_path):
    """Start the pull job; BackupNotSupported when this libvirt cannot."""
    if not hasattr(domain, 'backupBegin'):
        raise snapshot_backup.BackupNotSupported(
            'libvirt-python has no backupBegin')
    try:
        domain.backupBegin(pull_backup_xml(target_dev, socket_path,
                                           scratch_path), None, 0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() in snapshot_backup.UNSUPPORTED_CODES:
            raise snapshot_backup.BackupNotSupported(str(exc))
        raise


def _prefetch(iterator, depth):
    """Yield from ``iterator``, which runs ahead in its own thread.

    Errors in the reader come out here; closing this generator stops the
    reader at its next chunk.
    """
    chunks = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item):
        while not stop.is_set():
            try:
                chunks.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def reader():
        try:
            for chunk in iterator:
                if not put(chunk):
                    return
            put(done)
        except BaseException as exc:
            put(exc)

    thread = threading.Thread(target=reader, name='snapshot-prefetch',
                              daemon=True)
    thread.start()
    try:
        while True:
            item = chunks.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


class LiveStream(object):
    """A started pull backup of one disk, ready to be read as qcow2.

    :param domain: the running (or paused) libvirt domain.
    :param target_dev: the disk to capture (e.g. ``vda``).
    :param scratch_dir: a private directory for the socket and the scratch
        file; QEMU must be able to create files in it.
    """

    def __init__(self, domain, target_dev, scratch_dir,
                 prefetch_depth=PREFETCH_DEPTH):
        self.domain = domain
        self.prefetch_depth = prefetch_depth
        self.socket_path = os.path.join(scratch_dir, SOCKET_NAME)
        self.scratch_path = os.path.join(scratch_dir,
                                         '%s.scratch' % target_dev)
        self._client = None
        self._chunks = None
        self._started = False
        try:
            begin(domain, target_dev, self.socket_path, self.scratch_path)
            self._started = True
            export = export_name(domain.backupGetXMLDesc(0), target_dev)
            self._client = nbd_client.NBDClient(self.socket_path, export)
            extents = data_extents(self.socket_path, export)
            self.layout = qcow2_stream.Layout(
                self._client.size,
                qcow2_stream.align_extents(extents, self._client.size))
        except nbd_client.NBDError as exc:
            self.close()
            raise snapshot_backup.BackupFailed('NBD: %s' % exc)
        except BaseException:
            self.close()
            raise

    @property
    def size(self):
        """Exact length of the qcow2 file :meth:`chunks` yields."""
        return self.layout.size

    @property
    def data_bytes(self):
        """Guest data the image holds (whole clusters)."""
        return self.layout.data_clusters * qcow2_stream.CLUSTER_SIZE

    def chunks(self):
        """The qcow2 file, in order, read from the export as it goes."""
        def read(offset, length):
            try:
                return self._client.read(offset, length)
            except nbd_client.NBDError as exc:
                raise snapshot_backup.BackupFailed('NBD: %s' % exc)
        self._chunks = _prefetch(qcow2_stream.stream(self.layout, read),
                                 self.prefetch_depth)
        return self._chunks

    def close(self):
        """End the job and remove its files; idempotent, never raises
        for a job that is already gone."""
        if self._chunks is not None:
            # Stops the read-ahead thread before its connection goes away.
            self._chunks.close()
            self._chunks = None
        if self._client is not None:
            self._client.close()
            self._client = None
        try:
            if self._started:
                # abortJob is how a pull job ends, finished or not.
                snapshot_backup.abort(self.domain)
                self._started = False
        finally:
            for path in (self.scratch_path, self.socket_path):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
                except OSError:
                    LOG.warning('Could not remove %s', path, exc_info=True)
