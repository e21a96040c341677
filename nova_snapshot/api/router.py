"""The route table and the dispatcher.

``ROUTES`` maps a URL template to {HTTP method: handler}; it is the only
place a URL is bound to code, and ``tests/unit/test_policy_routes.py`` walks
it to prove that every route checks policy. Unknown URLs are 404, known
URLs with another method 405 with an ``Allow`` header. Handlers take the
request plus the template's path arguments and return a webob Response;
exceptions are turned into Nova's fault bodies here.

``/v2.1/{project_id}/...`` (the pre-2.18 URL form some service catalogs
still carry) is accepted when the project matches the caller's.
"""

import re

import webob.dec

from nova_snapshot.api import auth
from nova_snapshot.api import faults
from nova_snapshot.api.handlers import flavors
from nova_snapshot.api.handlers import image_metadata
from nova_snapshot.api.handlers import images
from nova_snapshot.api.handlers import instance_actions
from nova_snapshot.api.handlers import keypairs
from nova_snapshot.api.handlers import server_actions
from nova_snapshot.api.handlers import server_external_events
from nova_snapshot.api.handlers import servers
from nova_snapshot.api.handlers import services
from nova_snapshot.api.handlers import versions
from nova_snapshot.api.handlers import volume_attachments
from nova_snapshot.api import util

ROUTES = {
    '/': {'GET': versions.index},
    '/v2.1': {'GET': versions.show},
    '/v2.1/servers': {'GET': servers.index, 'POST': servers.create},
    # os-services: PUT /os-services/{enable,disable,...} below 2.53,
    # PUT and DELETE /os-services/{service uuid} from 2.53.
    '/v2.1/os-services': {'GET': services.index},
    '/v2.1/os-services/{service_id}': {'PUT': services.update,
                                       'DELETE': services.delete},
    '/v2.1/servers/detail': {'GET': servers.detail},
    '/v2.1/servers/{server_id}': {'GET': servers.show,
                                  'PUT': servers.update,
                                  'DELETE': servers.delete},
    '/v2.1/servers/{server_id}/action': {'POST': server_actions.action},
    '/v2.1/servers/{server_id}/os-instance-actions': {
        'GET': instance_actions.index},
    '/v2.1/servers/{server_id}/os-instance-actions/{request_id}': {
        'GET': instance_actions.show},
    '/v2.1/servers/{server_id}/os-volume_attachments': {
        'GET': volume_attachments.index, 'POST': volume_attachments.create},
    '/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}': {
        'GET': volume_attachments.show, 'PUT': volume_attachments.update,
        'DELETE': volume_attachments.delete},
    '/v2.1/os-keypairs': {'GET': keypairs.index, 'POST': keypairs.create},
    '/v2.1/os-keypairs/{keypair_name}': {'GET': keypairs.show,
                                         'DELETE': keypairs.delete},
    # Sent by Cinder and Neutron (service role or admin), not by users.
    '/v2.1/os-server-external-events': {
        'POST': server_external_events.create},
    '/v2.1/flavors': {'GET': flavors.index},
    '/v2.1/flavors/detail': {'GET': flavors.detail},
    '/v2.1/flavors/{flavor_id}': {'GET': flavors.show},
    # The compute images proxy (below 2.36; metadata below 2.39).
    '/v2.1/images': {'GET': images.index},
    '/v2.1/images/detail': {'GET': images.detail},
    '/v2.1/images/{image_id}': {'GET': images.show,
                                'DELETE': images.delete},
    '/v2.1/images/{image_id}/metadata': {
        'GET': image_metadata.index, 'POST': image_metadata.create,
        'PUT': image_metadata.update_all},
    '/v2.1/images/{image_id}/metadata/{key}': {
        'GET': image_metadata.show, 'PUT': image_metadata.update,
        'DELETE': image_metadata.delete},
}

# Routes served without a policy check: the version documents, which tell
# clients what they may ask for (Nova serves "/" without even a token).
UNPOLICED_ROUTES = frozenset(['/', '/v2.1'])
# Routes served before authentication.
UNAUTHENTICATED_ROUTES = frozenset(['/'])

_PARAM = re.compile(r'\{(\w+)\}')
# Top-level collections under /v2.1; any other first segment may be a
# project id.
_COLLECTIONS = frozenset(['servers', 'flavors', 'images', 'os-services',
                          'os-keypairs', 'os-server-external-events'])


def _compile(template):
    pattern = _PARAM.sub(r'(?P<\1>[^/]+)', re.escape(template)
                         .replace(r'\{', '{').replace(r'\}', '}'))
    return re.compile('^%s$' % pattern)


# Literal routes first so /servers/detail never matches /servers/{id}.
_COMPILED = sorted(
    ((_compile(t), t, methods) for t, methods in ROUTES.items()),
    key=lambda item: ('{' in item[1], item[1]))


def match(path):
    """Return (template, methods, path args) or None."""
    if len(path) > 1:
        path = path.rstrip('/')
    for regex, template, methods in _COMPILED:
        found = regex.match(path)
        if found:
            return template, methods, found.groupdict()
    return None


def _strip_project_id(req, path):
    """Map /v2.1/{project_id}/x to /v2.1/x, checking the project."""
    parts = path.split('/')
    if (len(parts) > 3 and parts[1] == 'v2.1'
            and parts[2] not in _COLLECTIONS and parts[3] in _COLLECTIONS):
        project_id = parts[2]
        context = req.environ.get(auth.CONTEXT_KEY)
        if context is None or context.project_id != project_id:
            raise faults.APIFault(
                400, "Malformed request URL: URL's project_id '%s' doesn't "
                     "match Context's project_id '%s'" % (
                         project_id, getattr(context, 'project_id', None)))
        return '/'.join(parts[:2] + parts[3:])
    return path


class Router:
    """The innermost WSGI app: match, dispatch, map exceptions."""

    def __init__(self, conf, compute_api):
        self.conf = conf
        self.compute_api = compute_api

    @webob.dec.wsgify
    def __call__(self, req):
        req.environ[util.CONF_KEY] = self.conf
        req.environ[util.COMPUTE_API_KEY] = self.compute_api
        try:
            path = _strip_project_id(req, req.path_info)
            found = match(path)
            if found is None:
                raise faults.APIFault(404, 'The resource could not be found.')
            template, methods, args = found
            handler = methods.get(req.method)
            if handler is None and path.endswith('/') and len(path) > 1:
                # A trailing slash with a method the collection lacks is
                # an empty id ("DELETE /images/"): Nova finds no such
                # resource (tempest's blank-id tests expect 404).
                raise faults.APIFault(404, 'The resource could not be found.')
            if handler is None:
                allow = ', '.join(sorted(methods))
                raise faults.APIFault(
                    405, 'The method %s is not allowed for this resource.'
                         % req.method, headers={'Allow': allow})
            return handler(req, **args)
        except Exception as exc:  # noqa: BLE001 - mapped to a fault body
            return faults.from_exception(exc)
