"""Write a qcow2 v3 image as one forward-only byte stream.

Used to upload a point-in-time view of a disk without first writing a
local copy: when the allocated extents are known up front, every piece of
qcow2 metadata can be computed before any guest data is read, so the file
can be produced strictly in order (and its exact length is known, which is
what Glance wants before the upload starts).

File layout (all in 64 KiB clusters, nothing ever rewritten)::

    header | L1 table | refcount table | refcount blocks | L2 tables | data

Data clusters follow in guest-offset order; clusters the extents do not
cover are left unallocated (they read as zeros), so the image is as sparse
as the source. Every cluster in the file has refcount 1, hence the COPIED
flag on every L1/L2 entry.
"""

import struct

CLUSTER_BITS = 16
CLUSTER_SIZE = 1 << CLUSTER_BITS
L2_ENTRIES = CLUSTER_SIZE // 8          # 8-byte L2 entries
REFCOUNT_ORDER = 4                       # 16-bit refcounts
REFS_PER_BLOCK = CLUSTER_SIZE * 8 // (1 << REFCOUNT_ORDER)
HEADER_LENGTH = 104                      # qcow2 v3 header without extensions
OFLAG_COPIED = 1 << 63
QCOW_MAGIC = 0x514649fb                  # 'QFI\xfb'

# Reads of guest data are issued for runs of consecutive clusters, at most
# this long: big enough for throughput, small enough for steady progress.
DEFAULT_READ_SIZE = 4 * 1024 * 1024


def _clusters(nbytes):
    return -(-nbytes // CLUSTER_SIZE)


def align_extents(extents, virtual_size):
    """Turn byte extents into sorted, merged runs of whole clusters.

    ``extents`` is an iterable of ``(offset, length)``; returns a list of
    ``(first_cluster, cluster_count)`` with no overlaps and no adjacency
    (adjacent runs are merged).
    """
    last = _clusters(virtual_size)
    spans = []
    for offset, length in extents:
        if length <= 0:
            continue
        start = max(0, offset) // CLUSTER_SIZE
        end = min(last, _clusters(offset + length))
        if end > start:
            spans.append((start, end))
    spans.sort()
    runs = []
    for start, end in spans:
        if runs and start <= runs[-1][1]:
            runs[-1][1] = max(runs[-1][1], end)
        else:
            runs.append([start, end])
    return [(start, end - start) for start, end in runs]


class Layout(object):
    """Where everything goes in the output file, computed once.

    :param virtual_size: the disk's size in bytes.
    :param runs: ``(first_cluster, count)`` runs, as from align_extents.
    """

    def __init__(self, virtual_size, runs):
        if virtual_size < 0 or virtual_size % 512:
            # qcow2 keeps whole sectors: anything else would be truncated.
            raise ValueError('virtual size %d is not a multiple of 512'
                             % virtual_size)
        self.virtual_size = virtual_size
        self.runs = list(runs)
        self.data_clusters = sum(count for _, count in self.runs)
        # Entries, not clusters: one L1 entry per L2 table's worth of disk.
        self.l1_size = -(-_clusters(virtual_size) // L2_ENTRIES)
        self.l1_clusters = max(1, _clusters(self.l1_size * 8))
        # L1 indexes that need an L2 table, in order.
        used = set()
        for first, count in self.runs:
            for index in range(first // L2_ENTRIES,
                               (first + count - 1) // L2_ENTRIES + 1):
                used.add(index)
        self.l2_indexes = sorted(used)
        fixed = 1 + self.l1_clusters + len(self.l2_indexes) + \
            self.data_clusters
        # The refcount structures count themselves: grow them until they
        # cover the whole file, including their own clusters.
        blocks, table = 1, 1
        while True:
            total = fixed + table + blocks
            need_blocks = -(-total // REFS_PER_BLOCK)
            need_table = max(1, _clusters(need_blocks * 8))
            if (need_blocks, need_table) == (blocks, table):
                break
            blocks, table = max(blocks, need_blocks), max(table, need_table)
        self.refcount_blocks = blocks
        self.refcount_table_clusters = table
        self.total_clusters = fixed + table + blocks

        self.l1_offset = CLUSTER_SIZE
        self.refcount_table_offset = self.l1_offset + \
            self.l1_clusters * CLUSTER_SIZE
        self.refcount_blocks_offset = self.refcount_table_offset + \
            table * CLUSTER_SIZE
        self.l2_offset = self.refcount_blocks_offset + blocks * CLUSTER_SIZE
        self.data_offset = self.l2_offset + \
            len(self.l2_indexes) * CLUSTER_SIZE
        self.size = self.total_clusters * CLUSTER_SIZE
        self.metadata_size = self.data_offset

    # -- metadata --------------------------------------------------------

    def header(self):
        head = struct.pack(
            '>IIQIIQIIQQIIQQQQII',
            QCOW_MAGIC, 3,
            0, 0,                         # backing file offset, size
            CLUSTER_BITS,
            self.virtual_size,
            0,                            # no encryption
            self.l1_size, self.l1_offset,
            self.refcount_table_offset, self.refcount_table_clusters,
            0, 0,                         # no internal snapshots
            0, 0, 0,                      # incompatible/compatible/autoclear
            REFCOUNT_ORDER, HEADER_LENGTH)
        assert len(head) == HEADER_LENGTH
        # Header extension area: only the end marker (type 0, length 0).
        return head + b'\0' * 8

    def l1_table(self):
        table = bytearray(self.l1_clusters * CLUSTER_SIZE)
        for n, index in enumerate(self.l2_indexes):
            struct.pack_into('>Q', table, index * 8,
                             (self.l2_offset + n * CLUSTER_SIZE) |
                             OFLAG_COPIED)
        return bytes(table)

    def refcount_table(self):
        table = bytearray(self.refcount_table_clusters * CLUSTER_SIZE)
        for n in range(self.refcount_blocks):
            struct.pack_into('>Q', table, n * 8,
                             self.refcount_blocks_offset + n * CLUSTER_SIZE)
        return bytes(table)

    def refcount_block(self, n):
        # Clusters [first, first + REFS_PER_BLOCK) of the file; the file is
        # dense from 0 to total_clusters, each in use exactly once.
        first = n * REFS_PER_BLOCK
        used = max(0, min(REFS_PER_BLOCK, self.total_clusters - first))
        return b'\0\1' * used + b'\0\0' * (REFS_PER_BLOCK - used)

    def l2_tables(self):
        """Yield each L2 table (one cluster each), in file order."""
        host = self.data_offset
        runs = iter(self.runs)
        run = next(runs, None)
        for index in self.l2_indexes:
            base = index * L2_ENTRIES
            table = bytearray(CLUSTER_SIZE)
            while run is not None:
                first, count = run
                if first >= base + L2_ENTRIES:
                    break
                # The part of this run inside this table.
                start = max(first, base)
                end = min(first + count, base + L2_ENTRIES)
                for cluster in range(start, end):
                    struct.pack_into('>Q', table, (cluster - base) * 8,
                                     host | OFLAG_COPIED)
                    host += CLUSTER_SIZE
                if first + count > base + L2_ENTRIES:
                    # The run goes on into the next table.
                    run = (base + L2_ENTRIES,
                           first + count - (base + L2_ENTRIES))
                    break
                run = next(runs, None)
            yield bytes(table)

    def metadata(self):
        """Yield the metadata part of the file, cluster-sized pieces."""
        header = self.header()
        yield header + b'\0' * (CLUSTER_SIZE - len(header))
        yield self.l1_table()
        yield self.refcount_table()
        for n in range(self.refcount_blocks):
            yield self.refcount_block(n)
        for table in self.l2_tables():
            yield table

    # -- data ------------------------------------------------------------

    def reads(self, read_size=DEFAULT_READ_SIZE):
        """``(guest_offset, length)`` pieces of data, in file order.

        Lengths are whole clusters except where the disk ends inside a
        cluster: the caller pads those to the cluster.
        """
        step = max(1, read_size // CLUSTER_SIZE)
        for first, count in self.runs:
            done = 0
            while done < count:
                n = min(step, count - done)
                offset = (first + done) * CLUSTER_SIZE
                length = min(n * CLUSTER_SIZE, self.virtual_size - offset)
                yield offset, length
                done += n


def stream(layout, read, read_size=DEFAULT_READ_SIZE):
    """Yield the whole qcow2 file, exactly ``layout.size`` bytes.

    ``read(offset, length)`` returns ``length`` bytes of the disk at
    ``offset``; it is called in increasing offset order.
    """
    for piece in layout.metadata():
        yield piece
    for offset, length in layout.reads(read_size):
        data = read(offset, length)
        if len(data) != length:
            raise IOError('short read at %d: %d of %d bytes'
                          % (offset, len(data), length))
        tail = -length % CLUSTER_SIZE
        yield data + b'\0' * tail if tail else data
