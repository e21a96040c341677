"""``nova-snapshot-compute --config-file ...``: one compute host."""

import signal
import sys
import threading

from oslo_config import cfg
from oslo_log import log as logging

from nova_snapshot import cmd
from nova_snapshot import conf as ns_conf
from nova_snapshot import rpc
from nova_snapshot import service

LOG = logging.getLogger(__name__)
PROG = 'nova-snapshot-compute'


def build_conf(argv):
    conf = cfg.ConfigOpts()
    ns_conf.register_opts(conf)
    rpc.register_opts(conf)
    # Log options include command-line ones, which must exist before the
    # arguments are parsed.
    logging.register_options(conf)
    conf(argv, project='nova-snapshot', prog=PROG)
    return conf


def wait_for_stop_signal():
    """Block until SIGTERM or SIGINT (call from the main thread)."""
    stop = threading.Event()

    def _on_signal(signum, _frame):
        LOG.info('Signal %d received, stopping', signum)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    # Wake up now and then: the signal handler runs in this thread.
    while not stop.wait(1):
        pass


def main(argv=None):
    conf = build_conf(sys.argv[1:] if argv is None else argv)
    logging.setup(conf, 'nova-snapshot')
    cmd.require_transport(conf, PROG)
    compute = service.ComputeService(conf)
    compute.start()
    wait_for_stop_signal()
    compute.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
