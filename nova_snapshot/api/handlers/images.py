"""/images: Nova's compute images proxy, served below microversion 2.36.

Every call goes to Glance as the caller (``GlanceAPI`` with the request's
context), so Glance decides what the caller sees and may delete; the
policy rules in front only let operators close the proxy. From 2.36 the
routes answer 404, as Nova's do (clients then talk to Glance directly).

Listing passes Nova's filters to Glance under Glance's names (``server``
is the snapshot's ``instance_uuid`` property, ``type`` its ``image_type``,
``changes-since`` an ``updated_at`` lower bound, ``property-<x>`` any
property) with ``limit``, ``page_size`` and ``marker``; a full page gets
an ``images_links`` "next" link.
"""

from nova_snapshot.api import faults
from nova_snapshot.api.schemas import images as schema
from nova_snapshot.api import util
from nova_snapshot.api import views
from nova_snapshot import exception
from nova_snapshot.policies import images as policies

# Nova's MAX_PROXY_API_SUPPORT_VERSION.
PROXY_MAX_VERSION = (2, 35)

# Nova's list filter names -> Glance v2 filters.
_FILTERS = {
    'name': 'name',
    'status': 'status',
    'server': 'instance_uuid',
    'type': 'image_type',
    'minRam': 'min_ram',
    'minDisk': 'min_disk',
}
_PROPERTY_PREFIX = 'property-'
_PAGE_PARAMS = ('limit', 'page_size', 'offset')


def image_api(req):
    """The GlanceAPI the compute API uses, called with the caller's
    context."""
    return util.compute_api(req).image_api


def require_version(req, max_version):
    """Nova answers 404 for a proxy route above its last version."""
    if not util.version(req).matches(None, max_version):
        raise faults.APIFault(404, 'The resource could not be found.')


def _glance_filters(req):
    filters = {}
    for key in set(req.params.keys()):
        value = req.params.get(key)  # the last one, as Nova reads it
        if key in _FILTERS:
            filters[_FILTERS[key]] = value
        elif key == 'changes-since':
            filters['updated_at'] = 'gte:' + value
        elif key.startswith(_PROPERTY_PREFIX) and len(key) > len(
                _PROPERTY_PREFIX):
            filters[key[len(_PROPERTY_PREFIX):]] = value
    if 'instance_uuid' in filters:
        # A server link or a bare id: the id is the last path segment.
        filters['instance_uuid'] = filters['instance_uuid'].rsplit('/', 1)[-1]
    if 'status' in filters:
        filters['status'] = filters['status'].lower()  # Glance's spelling
    return filters


def _page_params(req):
    """limit/page_size/marker for Glance; 400 for a value that is not a
    non-negative integer. 0 and an empty marker mean "not given", and
    ``offset`` is checked but, as in Nova, not passed on."""
    params = {}
    for key in _PAGE_PARAMS:
        if key not in req.params:
            continue
        value = req.params.get(key)
        if not value.isdigit() or not value.isascii() or len(value) > 20:
            raise faults.APIFault(
                400, "Invalid input for query parameters %s. Value: %s. "
                     "'%s' does not match '^[0-9]*$'" % (key, value, value))
        if key != 'offset' and int(value):
            params[key] = int(value)
    if req.params.get('marker'):
        params['marker'] = req.params.get('marker')
    return params


def _list(req, detail):
    require_version(req, PROXY_MAX_VERSION)
    context = util.context(req)
    context.can(policies.INDEX, target={'project_id': context.project_id})
    filters = _glance_filters(req)
    page = _page_params(req)
    api = image_api(req)
    try:
        images = api.get_all(context, filters=filters, **page)
    except exception.Invalid as exc:
        raise faults.APIFault(400, exc.format_message())
    if detail:
        items = [views.image_detail(req, i, api.generate_image_url)
                 for i in images]
        collection, response_schema = 'images/detail', schema.DETAIL_RESPONSE
    else:
        items = [views.image_summary(req, i, api.generate_image_url)
                 for i in images]
        collection, response_schema = 'images', schema.INDEX_RESPONSE
    body = {'images': items}
    links = views.collection_links(req, images, collection,
                                   util.conf(req).api.max_limit)
    if links:
        body['images_links'] = links
    return util.json_response(req, body, schema=response_schema)


def index(req):
    return _list(req, detail=False)


def detail(req):
    return _list(req, detail=True)


def show(req, image_id):
    require_version(req, PROXY_MAX_VERSION)
    context = util.context(req)
    context.can(policies.SHOW, target={'project_id': context.project_id})
    api = image_api(req)
    try:
        image = api.get(context, image_id)
    except exception.ImageNotFound:
        raise faults.APIFault(404, 'Image not found.')
    body = {'image': views.image_detail(req, image, api.generate_image_url)}
    return util.json_response(req, body, schema=schema.SHOW_RESPONSE)


def delete(req, image_id):
    require_version(req, PROXY_MAX_VERSION)
    context = util.context(req)
    context.can(policies.DELETE, target={'project_id': context.project_id})
    try:
        image_api(req).delete(context, image_id)
    except exception.ImageNotFound:
        raise faults.APIFault(404, 'Image not found.')
    except exception.ImageNotAuthorized:
        # Glance's 403: another project's image, or a protected one.
        raise faults.APIFault(403, 'You are not allowed to delete the image.')
    return util.empty_response(204)
