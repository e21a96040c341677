"""A stand-in for keystonemiddleware's auth_token in in-process tests.

Keystone would validate a token and tell who it belongs to; here the token
*is* the answer: ``user:project`` (roles as in no-auth mode: ``admin`` is an
admin, anybody else member and reader) or ``user:project:role1,role2``
(exactly those roles; ``user:project:`` has none). Like the real
middleware it first removes every identity header the client sent, then
sets them from the token, so the API's own KeystoneContext builds the
context exactly as in production.
"""

import webob.dec

from nova_snapshot.api import auth

WWW_AUTHENTICATE = 'Keystone uri="http://keystone.test/v3"'
CATALOG = ('[{"type": "image", "name": "glance", "endpoints": '
           '[{"region": "RegionOne", "publicURL": "http://glance.test:9292"'
           '}]}]')


def parse_token(token):
    """(user, project, roles) of a test token, or None when invalid."""
    parts = token.split(':')
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        return None
    user, project = parts[0], parts[1]
    if len(parts) == 3:
        roles = [r.strip() for r in parts[2].split(',') if r.strip()]
    else:
        roles = list(auth.ADMIN_ROLES if user == 'admin'
                     else auth.USER_ROLES)
    return user, project, roles


def token(user, project, roles=None):
    """The test token of ``user`` in ``project`` with ``roles`` (a list,
    or a comma-separated string; None for the no-auth defaults)."""
    if roles is None:
        return '%s:%s' % (user, project)
    if not isinstance(roles, str):
        roles = ','.join(roles)
    return '%s:%s:%s' % (user, project, roles)


class FakeAuthToken:

    def __init__(self, application):
        self.application = application

    @webob.dec.wsgify
    def __call__(self, req):
        auth.strip_identity_headers(req.environ)
        identity = parse_token(req.headers.get('X-Auth-Token', ''))
        if identity is None:
            response = webob.Response(status=401, json_body={'error': {
                'code': 401, 'title': 'Unauthorized',
                'message': 'The request you have made requires '
                           'authentication.'}})
            response.headers['WWW-Authenticate'] = WWW_AUTHENTICATE
            return response
        user, project, roles = identity
        req.headers['X-Identity-Status'] = 'Confirmed'
        req.headers['X-User-Id'] = user
        req.headers['X-Project-Id'] = project
        req.headers['X-Roles'] = ','.join(roles)
        req.headers['X-Service-Catalog'] = CATALOG
        return req.get_response(self.application)
