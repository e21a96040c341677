"""Block storage (Cinder) client side."""

import logging

LOG = logging.getLogger(__name__)


def build_volume_api(conf):
    """The CinderAPI from ``[cinder]``, or None when it cannot be made.

    A deployment without Cinder still serves image-backed servers; asking
    for a volume then answers a clear 400 instead of failing at start-up.
    """
    try:
        from nova_snapshot.volume import cinder
        return cinder.CinderAPI(conf)
    except Exception:
        LOG.warning('No Cinder client: volume-backed servers are not '
                    'available', exc_info=True)
        return None
