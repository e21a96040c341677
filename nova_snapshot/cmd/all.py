"""``nova-snapshot-all``: API and compute service in one process.

The embedded single-machine mode: with no ``transport_url`` the API and the
compute service talk over oslo.messaging's in-memory transport, and with the
default ``[database] connection`` the state is a SQLite file. At scale run
``nova-snapshot-api`` and one ``nova-snapshot-compute`` per host instead.
"""

import sys
import threading

from oslo_log import log as logging

from nova_snapshot.api import deploy
from nova_snapshot.cmd import api as api_cmd
from nova_snapshot.cmd import compute as compute_cmd
from nova_snapshot.db import api as db_api
from nova_snapshot import rpc
from nova_snapshot import service

LOG = logging.getLogger(__name__)


def main(argv=None):
    conf = deploy.make_conf(sys.argv[1:] if argv is None else argv)
    logging.setup(conf, 'nova-snapshot')
    # One process, one database file: create the schema if it is new.
    db_api.Database(conf).create_schema()
    # One transport object for both sides: the in-memory driver only
    # delivers within the transport it was created on.
    transport = rpc.get_transport(conf)
    compute = service.ComputeService(conf, transport=transport)
    compute.start()
    app = deploy.loadapp(conf, deploy.build_compute_api(conf, transport))
    server = api_cmd.make_server(conf, app)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    LOG.info('nova-snapshot-all running on host %s', compute.host)
    compute_cmd.wait_for_stop_signal()
    server.shutdown()
    server.server_close()
    compute.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
