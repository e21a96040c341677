"""Small HTTP helpers shared by the handlers."""

import json

import webob

from nova_snapshot.api import auth
from nova_snapshot.api import microversion
from nova_snapshot.api import request_body
from nova_snapshot.api import validation

CONF_KEY = 'nova_snapshot.conf'
COMPUTE_API_KEY = 'nova_snapshot.compute_api'


def context(req):
    return auth.get_context(req)


def conf(req):
    return req.environ[CONF_KEY]


def compute_api(req):
    return req.environ[COMPUTE_API_KEY]


def version(req):
    return microversion.get(req)


def extract_json(req):
    """Decode a JSON request body (a JSON object within the bounds of
    ``request_body``); 400 (Nova's message) when it is not one."""
    return request_body.parse(req.body)


def json_response(req, body, status=200, schema=None):
    """A JSON response; ``schema`` checks it per [api] response_validation."""
    if schema is not None:
        validation.validate_response(conf(req), body, schema)
    response = webob.Response(status=status, charset='utf-8',
                              content_type='application/json')
    response.text = json.dumps(body)
    return response


def empty_response(status):
    response = webob.Response(status=status)
    response.content_type = None
    response.body = b''
    return response


_BASE_URL_KEY = 'nova_snapshot.base_url'


def base_url(req):
    """The public endpoint root (scheme://host[:port][script_name]).

    Kept in the environ: a 1000-server list builds 4000 links, and webob
    works the URL out from the headers on every call.
    """
    url = req.environ.get(_BASE_URL_KEY)
    if url is None:
        url = req.environ[_BASE_URL_KEY] = req.application_url.rstrip('/')
    return url


def link(req, *parts):
    return '/'.join([base_url(req), 'v2.1'] + [str(p) for p in parts])


def bookmark(req, *parts):
    return '/'.join([base_url(req)] + [str(p) for p in parts])


def links(req, collection, identifier):
    return [
        {'rel': 'self', 'href': link(req, collection, identifier)},
        {'rel': 'bookmark', 'href': bookmark(req, collection, identifier)},
    ]
