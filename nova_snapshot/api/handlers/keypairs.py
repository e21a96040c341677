"""/os-keypairs: create (import or generate), list, show, delete (Nova's
``keypairs.py``).

A keypair belongs to a user: every route works on the caller's own
keypairs, or, from 2.10, on those of the user an admin names (``user_id``
in the create body or the query; the rule ``os-keypairs:<action>`` with
the target ``{'user_id': ...}``, admin or owner by default, decides).
Another user's keypair is a 403 by that rule when named with
``user_id`` and simply not found (404) otherwise.

By microversion:

* 2.1: create answers 200, delete 202; no ``type`` anywhere;
* 2.2: ``type`` (ssh, x509) on create and in every body; create answers
  201, delete 204;
* 2.10: ``user_id`` (create body, query of list, show, delete);
* 2.35: the list pages by name with ``limit`` and ``marker`` (an unknown
  marker is a 400) and has ``keypairs_links`` when a page is full;
* 2.75: unknown query parameters are a 400;
* 2.92: ``public_key`` is required (no generation, so no ``private_key``
  in the answer) and names may have ``@`` and ``.``.

Without ``public_key`` (below 2.92) a key is generated and its private
key returned once, never stored. An imported key that does not load
(or a certificate that does not parse) is a 400, a duplicate name 409,
more than 100 keypairs for a user 403 (compute/keypairs.py).
"""

from nova_snapshot.api import faults
from nova_snapshot.api.schemas import keypairs as schema
from nova_snapshot.api import util
from nova_snapshot.api import validation
from nova_snapshot.api import views
from nova_snapshot.compute import keypairs as keypair_api
from nova_snapshot.policies import keypairs as policies

TYPE_VERSION = (2, 2)
USER_ID_VERSION = (2, 10)
PAGING_VERSION = (2, 35)
NO_GENERATION_VERSION = (2, 92)

_INDEX_FIELDS = ('name', 'public_key', 'fingerprint')
_CREATE_FIELDS = _INDEX_FIELDS + ('user_id',)


def _api(req):
    return keypair_api.KeypairAPI(util.compute_api(req).db)


def _view(req, keypair, fields):
    body = {field: keypair[field] for field in fields}
    if util.version(req).matches(TYPE_VERSION):
        body['type'] = keypair['type']
    return body


def _query(req, schema):
    """The query string checked against ``schema``: 400 when it is not
    UTF-8 or a value holds a NUL (no database takes one)."""
    try:
        params = req.GET.dict_of_lists()
    except UnicodeDecodeError:
        raise faults.APIFault(400, 'The query string is not valid UTF-8.')
    validation.validate_query(params, schema)
    for key, values in params.items():
        if any('\x00' in value for value in values):
            raise faults.APIFault(
                400, 'Invalid input for query parameters %s. Value: %r. '
                     'NUL characters are not allowed.' % (key, values))


def _name(keypair_name):
    """A name from the URL; one no keypair can have (a NUL, which no
    database takes) is simply not found."""
    if '\x00' in keypair_name:
        raise faults.APIFault(404, 'The resource could not be found.')
    return keypair_name


def _user_id(req, context):
    """The keypairs' user: the query's ``user_id`` (from 2.10; the first
    one, as Nova takes it; an empty one is none) or the caller."""
    user_id = None
    if (util.version(req).matches(USER_ID_VERSION)
            and 'user_id' in req.GET):
        user_id = req.GET.getall('user_id')[0]
    return user_id or context.user_id


def create(req):
    context = util.context(req)
    version = util.version(req)
    body = util.extract_json(req)
    validation.validate(body, schema.create_schema(version))
    params = body['keypair']
    name = params['name'].strip()
    key_type = params.get('type', keypair_api.SSH)
    user_id = params.get('user_id') or context.user_id
    context.can(policies.CREATE, target={'user_id': user_id})
    api = _api(req)
    if 'public_key' in params:
        keypair = api.import_key_pair(user_id, name, params['public_key'],
                                      key_type)
        shown = _view(req, keypair, _CREATE_FIELDS)
    else:
        keypair, private_key = api.create_key_pair(user_id, name, key_type)
        shown = _view(req, keypair, _CREATE_FIELDS)
        shown['private_key'] = private_key
    return util.json_response(
        req, {'keypair': shown},
        status=201 if version.matches(TYPE_VERSION) else 200,
        schema=schema.create_response(version))


def index(req):
    context = util.context(req)
    version = util.version(req)
    _query(req, schema.index_query_schema(version))
    user_id = _user_id(req, context)
    context.can(policies.INDEX, target={'user_id': user_id})
    limit = marker = None
    max_limit = util.conf(req).api.max_limit
    if version.matches(PAGING_VERSION):
        limit = max_limit
        if 'limit' in req.GET:
            limit = min(int(req.GET['limit']), max_limit)
        marker = req.GET.get('marker')
    keypairs = _api(req).get_key_pairs(user_id, limit=limit, marker=marker)
    body = {'keypairs': [{'keypair': _view(req, k, _INDEX_FIELDS)}
                         for k in keypairs]}
    if version.matches(PAGING_VERSION):
        links = views.collection_links(
            req, [{'id': k['name']} for k in keypairs], 'os-keypairs',
            max_limit)
        if links:
            body['keypairs_links'] = links
    return util.json_response(req, body,
                              schema=schema.index_response(version))


def show(req, keypair_name):
    context = util.context(req)
    version = util.version(req)
    _query(req, schema.query_schema(version))
    user_id = _user_id(req, context)
    context.can(policies.SHOW, target={'user_id': user_id})
    keypair = _api(req).get_key_pair(user_id, _name(keypair_name))
    shown = _view(req, keypair, _CREATE_FIELDS + ('id',))
    shown.update({
        'created_at': views.precise_time(keypair['created_at']),
        # Never updated, never soft-deleted (Nova shows the same).
        'updated_at': None,
        'deleted': False,
        'deleted_at': None,
    })
    return util.json_response(req, {'keypair': shown},
                              schema=schema.show_response(version))


def delete(req, keypair_name):
    context = util.context(req)
    version = util.version(req)
    _query(req, schema.query_schema(version))
    user_id = _user_id(req, context)
    context.can(policies.DELETE, target={'user_id': user_id})
    _api(req).delete_key_pair(user_id, _name(keypair_name))
    return util.empty_response(204 if version.matches(TYPE_VERSION)
                               else 202)
