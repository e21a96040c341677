"""The one way this service runs ``qemu-img``.

Every call:

* is an argv list (never a shell) whose paths are absolute, so that no
  path can be read as an option (``-x``) or a protocol (``nbd:...``);
* names the source format explicitly (``-f``): letting qemu-img probe the
  format of a guest-writable or user-supplied file would let a raw disk
  that holds a qcow2 header make QEMU open files the header names;
* runs under process limits (oslo.concurrency's prlimit wrapper) and a
  wall-clock timeout, after which the process is killed. A crafted image
  can make qemu-img allocate huge tables or loop over corrupt metadata;
  the limits turn that into a failed call instead of a host out of memory
  or a compute thread that never returns.

Untrusted images are inspected (:mod:`nova_snapshot.virt.image_inspection`)
before any of these run on them.
"""

import json
import os
import subprocess

from oslo_concurrency import processutils
from oslo_log import log as logging

from nova_snapshot import exception

LOG = logging.getLogger(__name__)

MiB = 1024 ** 2
GiB = 1024 ** 3

# Formats this service ever reads or writes with qemu-img; anything else is
# refused before it reaches the command line.
FORMATS = ('qcow2', 'raw')

# Reading metadata (info, map): Nova's limits for qemu-img info. A sane
# image needs a few MiB and well under a second; 1 GiB of address space and
# 30 CPU seconds leave room for big qcow2 files with many snapshots while
# stopping the qcow2 header tricks that make qemu-img allocate or walk
# gigabytes of tables (CVE-2015-5162).
INFO_LIMITS = processutils.ProcessLimits(address_space=1 * GiB, cpu_time=30)
INFO_TIMEOUT = 60

# Copying data (convert, resize): convert runs a pool of I/O threads whose
# stacks and malloc arenas need address space (measured: 256 MiB aborts,
# 512 MiB is enough for qemu-img 7.2), and its CPU time grows with the
# disk's size (zero detection, qcow2 metadata); 2 GiB and 10 CPU minutes
# bound a runaway process while a disk of hundreds of GiB still converts.
# The wall clock covers a slow disk too.
CONVERT_LIMITS = processutils.ProcessLimits(address_space=2 * GiB,
                                            cpu_time=600)
CONVERT_TIMEOUT = 3600

# stderr of a failed call quoted in an error, at most this many characters.
MAX_ERROR_TEXT = 500


def _check_path(path):
    # qemu-img reads "proto:..." as a protocol prefix and "-x" as an option;
    # an absolute path can be neither.
    if not isinstance(path, str) or not os.path.isabs(path):
        raise exception.QemuImgFailed(command='-',
                                      reason='not an absolute path')


def _check_format(fmt):
    if fmt not in FORMATS:
        raise exception.QemuImgFailed(
            command='-', reason='unsupported disk format %r' % (fmt,))


def execute(argv, limits, timeout):
    """Run ``qemu-img <argv>`` under ``limits``; return stdout (text).

    :raises QemuImgFailed: non-zero exit, killed by a limit, or timed out
        (the process is killed first).
    """
    command = argv[0]
    started = []
    try:
        stdout, _stderr = processutils.execute(
            'qemu-img', *argv, prlimit=limits, timeout=timeout,
            on_execute=started.append)
    except subprocess.TimeoutExpired:
        # processutils leaves the child running on a timeout.
        for proc in started:
            proc.kill()
            proc.wait()
        raise exception.QemuImgFailed(
            command=command, reason='no answer within %d s' % timeout)
    except processutils.ProcessExecutionError as exc:
        reason = (exc.stderr or '').strip()[:MAX_ERROR_TEXT]
        if exc.exit_code is not None and exc.exit_code < 0:
            # Killed by a signal: SIGXCPU/SIGKILL at the CPU limit, SIGSEGV
            # or SIGABRT when the address-space limit made an allocation
            # fail.
            reason = 'killed by signal %d (process limits)' % -exc.exit_code
        raise exception.QemuImgFailed(
            command=command, reason='exit %s: %s' % (exc.exit_code, reason))
    except OSError as exc:
        raise exception.QemuImgFailed(command=command,
                                      reason='cannot run qemu-img: %s' % exc)
    return stdout


def info(path, fmt, force_share=False):
    """``qemu-img info`` of ``path`` opened as ``fmt``, as a dict.

    :param force_share: ``-U``: read an image QEMU has open (a running
        guest's disk); never needed for a downloaded image.
    """
    _check_path(path)
    _check_format(fmt)
    argv = ['info', '-f', fmt, '--output=json']
    if force_share:
        argv.append('-U')
    out = execute(argv + [path], INFO_LIMITS, INFO_TIMEOUT)
    try:
        return json.loads(out)
    except ValueError:
        raise exception.QemuImgFailed(command='info',
                                      reason='output is not JSON')


def convert(src, src_format, dest, dest_format):
    """Copy ``src`` into a new standalone ``dest`` (backing chain flattened).

    qemu-img skips unallocated and zero areas, so a qcow2 output holds only
    the data the guest wrote.
    """
    for path in (src, dest):
        _check_path(path)
    _check_format(src_format)
    _check_format(dest_format)
    execute(['convert', '-f', src_format, '-O', dest_format, src, dest],
            CONVERT_LIMITS, CONVERT_TIMEOUT)


def resize(path, fmt, size):
    """Grow ``path`` (opened as ``fmt``) to ``size`` bytes."""
    _check_path(path)
    _check_format(fmt)
    size = int(size)
    if size <= 0:
        raise exception.QemuImgFailed(command='resize',
                                      reason='size must be positive')
    execute(['resize', '-f', fmt, path, str(size)], CONVERT_LIMITS,
            CONVERT_TIMEOUT)


def _image_opts_value(value):
    # --image-opts splits on commas; a literal comma is written twice.
    return str(value).replace(',', ',,')


def nbd_unix_image_opts(socket_path, export):
    """``--image-opts`` naming an NBD export on a unix socket."""
    _check_path(socket_path)
    return ('driver=nbd,server.type=unix,server.path=%s,export=%s'
            % (_image_opts_value(socket_path), _image_opts_value(export)))


def map_nbd(socket_path, export):
    """``qemu-img map`` of an NBD export (our own libvirt backup export).

    The export speaks raw NBD: no format is probed on it.
    """
    out = execute(['map', '--output=json', '--image-opts',
                   nbd_unix_image_opts(socket_path, export)],
                  INFO_LIMITS, INFO_TIMEOUT)
    try:
        return json.loads(out)
    except ValueError:
        raise exception.QemuImgFailed(command='map',
                                      reason='output is not JSON')


def allocated_bytes(path):
    """Bytes the file really occupies on the host file system."""
    return os.stat(path).st_blocks * 512
