"""Thin wrappers around the ``qemu-img`` command line.

Every call passes the source format explicitly: letting qemu-img probe the
format of a guest-writable disk would let a guest that writes a qcow2 header
into a raw disk make the host open arbitrary backing files.
"""

import json
import os
import subprocess

from nova_snapshot import exception

# Formats this service ever reads or writes; anything else is refused before
# it reaches the command line.
FORMATS = ('qcow2', 'raw')


def _check_path(path):
    # qemu-img reads "proto:..." as a protocol prefix and "-x" as an option;
    # an absolute path can be neither.
    if not os.path.isabs(path):
        raise exception.SnapshotCaptureFailed(
            instance_uuid='-', reason='not an absolute path: %r' % path)


def _check_format(fmt):
    if fmt not in FORMATS:
        raise exception.SnapshotCaptureFailed(
            instance_uuid='-', reason='unsupported disk format %r' % fmt)


def _run(argv):
    try:
        result = subprocess.run(argv, capture_output=True, check=False)
    except OSError as exc:
        raise exception.SnapshotCaptureFailed(
            instance_uuid='-', reason='cannot run qemu-img: %s' % exc)
    if result.returncode != 0:
        raise exception.SnapshotCaptureFailed(
            instance_uuid='-',
            reason='%s failed (%d): %s' % (
                ' '.join(argv[:2]), result.returncode,
                result.stderr.decode('utf-8', 'replace').strip()))
    return result.stdout


def convert(src, src_format, dest, dest_format):
    """Copy ``src`` into a new standalone ``dest`` (backing chain flattened).

    qemu-img skips unallocated and zero areas, so a qcow2 output holds only
    the data the guest wrote.
    """
    for path in (src, dest):
        _check_path(path)
    _check_format(src_format)
    _check_format(dest_format)
    _run(['qemu-img', 'convert', '-f', src_format, '-O', dest_format,
          src, dest])


def info(path, fmt):
    """Return ``qemu-img info`` of ``path`` (opened as ``fmt``) as a dict."""
    _check_path(path)
    _check_format(fmt)
    return json.loads(_run(['qemu-img', 'info', '-U', '-f', fmt,
                            '--output=json', path]))


def allocated_bytes(path):
    """Bytes the file really occupies on the host file system."""
    return os.stat(path).st_blocks * 512
