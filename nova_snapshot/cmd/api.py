"""nova-snapshot-api: serve the API with the stdlib server, bounded.

For development and tests; production runs ``nova_snapshot.wsgi.api`` under
uWSGI (``etc/nova-snapshot/api-uwsgi.ini``). Listens on ``[api]
bind_host``/``bind_port`` with a listen backlog of ``[api] backlog`` and
``[api] server_threads`` worker threads.

Why bounded: a thread per connection lets 50 clients start 50 threads that
all want a database connection at once (the pool then times out), and the
stdlib's default backlog of 5 makes the kernel drop connections that
arrive in a burst (clients see "Connection reset by peer"). Here the
accept loop takes a connection only when a worker is free; the others wait
in the kernel's backlog, so a burst is queued rather than refused and at
most ``server_threads`` requests use the database at a time.
"""

from concurrent import futures
import sys
import threading
from wsgiref import simple_server

from oslo_log import log as logging

from nova_snapshot.api import deploy
from nova_snapshot import cmd

LOG = logging.getLogger(__name__)
PROG = 'nova-snapshot-api'

# Seconds a connection may stay silent (a client that sends its request
# slowly, or never) before its worker gives up on it: a bounded pool must
# not be held by idle sockets.
CLIENT_SOCKET_TIMEOUT = 60


class BoundedWSGIServer(simple_server.WSGIServer):
    """A WSGI server with a fixed pool of worker threads and a real listen
    backlog; it accepts only as many connections as it has free workers.
    """

    allow_reuse_address = True

    def __init__(self, address, handler_class, threads, backlog):
        # Read by server_activate() for listen(); the stdlib default is 5.
        self.request_queue_size = backlog
        self._free = threading.BoundedSemaphore(threads)
        self._workers = futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix='nova-snapshot-api')
        super().__init__(address, handler_class)

    def process_request(self, request, client_address):
        # Blocks the accept loop while every worker is busy: the next
        # connections wait in the kernel's backlog, not in a queue here.
        self._free.acquire()
        try:
            self._workers.submit(self._serve, request, client_address)
        except RuntimeError:  # shutting down
            self._free.release()
            self.shutdown_request(request)

    def _serve(self, request, client_address):
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._free.release()

    def server_close(self):
        super().server_close()
        self._workers.shutdown(wait=True)


class _RequestHandler(simple_server.WSGIRequestHandler):
    timeout = CLIENT_SOCKET_TIMEOUT

    def log_message(self, fmt, *args):
        LOG.info('%s %s', self.address_string(), fmt % args)


def _warn_if_pool_smaller_than_threads(conf):
    """Each request holds at most one database connection; more threads
    than the pool can lend means requests wait on the pool, and fail
    after [database] pool_timeout."""
    db = conf.database
    if db.connection.startswith('sqlite') or db.max_overflow < 0:
        return False  # no pool to exhaust, or an unbounded one
    capacity = db.max_pool_size + db.max_overflow
    if conf.api.server_threads > capacity:
        LOG.warning('[api] server_threads (%d) exceeds [database] '
                    'max_pool_size + max_overflow (%d): requests may wait '
                    'for a database connection and fail after '
                    'pool_timeout', conf.api.server_threads, capacity)
        return True
    return False


def make_server(conf, app):
    """The bounded server for ``app`` on ``[api] bind_host/bind_port``."""
    _warn_if_pool_smaller_than_threads(conf)
    server = BoundedWSGIServer(
        (conf.api.bind_host, conf.api.bind_port), _RequestHandler,
        threads=conf.api.server_threads, backlog=conf.api.backlog)
    server.set_app(app)
    LOG.info('nova-snapshot-api listening on %s:%s (%d threads, backlog '
             '%d)', conf.api.bind_host, conf.api.bind_port,
             conf.api.server_threads, conf.api.backlog)
    return server


def main(argv=None):
    conf = deploy.make_conf(sys.argv[1:] if argv is None else argv)
    logging.setup(conf, 'nova-snapshot')
    cmd.require_transport(conf, PROG)
    server = make_server(conf, deploy.loadapp(conf))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
