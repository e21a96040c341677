"""Who is calling: build the RequestContext for a request.

One :class:`KeystoneContext` turns the identity headers that
keystonemiddleware sets (X-Identity-Status, X-User-Id, X-Project-Id,
X-Roles, X-Service-Catalog) into the context, whatever the strategy
(``[api] auth_strategy``):

* ``keystone`` (default): keystonemiddleware ``auth_token`` validates the
  token, removes any identity header the client sent and sets them from the
  token.
* ``noauth`` (development only): :class:`NoAuthMiddleware` does the same
  from an ``X-Auth-Token: user:project``, as placement's no-auth mode does:
  it removes every identity header the client sent and writes the ones
  keystonemiddleware would, with the admin role for the user ``admin`` and
  member and reader for everybody else. A client can never choose its roles.

Either way the context carries the policy enforcer (``context.enforcer``) so
handlers can call ``context.can()`` without a global.
"""

from oslo_serialization import jsonutils
import webob.dec

from nova_snapshot.api import faults
from nova_snapshot import context as nova_context

CONTEXT_KEY = 'nova_snapshot.context'
REQUEST_ID_KEY = 'openstack.request_id'
GLOBAL_REQUEST_ID_KEY = 'openstack.global_request_id'

ADMIN_ROLES = ['admin', 'member', 'reader']
USER_ROLES = ['member', 'reader']

# WSGI environ prefixes of the headers an authentication middleware sets:
# a client sending any of them must not be believed.
IDENTITY_ENVIRON_PREFIXES = (
    'HTTP_X_IDENTITY_STATUS', 'HTTP_X_USER', 'HTTP_X_PROJECT',
    'HTTP_X_TENANT', 'HTTP_X_ROLE', 'HTTP_X_SERVICE_', 'HTTP_X_DOMAIN',
    'HTTP_X_IS_ADMIN_PROJECT', 'HTTP_X_SYSTEM_SCOPE',
    'HTTP_OPENSTACK_SYSTEM_SCOPE', 'HTTP_X_APP_CRED', 'HTTP_X_TRUST',
)


def _unauthorized(message='Authentication required'):
    return faults.fault_response(401, message)


def strip_identity_headers(environ):
    """Remove every identity header the client sent."""
    for key in [k for k in environ
                if k.startswith(IDENTITY_ENVIRON_PREFIXES)]:
        del environ[key]


class NoAuthMiddleware:
    """Fake keystonemiddleware from ``X-Auth-Token: user:project``.

    Never use in production: the token is not checked against anything.
    """

    def __init__(self, application):
        self.application = application

    @webob.dec.wsgify
    def __call__(self, req):
        strip_identity_headers(req.environ)
        token = req.headers.get('X-Auth-Token', '')
        user_id, sep, project_id = token.partition(':')
        if not sep or not user_id or not project_id or ':' in project_id:
            return _unauthorized()
        roles = ADMIN_ROLES if user_id == 'admin' else USER_ROLES
        req.headers['X-Identity-Status'] = 'Confirmed'
        req.headers['X-User-Id'] = user_id
        req.headers['X-Project-Id'] = project_id
        req.headers['X-Roles'] = ','.join(roles)
        return req.get_response(self.application)


class KeystoneContext:
    """Build the context from the headers keystonemiddleware has set."""

    def __init__(self, application, enforcer):
        self.application = application
        self.enforcer = enforcer

    @webob.dec.wsgify
    def __call__(self, req):
        if req.headers.get('X-Identity-Status', '').lower() != 'confirmed':
            return _unauthorized()
        catalog = None
        if req.headers.get('X-Service-Catalog'):
            try:
                catalog = jsonutils.loads(req.headers['X-Service-Catalog'])
            except ValueError:
                return faults.fault_response(
                    500, 'Invalid service catalog json.')
        ctx = nova_context.RequestContext.from_environ(
            req.environ, request_id=req.environ.get(REQUEST_ID_KEY),
            service_catalog=catalog)
        if not ctx.user_id or not ctx.project_id:
            return _unauthorized('A project-scoped token is required')
        ctx.is_admin = 'admin' in ctx.roles
        ctx.enforcer = self.enforcer
        req.environ[CONTEXT_KEY] = ctx
        return req.get_response(self.application)


def get_context(req):
    return req.environ[CONTEXT_KEY]
