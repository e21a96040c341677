"""Point-in-time copy of one disk of a running domain (libvirt push backup).

QEMU copies the disk to a new qcow2 file while the guest keeps running; a
write that lands on a not-yet-copied cluster first pushes the old content to
the target (copy-before-write), so the file holds the disk as it was when
the job began.
"""

import time
from xml.etree import ElementTree

import libvirt
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

# How long abort() waits for libvirt to report the job gone.
ABORT_TIMEOUT = 10.0

# Error codes meaning "this libvirt/QEMU cannot do push backups".
UNSUPPORTED_CODES = (libvirt.VIR_ERR_NO_SUPPORT,
                     libvirt.VIR_ERR_OPERATION_UNSUPPORTED)


class BackupNotSupported(Exception):
    """The hypervisor has no push-mode backup; take another path."""


class BackupFailed(Exception):
    """The job ended, but not with success."""


def backup_xml(target_dev, dest_path):
    """The <domainbackup> document: push ``target_dev`` into ``dest_path``.

    Only the listed disk takes part (libvirt skips disks a <disks> element
    leaves out). The qcow2 target is created by libvirt without a backing
    file, so the copy stands alone.
    """
    root = ElementTree.Element('domainbackup', mode='push')
    disks = ElementTree.SubElement(root, 'disks')
    disk = ElementTree.SubElement(disks, 'disk', name=target_dev,
                                  backup='yes', type='file')
    ElementTree.SubElement(disk, 'driver', type='qcow2')
    ElementTree.SubElement(disk, 'target', file=dest_path)
    return ElementTree.tostring(root, encoding='unicode')


def begin(domain, target_dev, dest_path):
    """Start the job; raise BackupNotSupported when the API is missing."""
    if not hasattr(domain, 'backupBegin'):
        raise BackupNotSupported('libvirt-python has no backupBegin')
    try:
        domain.backupBegin(backup_xml(target_dev, dest_path), None, 0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() in UNSUPPORTED_CODES:
            raise BackupNotSupported(str(exc))
        raise


def _progress(stats):
    # Backup jobs report disk_*; other job kinds (and older libvirt) data_*.
    for total_key, done_key in (('disk_total', 'disk_processed'),
                                ('data_total', 'data_processed')):
        total = stats.get(total_key)
        if total:
            return stats.get(done_key, 0), total
    return None


def wait(domain, on_progress=None, interval=0.01, max_interval=0.5,
         sleep=time.sleep):
    """Poll until the backup job ends; return its completed statistics.

    ``on_progress(processed, total)`` is called whenever the job reports
    numbers. Raises BackupFailed when the job failed or was cancelled.
    """
    while True:
        stats = domain.jobStats(0)
        if stats.get('type', libvirt.VIR_DOMAIN_JOB_NONE) == \
                libvirt.VIR_DOMAIN_JOB_NONE:
            break
        progress = _progress(stats)
        if progress and on_progress:
            on_progress(*progress)
        sleep(interval)
        # Small jobs end within milliseconds; big ones need no tight loop.
        interval = min(interval * 2, max_interval)
    done = domain.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    if done.get('type') != libvirt.VIR_DOMAIN_JOB_COMPLETED:
        raise BackupFailed('backup job ended with type %s: %s' % (
            done.get('type'), done.get('errmsg', 'no error message')))
    progress = _progress(done)
    if progress and on_progress:
        on_progress(*progress)
    return done


def abort(domain, timeout=ABORT_TIMEOUT, interval=0.1):
    """Abort a running backup job and wait until libvirt reports none.

    Quiet when there is none. An abort can be refused for a moment (the
    domain's job lock is busy on a loaded host), and a job is not gone the
    instant abortJob returns: asking again until the job is gone, for at
    most ``timeout`` seconds, is what keeps a stray job (and its NBD export
    or target file) from outliving the snapshot.

    :returns: True if a job was there to abort.
    :raises: libvirtError VIR_ERR_NO_DOMAIN when the domain is gone.
    """
    deadline = time.monotonic() + timeout
    found = False
    while True:
        try:
            # An inactive domain runs no job (and jobStats would log an
            # error).
            if not domain.isActive():
                return found
            if domain.jobStats(0).get('type', libvirt.VIR_DOMAIN_JOB_NONE) \
                    == libvirt.VIR_DOMAIN_JOB_NONE:
                return found
            found = True
            domain.abortJob()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                raise
            # The job ended meanwhile, or libvirt is busy: look again.
            LOG.debug('Aborting the backup job of %s: %s', domain.name(), exc)
        if time.monotonic() >= deadline:
            LOG.warning('The backup job of %s is still there %.0f s after '
                        'it was aborted', domain.name(), timeout)
            return found
        time.sleep(interval)
