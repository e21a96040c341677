"""Hostile disk images for the inspection tests (unit and functional).

Each builder writes one file a user could upload to Glance. Most name a
file on the host (``host_file``: a file the test wrote with a marker in
it) or another server's disk (``other_disk``) where QEMU would read it:
as a qcow2 external data file, a backing file or a VMDK extent. The rest
lie about their format or size. :func:`build_all` makes every one.

qcow2 headers that name host files are written here byte by byte, not
with ``qemu-img create -o data_file=...``: that command creates (and so
truncates) the data file it names.
"""

import collections
import os
import struct
import subprocess

MiB = 1024 ** 2
GiB = 1024 ** 3
CLUSTER_BITS = 16
CLUSTER = 1 << CLUSTER_BITS
QCOW2_MAGIC = b'QFI\xfb'
EXT_DATA_FILE = 0x44415441         # 'DATA'
EXT_END = 0
INCOMPAT_DATA_FILE = 1 << 2
AUTOCLEAR_DATA_FILE_RAW = 1 << 1

# name, the disk_format the user declares, how to build it, and what must
# refuse it: 'inspection' (format, headers, limits) or 'size' (the image
# does not fit the flavor's 1 GiB root disk).
Crafted = collections.namedtuple('Crafted',
                                 'name disk_format path refused_by')


def qcow2(size, backing=None, data_file=None, data_file_raw=False,
          version=3, incompatible=0, crypt_method=0):
    """Bytes of a small, otherwise valid qcow2 image.

    Layout: header (+ extensions, backing name) in cluster 0, refcount
    table in 1, one refcount block in 2, L1 table from 3. Without a data
    file no cluster is allocated (reads fall through to the backing file);
    with one, an L2 table maps the first MiB of the disk onto the first
    MiB of the data file, as an attacker's image would.
    """
    l2_entries = CLUSTER // 8
    l1_size = max(1, -(-size // (CLUSTER * l2_entries)))
    l1_clusters = max(1, -(-(l1_size * 8) // CLUSTER))
    if l1_clusters > 64:
        # Huge virtual sizes: leave the L1 table short; qemu would refuse
        # the file, the inspector must refuse it first.
        l1_clusters, l1_size = 1, l2_entries
    total_clusters = 3 + l1_clusters + (1 if data_file is not None else 0)
    features = incompatible
    autoclear = 0
    extensions = b''
    if data_file is not None:
        features |= INCOMPAT_DATA_FILE
        if data_file_raw:
            autoclear |= AUTOCLEAR_DATA_FILE_RAW
        name = data_file.encode()
        extensions += struct.pack('>II', EXT_DATA_FILE, len(name))
        extensions += name + b'\0' * (-len(name) % 8)
    extensions += struct.pack('>II', EXT_END, 0)
    header_length = 104
    backing_offset = backing_size = 0
    if backing is not None:
        backing_offset = header_length + len(extensions)
        backing_size = len(backing.encode())
    header = struct.pack(
        '>4sIQIIQIIQQIIQQQQII',
        QCOW2_MAGIC, version, backing_offset, backing_size, CLUSTER_BITS,
        size, crypt_method, l1_size, 3 * CLUSTER, 1 * CLUSTER, 1, 0, 0, features, 0,
        autoclear, 4, header_length)
    cluster0 = header + extensions + (backing.encode() if backing else b'')
    assert len(cluster0) <= CLUSTER
    image = bytearray(total_clusters * CLUSTER)
    image[:len(cluster0)] = cluster0
    # refcount table -> block at cluster 2; 16-bit refcounts of 1.
    image[CLUSTER:CLUSTER + 8] = struct.pack('>Q', 2 * CLUSTER)
    for n in range(total_clusters):
        image[2 * CLUSTER + 2 * n:2 * CLUSTER + 2 * n + 2] = b'\0\1'
    if data_file is not None:
        copied = 1 << 63
        l2 = (3 + l1_clusters) * CLUSTER
        image[3 * CLUSTER:3 * CLUSTER + 8] = struct.pack('>Q', l2 | copied)
        for n in range(min(MiB, size) // CLUSTER):
            image[l2 + 8 * n:l2 + 8 * n + 8] = struct.pack(
                '>Q', (n * CLUSTER) | copied)
    return bytes(image)


def _write(path, data):
    with open(path, 'wb') as f:
        f.write(data)
    return path


def _qemu_img(*argv):
    # Test-side only: builds inputs, never touches the files they name.
    subprocess.run(('qemu-img',) + argv, check=True, capture_output=True)


def vmdk_flat_descriptor(extent_path, sectors=2048):
    """A text VMDK descriptor whose one extent is ``extent_path``."""
    return ('# Disk DescriptorFile\n'
            'version=1\n'
            'CID=fffffffe\n'
            'parentCID=ffffffff\n'
            'createType="monolithicFlat"\n'
            '\n'
            '# Extent description\n'
            'RW %d FLAT "%s" 0\n'
            '\n'
            '# The Disk Data Base\n'
            '#DDB\n'
            'ddb.adapterType = "ide"\n' % (sectors, extent_path)).encode()


def luks_v1(size):
    """A LUKS v1 header (no usable key slot) followed by zeros."""
    header = struct.pack('>6sH32s32s32sII20s32sI', b'LUKS\xba\xbe', 1,
                         b'aes', b'xts-plain64', b'sha256', 4096, 64,
                         bytes(20), bytes(32), 1000)
    return header + bytes(size - len(header))


def _mbr_over(data):
    """``data`` with a protective-MBR partition table laid over bytes
    446-511 (one GPT partition): it reads as a partition table too."""
    data = bytearray(data)
    entry = struct.pack('<B3BB3BII', 0, 0, 2, 0, 0xEE, 0xff, 0xff, 0xff,
                        1, 0xffffffff)
    data[446:462] = entry
    data[462:510] = bytes(48)
    data[510:512] = b'\x55\xaa'
    return bytes(data)


def _iso_over(data):
    """``data`` padded with an ISO 9660 primary volume descriptor at 32 KiB
    (a polyglot: a qcow2 header and a CD-ROM at once)."""
    data = bytearray(data)
    if len(data) < 36 * 1024:
        data += bytes(36 * 1024 - len(data))
    pvd = bytearray(2048)
    pvd[0] = 1
    pvd[1:6] = b'CD001'
    pvd[6] = 1
    struct.pack_into('<I', pvd, 80, 16)        # volume space (blocks)
    struct.pack_into('>I', pvd, 84, 16)
    struct.pack_into('<H', pvd, 128, 2048)     # logical block size
    struct.pack_into('>H', pvd, 130, 2048)
    data[32 * 1024:34 * 1024] = pvd
    return bytes(data)


def build_all(workdir, host_file, other_disk):
    """Write every crafted image into ``workdir``; return [Crafted].

    :param host_file: a host file (absolute path) with a marker in it.
    :param other_disk: another server's disk (absolute path).
    """
    out = []

    def add(name, disk_format, data_or_path, refused_by='inspection'):
        path = os.path.join(workdir, name)
        if isinstance(data_or_path, bytes):
            _write(path, data_or_path)
        else:
            os.replace(data_or_path, path)
        out.append(Crafted(name, disk_format, path, refused_by))

    def scratch(name):
        return os.path.join(workdir, '.build-' + name)

    add('qcow2-data-file-host-file', 'qcow2',
        qcow2(MiB, data_file=host_file))
    add('qcow2-data-file-raw-host-file', 'qcow2',
        qcow2(MiB, data_file=host_file, data_file_raw=True))
    add('qcow2-data-file-etc-passwd', 'qcow2',
        qcow2(MiB, data_file='/etc/passwd'))
    add('qcow2-data-file-other-server-disk', 'qcow2',
        qcow2(MiB, data_file=other_disk))
    add('qcow2-data-file-declared-raw', 'raw',
        qcow2(MiB, data_file=host_file))
    add('qcow2-backing-host-file', 'qcow2', qcow2(MiB, backing=host_file))
    add('qcow2-backing-other-server-disk', 'qcow2',
        qcow2(MiB, backing=other_disk))
    add('qcow2-backing-json-protocol', 'qcow2', qcow2(MiB, backing=(
        'json:{"driver": "raw", "file": {"driver": "file", '
        '"filename": "%s"}}' % host_file)))
    add('qcow2-backing-declared-raw', 'raw', qcow2(MiB, backing=host_file))
    add('qcow2-declared-raw', 'raw', qcow2(MiB))
    add('qcow2-v1-backing-host-file', 'qcow2',
        qcow2(MiB, backing=host_file, version=1))
    add('qcow2-unknown-incompatible-feature', 'qcow2',
        qcow2(MiB, incompatible=1 << 9))
    add('qcow2-8-eib-virtual-size', 'qcow2', qcow2(8 * 1024 ** 6 - 512))
    add('qcow2-truncated-header-data-file', 'qcow2',
        qcow2(MiB, data_file=host_file)[:100])
    # Encrypted qcow2 (legacy AES): the inspector sees a plain header;
    # qemu-img info reports the encryption.
    add('qcow2-aes-encrypted', 'qcow2', qcow2(MiB, crypt_method=1))
    add('vmdk-flat-extent-host-file-declared-raw', 'raw',
        vmdk_flat_descriptor(host_file))
    add('vmdk-flat-extent-other-server-disk-declared-qcow2', 'qcow2',
        vmdk_flat_descriptor(other_disk))
    add('luks-declared-raw', 'raw', luks_v1(MiB))
    qed = scratch('qed')
    _qemu_img('create', '-f', 'qed', '-u', '-b', host_file, '-F', 'raw',
              qed, '1M')
    add('qed-backing-host-file-declared-raw', 'raw', qed)
    add('iso-qcow2-polyglot-backing-declared-raw', 'raw',
        _iso_over(qcow2(MiB, backing=host_file)))
    add('mbr-qcow2-polyglot-data-file-declared-raw', 'raw',
        _mbr_over(qcow2(MiB, data_file=host_file)))
    # Harmless bytes, but larger than the 1 GiB root disk of every
    # built-in flavor once expanded.
    add('qcow2-virtual-size-above-flavor-disk', 'qcow2', qcow2(5 * GiB),
        refused_by='size')
    return out
