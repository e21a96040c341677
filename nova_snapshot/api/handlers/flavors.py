"""GET /flavors, /flavors/detail, /flavors/{flavor_id}.

The list takes Nova's query parameters (limit, marker, is_public, minRam,
minDisk, sort_key, sort_dir: accepted; the few built-in flavors come back
whole and in id order); from 2.75 any other parameter is a 400, and from
2.102 ``name`` filters by the exact name. The body per version is
views.flavor's.
"""

from nova_snapshot.api import microversion
from nova_snapshot.api import util
from nova_snapshot.api import validation
from nova_snapshot.api import views
from nova_snapshot.compute import flavors
from nova_snapshot.policies import flavors as policies

_STRINGS = {'type': 'array', 'items': {'type': 'string'}}
_KNOWN = ('limit', 'marker', 'is_public', 'minRam', 'minDisk', 'sort_key',
          'sort_dir')
INDEX_QUERY_V275 = {
    'type': 'object',
    'properties': {key: _STRINGS for key in _KNOWN},
    'additionalProperties': False,
}
INDEX_QUERY_V2102 = dict(INDEX_QUERY_V275, properties=dict(
    INDEX_QUERY_V275['properties'], name=_STRINGS))
for _schema in (INDEX_QUERY_V275, INDEX_QUERY_V2102):
    validation.check_schema(_schema)


def _listed(req):
    version = util.version(req)
    params = req.GET.dict_of_lists()
    if version.matches((2, 102)):
        validation.validate_query(params, INDEX_QUERY_V2102)
    elif version.matches((2, 75)):
        validation.validate_query(params, INDEX_QUERY_V275)
    found = flavors.list_flavors()
    if version.matches((2, 102)) and 'name' in params:
        found = [f for f in found if f['name'] == params['name'][-1]]
    return found


def index(req):
    util.context(req).can(policies.INDEX)
    return util.json_response(req, {'flavors': [
        views.flavor_summary(req, f) for f in _listed(req)]})


def detail(req):
    util.context(req).can(policies.INDEX)
    return util.json_response(req, {'flavors': [
        views.flavor(req, f) for f in _listed(req)]})


def show(req, flavor_id):
    microversion.check_no_query(req)
    util.context(req).can(policies.SHOW)
    return util.json_response(
        req, {'flavor': views.flavor(req, flavors.get_flavor(flavor_id))})
