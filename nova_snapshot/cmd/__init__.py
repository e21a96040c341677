"""Console programs; what they share."""

import sys

from nova_snapshot import rpc


def require_transport(conf, prog):
    """Exit (status 1, the reason on stderr) when ``prog`` would run on the
    in-memory transport: a split deployment that forgot transport_url."""
    try:
        rpc.check_transport(conf, prog)
    except rpc.TransportURLRequired as exc:
        # stderr, where a service manager's journal picks it up; logging
        # may not be set up to go anywhere yet.
        sys.exit(exc.format_message())
