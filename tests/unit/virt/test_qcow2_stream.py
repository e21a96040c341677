"""qcow2_stream: layout arithmetic, and streamed files checked by qemu-img.

The end-to-end cases write random sparse raw files, take their extents
from ``qemu-img map`` (as the live path does on the NBD export), stream a
qcow2 from them and have ``qemu-img check`` and ``qemu-img compare`` judge
the result.
"""

import json
import os
import random
import shutil
import struct
import subprocess
import tempfile
import unittest

from nova_snapshot.virt.libvirt import qcow2_stream as q

C = q.CLUSTER_SIZE
MiB = 1024 * 1024
GiB = 1024 * MiB


class AlignTest(unittest.TestCase):

    def test_rounds_out_to_clusters_and_merges(self):
        runs = q.align_extents(
            [(C + 10, 5), (3 * C, C), (2 * C - 1, 2), (10 * C, 0)],
            100 * C)
        # (C+10,5) -> cluster 1; (2C-1,2) -> clusters 1-2; 3C -> cluster 3.
        self.assertEqual([(1, 3)], runs)

    def test_clamped_to_disk(self):
        self.assertEqual([(9, 1)], q.align_extents([(9 * C, 5 * C)],
                                                   9 * C + 512))

    def test_unsorted_and_disjoint(self):
        self.assertEqual([(0, 1), (5, 2)],
                         q.align_extents([(5 * C, 2 * C), (0, 1)], 10 * C))


class LayoutTest(unittest.TestCase):

    def test_empty_disk(self):
        layout = q.Layout(GiB, [])
        # header, L1, refcount table, one refcount block: nothing else.
        self.assertEqual(4 * C, layout.size)
        self.assertEqual([], layout.l2_indexes)
        self.assertEqual(2, layout.l1_size)          # 512 MiB per L2 table
        self.assertEqual([], list(layout.reads()))

    def test_offsets_are_consecutive(self):
        layout = q.Layout(GiB, [(0, 3), (8192, 1)])
        self.assertEqual(C, layout.l1_offset)
        self.assertEqual(2 * C, layout.refcount_table_offset)
        self.assertEqual(3 * C, layout.refcount_blocks_offset)
        self.assertEqual(4 * C, layout.l2_offset)
        self.assertEqual([0, 1], layout.l2_indexes)
        self.assertEqual(6 * C, layout.data_offset)
        self.assertEqual(10 * C, layout.size)

    def test_header_fields(self):
        layout = q.Layout(GiB + 512, [(0, 1)])
        head = layout.header()
        magic, version = struct.unpack('>II', head[:8])
        self.assertEqual((0x514649fb, 3), (magic, version))
        self.assertEqual(16, struct.unpack('>I', head[20:24])[0])
        self.assertEqual(GiB + 512, struct.unpack('>Q', head[24:32])[0])
        self.assertEqual(3, struct.unpack('>I', head[36:40])[0])  # l1 size
        self.assertEqual((4, 104), struct.unpack('>II', head[96:104]))

    def test_refcounts_cover_themselves(self):
        # More than one refcount block's worth of data clusters.
        count = q.REFS_PER_BLOCK + 10
        layout = q.Layout(count * C, [(0, count)])
        self.assertEqual(2, layout.refcount_blocks)
        self.assertLessEqual(layout.total_clusters,
                             layout.refcount_blocks * q.REFS_PER_BLOCK)
        last = layout.refcount_block(1)
        used = layout.total_clusters - q.REFS_PER_BLOCK
        self.assertEqual(b'\0\1' * used, last[:2 * used])
        self.assertEqual(b'\0' * (C - 2 * used), last[2 * used:])

    def test_l2_entries_point_at_data_in_order(self):
        layout = q.Layout(GiB, [(8190, 4)])     # spans two L2 tables
        tables = list(layout.l2_tables())
        self.assertEqual(2, len(tables))
        entries = [struct.unpack('>Q', tables[0][8190 * 8 + i * 8:
                                                 8190 * 8 + i * 8 + 8])[0]
                   for i in range(2)]
        entries += [struct.unpack('>Q', tables[1][i * 8:i * 8 + 8])[0]
                    for i in range(2)]
        self.assertEqual([(layout.data_offset + i * C) | q.OFLAG_COPIED
                          for i in range(4)], entries)

    def test_reads_split_and_stop_at_disk_end(self):
        size = 5 * C + 512
        layout = q.Layout(size, [(0, 6)])
        self.assertEqual([(0, 2 * C), (2 * C, 2 * C), (4 * C, C + 512)],
                         list(layout.reads(2 * C)))

    def test_size_must_be_whole_sectors(self):
        self.assertRaises(ValueError, q.Layout, GiB + 1, [])

    def test_stream_length_matches_layout(self):
        layout = q.Layout(3 * C + 1024, [(1, 3)])
        out = b''.join(q.stream(layout, lambda off, n: b'x' * n))
        self.assertEqual(layout.size, len(out))

    def test_short_read_fails(self):
        layout = q.Layout(4 * C, [(0, 2)])
        chunks = q.stream(layout, lambda off, n: b'x' * (n - 1))
        self.assertRaises(IOError, list, chunks)


class QemuImgTest(unittest.TestCase):
    """Streamed files against the real qemu-img."""

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix='qcow2-stream-')
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.raw = os.path.join(self.tmp, 'src.raw')
        self.out = os.path.join(self.tmp, 'out.qcow2')

    def make_raw(self, size, writes):
        with open(self.raw, 'wb') as f:
            f.truncate(size)
            for offset, data in writes:
                f.seek(offset)
                f.write(data)

    def extents(self):
        out = subprocess.run(['qemu-img', 'map', '-f', 'raw',
                              '--output=json', self.raw],
                             check=True, capture_output=True).stdout
        return [(e['start'], e['length']) for e in json.loads(out)
                if e['data'] and not e['zero']]

    def stream_and_check(self, size):
        layout = q.Layout(size, q.align_extents(self.extents(), size))
        reads = []
        with open(self.raw, 'rb') as src, open(self.out, 'wb') as dst:
            def read(offset, length):
                reads.append(offset)
                src.seek(offset)
                return src.read(length)
            for chunk in q.stream(layout, read, read_size=MiB):
                dst.write(chunk)
        self.assertEqual(sorted(reads), reads)
        self.assertEqual(layout.size, os.path.getsize(self.out))
        check = subprocess.run(['qemu-img', 'check', '-f', 'qcow2',
                                '--output=json', self.out],
                               capture_output=True, text=True)
        self.assertEqual(0, check.returncode, check.stdout + check.stderr)
        report = json.loads(check.stdout)
        self.assertEqual(0, report.get('leaks', 0))
        self.assertEqual(0, report.get('corruptions', 0))
        info = json.loads(subprocess.run(
            ['qemu-img', 'info', '-f', 'qcow2', '--output=json', self.out],
            check=True, capture_output=True).stdout)
        self.assertEqual(size, info['virtual-size'])
        self.assertEqual('1.1', info['format-specific']['data']['compat'])
        compare = subprocess.run(['qemu-img', 'compare', '-f', 'raw', '-F',
                                  'qcow2', self.raw, self.out],
                                 capture_output=True, text=True)
        self.assertEqual(0, compare.returncode, compare.stdout)
        # Sparse: only the source's data clusters are allocated.
        mapped = json.loads(subprocess.run(
            ['qemu-img', 'map', '-f', 'qcow2', '--output=json', self.out],
            check=True, capture_output=True).stdout)
        allocated = sum(e['length'] for e in mapped if e['data'])
        self.assertEqual(min(layout.data_clusters * C,
                             sum(n for _, n in layout.reads())), allocated)
        return layout

    def test_empty_disk(self):
        self.make_raw(64 * MiB, [])
        layout = self.stream_and_check(64 * MiB)
        self.assertEqual(0, layout.data_clusters)

    def test_tiny_disk(self):
        self.make_raw(4096, [(512, b'tick 1\n')])
        layout = self.stream_and_check(4096)
        self.assertEqual(1, layout.data_clusters)

    def test_data_in_last_partial_cluster(self):
        size = 10 * MiB + 3 * 512
        self.make_raw(size, [(size - 700, os.urandom(700))])
        layout = self.stream_and_check(size)
        self.assertEqual(1, layout.data_clusters)

    def test_several_l2_tables(self):
        size = 1300 * MiB + 512
        self.make_raw(size, [(0, os.urandom(3000)),
                             (512 * MiB - 100, os.urandom(300000)),
                             (1030 * MiB, os.urandom(2 * MiB)),
                             (size - 512, os.urandom(512))])
        layout = self.stream_and_check(size)
        self.assertEqual([0, 1, 2], layout.l2_indexes)

    def test_random_sparse(self):
        rng = random.Random()
        seed = rng.randrange(2 ** 32)
        rng.seed(seed)
        size = rng.randrange(1, 400) * MiB + rng.randrange(0, 128) * 512
        writes = []
        for _ in range(rng.randrange(1, 40)):
            offset = rng.randrange(0, size)
            length = min(rng.randrange(1, 3 * C), size - offset)
            writes.append((offset, bytes(rng.getrandbits(8)
                                         for _ in range(length))))
        self.make_raw(size, writes)
        with self.subTest(seed=seed):
            self.stream_and_check(size)


if __name__ == '__main__':
    unittest.main()
