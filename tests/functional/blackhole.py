"""Loopback servers that misbehave the way a hung service does.

``silent``: accepts TCP connections and never reads or answers (a Glance,
Cinder, Keystone or RabbitMQ whose process is stopped, or behind a
firewall that lets the handshake through). ``stall_body``: answers
``{}`` to every request but one for ``.../file``, which gets the headers
and the first bytes of a large body, then nothing (a Glance that hangs
mid-download).
"""

import socket
import threading

STALL_BODY_SIZE = 64 * 1024 * 1024
STALL_PREFIX = b'x' * 4096


def closed_port():
    """A loopback port where nothing listens (connections are refused)."""
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


class BlackHole(object):

    def __init__(self, mode='silent'):
        if mode not in ('silent', 'stall_body'):
            raise ValueError(mode)
        self.mode = mode
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(('127.0.0.1', 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self.url = 'http://127.0.0.1:%d' % self.port
        self.accepted = 0
        self._conns = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop,
                                        name='blackhole-%d' % self.port,
                                        daemon=True)
        self._thread.start()

    def _accept_loop(self):
        while not self._stopped.is_set():
            try:
                conn, _addr = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                self._conns.append(conn)
            if self.mode == 'stall_body':
                threading.Thread(target=self._stall, args=(conn,),
                                 daemon=True).start()

    def _stall(self, conn):
        # Metadata requests get an empty JSON object (glanceclient reads
        # the image before its data); a request for .../file gets the
        # headers and first bytes of a large body, then nothing.
        try:
            buf = b''
            while True:
                while b'\r\n\r\n' not in buf:
                    piece = conn.recv(65536)
                    if not piece:
                        return
                    buf += piece
                head, buf = buf.split(b'\r\n\r\n', 1)
                path = head.split(b' ', 2)[1]
                if path.split(b'?')[0].endswith(b'/file'):
                    conn.sendall(b'HTTP/1.1 200 OK\r\n'
                                 b'Content-Type: application/octet-stream\r\n'
                                 b'Content-Length: %d\r\n\r\n'
                                 % STALL_BODY_SIZE + STALL_PREFIX)
                    self._stopped.wait()
                    return
                conn.sendall(b'HTTP/1.1 200 OK\r\n'
                             b'Content-Type: application/json\r\n'
                             b'Content-Length: 2\r\n\r\n{}')
        except OSError:
            pass

    def stop(self):
        self._stopped.set()
        try:
            # shutdown() wakes the thread blocked in accept(); close()
            # alone does not on Linux.
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.close()
            except OSError:
                pass
        self._thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
