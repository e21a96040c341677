"""A loopback HTTP proxy in front of the real Glance, for failure injection.

It forwards every request unchanged, except that it can refuse image data
uploads (``PUT /v2/images/{id}/file``) with a chosen status, or slow them down
so a test has time to act while an upload is in flight.
"""

import http.client
import http.server
import threading
import time
import urllib.parse


class GlanceProxy:
    def __init__(self, glance_url):
        target = urllib.parse.urlsplit(glance_url)
        self.target_host = target.hostname
        self.target_port = target.port or 80
        self.refuse_upload_status = None
        self.upload_delay_per_mib = 0.0
        self.stall_uploads = False
        self.uploads_started = threading.Event()
        # (method, path) of every request, in arrival order.
        self.requests = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def _body(self):
                if self.headers.get('Transfer-Encoding', '').lower() == 'chunked':
                    return self._chunks()
                length = int(self.headers.get('Content-Length') or 0)
                return self.rfile.read(length) if length else None

            def _chunks(self):
                while True:
                    size = int(self.rfile.readline().split(b';')[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        return
                    chunk = self.rfile.read(size)
                    self.rfile.readline()
                    while proxy.stall_uploads:
                        time.sleep(0.05)
                    if proxy.upload_delay_per_mib:
                        time.sleep(proxy.upload_delay_per_mib * size / 2 ** 20)
                    yield chunk

            def _forward(self):
                proxy.requests.append((self.command, self.path))
                is_upload = (self.command == 'PUT'
                             and self.path.rstrip('/').endswith('/file'))
                if is_upload:
                    proxy.uploads_started.set()
                if is_upload and proxy.refuse_upload_status:
                    self._drain()
                    body = b'{"message": "refused by the test proxy"}'
                    self.send_response(proxy.refuse_upload_status)
                    self.send_header('Content-Type', 'application/json')
                    self.send_header('Content-Length', str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ('host', 'connection')}
                body = self._body()
                if body is not None and not isinstance(body, bytes):
                    headers.pop('Content-Length', None)
                    headers['Transfer-Encoding'] = 'chunked'
                conn = http.client.HTTPConnection(proxy.target_host,
                                                  proxy.target_port, timeout=300)
                conn.request(self.command, self.path, body=body, headers=headers,
                             encode_chunked=body is not None
                             and not isinstance(body, bytes))
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in ('transfer-encoding', 'connection',
                                           'content-length'):
                        self.send_header(key, value)
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            def _drain(self):
                body = self._body()
                if body is not None and not isinstance(body, bytes):
                    for _ in body:
                        pass

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.server.daemon_threads = True
        self.url = 'http://127.0.0.1:%d' % self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
