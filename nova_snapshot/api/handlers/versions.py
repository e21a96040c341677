"""GET / and GET /v2.1: the version documents (Nova's shapes)."""

from nova_snapshot.api import microversion
from nova_snapshot.api import util

_UPDATED = '2013-07-23T11:33:21Z'  # Nova's fixed date for v2.1


def _v21(req):
    return {
        'id': 'v2.1',
        'status': 'CURRENT',
        'version': str(microversion.MAX_VERSION),
        'min_version': str(microversion.MIN_VERSION),
        'updated': _UPDATED,
        'links': [{'rel': 'self', 'href': util.base_url(req) + '/v2.1/'}],
    }


def index(req):
    return util.json_response(req, {'versions': [_v21(req)]})


def show(req):
    version = _v21(req)
    version['links'].append({'rel': 'describedby', 'type': 'text/html',
                             'href': 'https://docs.openstack.org/'})
    version['media-types'] = [{
        'base': 'application/json',
        'type': 'application/vnd.openstack.compute+json;version=2.1'}]
    return util.json_response(req, {'version': version})
