"""nova-snapshot-api: serve the API with a threaded stdlib server.

For development and tests; production runs ``nova_snapshot.wsgi.api`` under
uWSGI. Listens on ``[api] bind_host``/``bind_port``.
"""

import socketserver
import sys
from wsgiref import simple_server

from oslo_log import log as logging

from nova_snapshot.api import deploy

LOG = logging.getLogger(__name__)


class _ThreadingWSGIServer(socketserver.ThreadingMixIn,
                           simple_server.WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, fmt, *args):
        LOG.info('%s %s', self.address_string(), fmt % args)


def make_server(conf, app):
    """A threaded HTTP server for ``app`` on ``[api] bind_host/bind_port``."""
    server = simple_server.make_server(
        conf.api.bind_host, conf.api.bind_port, app,
        server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    LOG.info('nova-snapshot-api listening on %s:%s', conf.api.bind_host,
             conf.api.bind_port)
    return server


def main(argv=None):
    conf = deploy.make_conf(sys.argv[1:] if argv is None else argv)
    logging.setup(conf, 'nova-snapshot')
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
