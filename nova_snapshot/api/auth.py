"""Who is calling: build the RequestContext for a request.

Two strategies (``[api] auth_strategy``):

* ``noauth`` (development and tests): ``X-Auth-Token: user:project``. The
  user named ``admin`` gets the admin role; everybody gets member and
  reader. Only in this mode an ``X-Roles`` header (comma separated, may be
  empty) replaces those roles, so tests can act as any persona, including
  one with no role at all.
* ``keystone``: keystonemiddleware ``auth_token`` validates the token and
  sets the X-User-Id / X-Project-Id / X-Roles headers; ``KeystoneContext``
  turns them into a context.

Either way the context carries the policy enforcer (``context.enforcer``) so
handlers can call ``context.can()`` without a global.
"""

import webob.dec

from nova_snapshot.api import faults
from nova_snapshot import context as nova_context

CONTEXT_KEY = 'nova_snapshot.context'
REQUEST_ID_KEY = 'openstack.request_id'
GLOBAL_REQUEST_ID_KEY = 'openstack.global_request_id'

ADMIN_ROLES = ['admin', 'member', 'reader']
USER_ROLES = ['member', 'reader']


def _unauthorized(message='Authentication required'):
    return faults.fault_response(401, message)


class NoAuthMiddleware:
    """Trust ``X-Auth-Token: user:project`` (never use in production)."""

    def __init__(self, application, enforcer):
        self.application = application
        self.enforcer = enforcer

    @webob.dec.wsgify
    def __call__(self, req):
        token = req.headers.get('X-Auth-Token', '')
        user_id, sep, project_id = token.partition(':')
        if not sep or not user_id or not project_id or ':' in project_id:
            return _unauthorized()
        if 'X-Roles' in req.headers:
            roles = [r.strip() for r in req.headers['X-Roles'].split(',')
                     if r.strip()]
        else:
            roles = list(ADMIN_ROLES if user_id == 'admin' else USER_ROLES)
        req.environ[CONTEXT_KEY] = nova_context.RequestContext(
            user_id=user_id, project_id=project_id, roles=roles,
            is_admin='admin' in roles,
            request_id=req.environ.get(REQUEST_ID_KEY),
            global_request_id=req.environ.get(GLOBAL_REQUEST_ID_KEY),
            auth_token=token, enforcer=self.enforcer)
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
        ctx = nova_context.RequestContext.from_environ(
            req.environ, request_id=req.environ.get(REQUEST_ID_KEY))
        if not ctx.user_id or not ctx.project_id:
            return _unauthorized('A project-scoped token is required')
        ctx.is_admin = 'admin' in ctx.roles
        ctx.enforcer = self.enforcer
        req.environ[CONTEXT_KEY] = ctx
        return req.get_response(self.application)


def get_context(req):
    return req.environ[CONTEXT_KEY]
