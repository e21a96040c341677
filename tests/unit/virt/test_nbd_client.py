"""nbd_client against a real ``qemu-nbd`` serving a file on a unix socket.

qemu-nbd (qemu-utils) runs as a child process of the test; no kernel NBD
device is involved.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from nova_snapshot.virt.libvirt import nbd_client

MiB = 1024 * 1024


class QemuNbdTest(unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix='nbd-client-')
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.path = os.path.join(self.tmp, 'disk.raw')
        self.sock = os.path.join(self.tmp, 'nbd.sock')
        self.size = 9 * MiB + 512
        self.data = bytearray(self.size)
        self.data[512:1024] = os.urandom(512)
        self.data[5 * MiB:7 * MiB] = os.urandom(2 * MiB)
        self.data[-512:] = os.urandom(512)
        with open(self.path, 'wb') as f:
            f.write(self.data)
        self.serve('disk')

    def serve(self, export):
        proc = subprocess.Popen(
            ['qemu-nbd', '--read-only', '--persistent', '--shared=4',
             '--format=raw', '--socket=%s' % self.sock,
             '--export-name=%s' % export, self.path],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def stop():
            proc.terminate()
            proc.wait(10)
            proc.stderr.close()
        self.addCleanup(stop)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                self.fail('qemu-nbd did not start: %s'
                          % proc.stderr.read().decode())
            time.sleep(0.02)

    def test_handshake_reports_size_and_limits(self):
        with nbd_client.NBDClient(self.sock, 'disk') as client:
            self.assertEqual(self.size, client.size)
            self.assertGreaterEqual(client.max_block, 1 * MiB)
            self.assertIsNotNone(client.transmission_flags)

    def test_reads_match_the_file(self):
        with nbd_client.NBDClient(self.sock, 'disk') as client:
            self.assertEqual(bytes(self.data[512:1024]),
                             client.read(512, 512))
            self.assertEqual(bytes(self.data[4 * MiB:8 * MiB]),
                             client.read(4 * MiB, 4 * MiB))
            self.assertEqual(bytes(self.data[-512:]),
                             client.read(self.size - 512, 512))
            self.assertEqual(b'', client.read(0, 0))

    def test_whole_disk_sequentially(self):
        got = bytearray()
        with nbd_client.NBDClient(self.sock, 'disk') as client:
            offset = 0
            while offset < client.size:
                n = min(4 * MiB, client.size - offset)
                got += client.read(offset, n)
                offset += n
        self.assertEqual(self.data, got)

    def test_large_read_is_split_at_max_block(self):
        with nbd_client.NBDClient(self.sock, 'disk') as client:
            client.max_block = 1 * MiB
            self.assertEqual(bytes(self.data[MiB // 2:MiB // 2 + 7 * MiB]),
                             client.read(MiB // 2, 7 * MiB))

    def test_read_outside_export_refused(self):
        with nbd_client.NBDClient(self.sock, 'disk') as client:
            self.assertRaises(nbd_client.NBDError, client.read,
                              self.size - 512, 1024)

    def test_unknown_export_refused(self):
        self.assertRaises(nbd_client.NBDError, nbd_client.NBDClient,
                          self.sock, 'nope')

    def test_close_twice_and_reconnect(self):
        client = nbd_client.NBDClient(self.sock, 'disk')
        client.close()
        client.close()
        with nbd_client.NBDClient(self.sock, 'disk') as again:
            self.assertEqual(bytes(self.data[:16]), again.read(0, 16))


class NotNbdTest(unittest.TestCase):
    """A peer that is not an NBD server."""

    def test_garbage_greeting(self):
        tmp = tempfile.mkdtemp(prefix='nbd-client-')
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        path = os.path.join(tmp, 'sock')
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen(1)
        self.addCleanup(server.close)

        def talk():
            conn, _ = server.accept()
            conn.sendall(b'HELLO THERE, NOT NBD')
            conn.close()
        thread = threading.Thread(target=talk)
        thread.start()
        self.assertRaises(nbd_client.NBDError, nbd_client.NBDClient,
                          path, 'disk', timeout=5)
        thread.join()


if __name__ == '__main__':
    unittest.main()
