"""snapshot_stream helpers that need no libvirt: the backup document, the
export name, and the read-ahead that overlaps reading with uploading."""

import threading
import unittest
from xml.etree import ElementTree

from nova_snapshot.virt.libvirt import snapshot_stream


class BackupXMLTest(unittest.TestCase):

    def test_pull_document_lists_only_the_root_disk(self):
        tree = ElementTree.fromstring(snapshot_stream.pull_backup_xml(
            'vda', '/s/nbd.sock', '/s/vda.scratch'))
        self.assertEqual('pull', tree.get('mode'))
        server = tree.find('server')
        self.assertEqual(('unix', '/s/nbd.sock'),
                         (server.get('transport'), server.get('socket')))
        disks = tree.findall('./disks/disk')
        self.assertEqual(1, len(disks))
        self.assertEqual(('vda', 'yes', 'file'),
                         (disks[0].get('name'), disks[0].get('backup'),
                          disks[0].get('type')))
        self.assertEqual('/s/vda.scratch',
                         disks[0].find('scratch').get('file'))

    def test_export_name_from_libvirt(self):
        xml = ("<domainbackup mode='pull'><disks>"
               "<disk name='vdb' exportname='other'/>"
               "<disk name='vda' backup='yes' exportname='vda-export'/>"
               "</disks></domainbackup>")
        self.assertEqual('vda-export',
                         snapshot_stream.export_name(xml, 'vda'))
        self.assertEqual('vdc', snapshot_stream.export_name(xml, 'vdc'))


class PrefetchTest(unittest.TestCase):

    def test_order_kept_and_reader_runs_ahead(self):
        produced = []

        def source():
            for n in range(20):
                produced.append(n)
                yield n
        got = []
        for item in snapshot_stream._prefetch(source(), 3):
            got.append(item)
        self.assertEqual(list(range(20)), got)

    def test_reader_error_reaches_consumer(self):
        def source():
            yield 1
            raise IOError('nbd gone')
        chunks = snapshot_stream._prefetch(source(), 2)
        self.assertEqual(1, next(chunks))
        self.assertRaises(IOError, next, chunks)

    def test_close_stops_the_reader(self):
        def source():
            n = 0
            while True:
                n += 1
                yield n
        chunks = snapshot_stream._prefetch(source(), 2)
        self.assertEqual(1, next(chunks))
        before = threading.active_count()
        chunks.close()
        self.assertLessEqual(threading.active_count(), before - 1)


if __name__ == '__main__':
    unittest.main()
