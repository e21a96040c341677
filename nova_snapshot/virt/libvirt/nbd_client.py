"""A minimal read-only NBD client over a unix socket.

Just what reading a libvirt pull-mode backup export needs: the fixed
newstyle handshake, NBD_OPT_GO for a named export (asking for its block
size limits), NBD_CMD_READ with simple replies, one request at a time, and
NBD_CMD_DISC. Protocol: https://github.com/NetworkBlockDevice/nbd/blob/
master/doc/proto.md (the wire constants below are from there).
"""

import socket
import struct

NBDMAGIC = b'NBDMAGIC'
IHAVEOPT = 0x49484156454F5054
OPTION_REPLY_MAGIC = 0x0003e889045565a9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698

FLAG_FIXED_NEWSTYLE = 1 << 0
FLAG_NO_ZEROES = 1 << 1

OPT_GO = 7
REP_ACK = 1
REP_INFO = 3
REP_FLAG_ERROR = 1 << 31
INFO_EXPORT = 0
INFO_BLOCK_SIZE = 3

CMD_READ = 0
CMD_DISC = 2

# The protocol's advice when the server names no maximum; QEMU's is 32 MiB.
DEFAULT_MAX_BLOCK = 32 * 1024 * 1024
# Option replies are small; a huge one means a broken or hostile peer.
MAX_OPTION_REPLY = 64 * 1024


class NBDError(Exception):
    """The server refused something or spoke something we do not."""


class NBDClient(object):
    """One connection to one export; use as a context manager.

    :param socket_path: the server's unix socket.
    :param export_name: the export to open (libvirt names a backup export
        after the disk target, e.g. ``vda``).
    :param timeout: seconds any single socket operation may take.
    """

    def __init__(self, socket_path, export_name, timeout=60.0):
        self.size = None
        self.transmission_flags = None
        self.min_block = 1
        self.max_block = DEFAULT_MAX_BLOCK
        self._cookie = 0
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(socket_path)
            self._handshake(export_name.encode('utf-8'))
        except BaseException:
            self._sock.close()
            raise

    # -- wire helpers -------------------------------------------------------

    def _recv(self, n):
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self._sock.recv_into(view[got:], n - got)
            if not k:
                raise NBDError('connection closed by the server after %d of '
                               '%d bytes' % (got, n))
            got += k
        return bytes(buf)

    def _handshake(self, name):
        magic, opt_magic, flags = struct.unpack('>8sQH', self._recv(18))
        if magic != NBDMAGIC or opt_magic != IHAVEOPT:
            raise NBDError('not a newstyle NBD server')
        if not flags & FLAG_FIXED_NEWSTYLE:
            raise NBDError('the server does not speak fixed newstyle')
        self._sock.sendall(struct.pack(
            '>I', FLAG_FIXED_NEWSTYLE | (flags & FLAG_NO_ZEROES)))
        # NBD_OPT_GO: export name, then the info we ask for (block sizes;
        # the export info comes unasked).
        data = struct.pack('>I', len(name)) + name + \
            struct.pack('>HH', 1, INFO_BLOCK_SIZE)
        self._sock.sendall(struct.pack('>QII', IHAVEOPT, OPT_GO, len(data)) +
                           data)
        while True:
            magic, option, rtype, length = struct.unpack(
                '>QIII', self._recv(20))
            if magic != OPTION_REPLY_MAGIC or option != OPT_GO:
                raise NBDError('bad option reply')
            if length > MAX_OPTION_REPLY:
                raise NBDError('option reply of %d bytes' % length)
            payload = self._recv(length)
            if rtype & REP_FLAG_ERROR:
                raise NBDError('export %r refused (error %#x): %s' % (
                    name.decode('utf-8', 'replace'), rtype,
                    payload.decode('utf-8', 'replace')))
            if rtype == REP_ACK:
                break
            if rtype != REP_INFO or length < 2:
                continue
            info = struct.unpack('>H', payload[:2])[0]
            if info == INFO_EXPORT and length >= 12:
                self.size, self.transmission_flags = struct.unpack(
                    '>QH', payload[2:12])
            elif info == INFO_BLOCK_SIZE and length >= 14:
                self.min_block, _, self.max_block = struct.unpack(
                    '>III', payload[2:14])
        if self.size is None:
            raise NBDError('the server sent no export size')

    # -- transmission -------------------------------------------------------

    def read(self, offset, length):
        """Return ``length`` bytes at ``offset``; bigger reads are split."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise NBDError('read of %d bytes at %d is outside the export '
                           '(%d bytes)' % (length, offset, self.size))
        parts = []
        while length:
            n = min(length, self.max_block)
            parts.append(self._read_one(offset, n))
            offset += n
            length -= n
        return parts[0] if len(parts) == 1 else b''.join(parts)

    def _read_one(self, offset, length):
        self._cookie += 1
        self._sock.sendall(struct.pack('>IHHQQI', REQUEST_MAGIC, 0, CMD_READ,
                                       self._cookie, offset, length))
        magic, error, cookie = struct.unpack('>IIQ', self._recv(16))
        if magic != SIMPLE_REPLY_MAGIC:
            # A structured reply we never negotiated, or garbage.
            raise NBDError('unexpected reply magic %#x' % magic)
        if cookie != self._cookie:
            raise NBDError('reply for request %d, expected %d'
                           % (cookie, self._cookie))
        if error:
            raise NBDError('read of %d bytes at %d failed: errno %d'
                           % (length, offset, error))
        return self._recv(length)

    def close(self):
        """Say goodbye (NBD_CMD_DISC) and close; safe to call twice."""
        if self._sock is None:
            return
        try:
            self._cookie += 1
            self._sock.sendall(struct.pack('>IHHQQI', REQUEST_MAGIC, 0,
                                           CMD_DISC, self._cookie, 0, 0))
        except OSError:
            pass
        finally:
            self._sock.close()
            self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
