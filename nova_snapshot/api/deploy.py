"""Build the API WSGI application from a ConfigOpts (no paste).

From the outside in::

    FaultWrapper       anything unexpected -> logged 500 computeFault
    RequestId          x-openstack-request-id / x-compute-request-id
    BodySizeLimit      oslo.middleware sizelimit: a body over
                       [oslo_middleware] max_request_body_size is 413
    (GET / only)       -> Microversion -> Router, without authentication
    auth               keystonemiddleware (or noauth) + KeystoneContext
    Microversion       parse the version, echo it on every response
    Router             route table -> handlers -> ComputeAPI

The request id sits outside auth so even a 401 carries one; the fault
wrapper is outermost so not even middleware can leak a traceback. The body
size limit sits before auth, as in Nova's pipeline: an oversized body is
refused before anything reads it, token validation included.
"""

from oslo_config import cfg
from oslo_log import log as logging
from oslo_middleware import request_id
from oslo_middleware import sizelimit
import webob.dec

from nova_snapshot.api import auth
from nova_snapshot.api import faults
from nova_snapshot.api import microversion
from nova_snapshot.api import router
from nova_snapshot import conf as nova_conf
from nova_snapshot import policy

LOG = logging.getLogger(__name__)


class ComputeRequestId(request_id.RequestId):
    """Nova returns the request id in x-compute-request-id as well."""

    compat_headers = ['x-compute-request-id']


class BodySizeLimit:
    """oslo.middleware's RequestBodySizeLimiter, answering in Nova's format.

    The limiter refuses a Content-Length over the limit before reading
    anything, and wraps a body without one (chunked, from a server that
    de-chunks) in a reader that raises once the limit is passed; the
    handler reading it turns that into the same 413. Nova's pipeline lets the limiter answer with
    webob's own error page; here the 413 is the ``overLimit`` fault body
    every other error has (novaclient and openstacksdk read both forms).
    """

    def __init__(self, application, conf):
        self.limiter = sizelimit.RequestBodySizeLimiter(application, conf)
        self.conf = conf

    @webob.dec.wsgify
    def __call__(self, req):
        if req.content_length is None and not req.is_body_readable:
            # No length, and a server that does not say it ends the input
            # (wsgi.input_terminated: it de-chunks and signals EOF): HTTP
            # says there is no body, and reading the raw input would wait
            # for the client to close (wsgiref hands over the socket).
            # Without this the limiter would mark any such input readable.
            # uWSGI's http-socket and wsgiref both leave chunked bodies
            # undecoded, so a chunked body is an empty one under either.
            req.content_length = 0
        response = req.get_response(self.limiter)
        if (response.status_int == 413
                and response.content_type != 'application/json'):
            # The limiter's own answer (a Content-Length over the limit).
            return faults.fault_response(413, too_large_message(self.conf))
        return response


def too_large_message(conf):
    return ('Request is too large: the body is larger than '
            '[oslo_middleware] max_request_body_size (%d bytes).'
            % conf.oslo_middleware.max_request_body_size)


class _RootSplit:
    """Send the unauthenticated routes around the auth middleware."""

    def __init__(self, open_app, authed_app):
        self.open_app = open_app
        self.authed_app = authed_app

    @webob.dec.wsgify
    def __call__(self, req):
        if (req.path_info or '/') in router.UNAUTHENTICATED_ROUTES:
            return req.get_response(self.open_app)
        return req.get_response(self.authed_app)


def make_conf(args=None, default_config_files=None):
    """A ConfigOpts with our options, oslo.log's and oslo.messaging's."""
    from nova_snapshot import rpc  # only the real stack needs messaging

    conf = cfg.ConfigOpts()
    nova_conf.register_opts(conf)
    logging.register_options(conf)
    rpc.register_opts(conf)
    conf(args if args is not None else [], project='nova-snapshot',
         default_config_files=default_config_files)
    return conf


def build_compute_api(conf, transport=None):
    """The real ComputeAPI: SQL database, Glance, RPC over the transport.

    :param transport: an oslo.messaging transport to share (the all-in-one
        process shares its in-memory one with the compute service).
    """
    from nova_snapshot.compute import api as compute_api
    from nova_snapshot.compute import rpcapi
    from nova_snapshot.db import api as db_api
    from nova_snapshot.image import glance
    from nova_snapshot import rpc

    from nova_snapshot import volume

    transport = transport or rpc.get_transport(conf)
    return compute_api.ComputeAPI(
        conf, db_api.Database(conf), glance.GlanceAPI(conf),
        rpcapi.ComputeRPCAPI(transport),
        volume_api=volume.build_volume_api(conf))


def _auth_middleware(conf, application, enforcer, auth_protocol=None):
    """keystonemiddleware (or, explicitly, the no-auth stand-in) in front
    of the one KeystoneContext that builds the request context."""
    context_app = auth.KeystoneContext(application, enforcer)
    if conf.api.auth_strategy == 'noauth':
        LOG.warning('[api] auth_strategy = noauth: requests are NOT '
                    'authenticated (X-Auth-Token "user:project" is '
                    'trusted). For development and tests only.')
        return auth.NoAuthMiddleware(context_app)
    if auth_protocol is None:
        from keystonemiddleware import auth_token

        set_keystone_authtoken_defaults(conf)

        def auth_protocol(app):
            return _IdentityUnavailable(auth_token.AuthProtocol(
                app, {'oslo_config_config': conf}))
    return auth_protocol(context_app)


class _IdentityUnavailable:
    """Keystone unreachable or silent past the timeout is a 503 fault: the
    client may retry, and no traceback class leaks into a 500."""

    def __init__(self, application):
        self.application = application

    @webob.dec.wsgify
    def __call__(self, req):
        from keystoneauth1 import exceptions as ksa_exc

        try:
            return req.get_response(self.application)
        except ksa_exc.ConnectionError as exc:
            LOG.error('Cannot validate the token: Keystone unreachable: %s',
                      exc)
            return faults.fault_response(
                503, 'The identity service is not available; try again '
                     'later.')


# Seconds keystonemiddleware waits to connect to, or hear from, Keystone.
KEYSTONE_AUTHTOKEN_TIMEOUT = 30


def set_keystone_authtoken_defaults(conf):
    """keystonemiddleware has no timeout by default: a Keystone that accepts
    and never answers would hold an API thread for good. Give
    ``[keystone_authtoken] http_connect_timeout`` (connect and read) a
    default; a value in the config file still wins."""
    from keystonemiddleware import opts as ksm_opts

    for group, options in ksm_opts.list_auth_token_opts():
        conf.register_opts(options, group=group)
    conf.set_default('http_connect_timeout', KEYSTONE_AUTHTOKEN_TIMEOUT,
                     group='keystone_authtoken')


def loadapp(conf, compute_api=None, enforcer=None, auth_protocol=None):
    """Return the WSGI application.

    :param compute_api: the ComputeAPI to call; built from ``conf`` when
        None (tests pass their own).
    :param enforcer: a ``policy.Enforcer``; built from ``conf`` when None.
    :param auth_protocol: ``callable(app)`` returning the token-validating
        middleware of keystone mode; keystonemiddleware's ``auth_token``
        when None (in-process tests pass a stand-in for Keystone).
    """
    if compute_api is None:
        compute_api = build_compute_api(conf)
    if enforcer is None:
        enforcer = policy.Enforcer(conf)
    app = router.Router(conf, compute_api)
    app = microversion.MicroversionMiddleware(app)
    app = _RootSplit(app, _auth_middleware(conf, app, enforcer,
                                           auth_protocol))
    app = BodySizeLimit(app, conf)
    app = ComputeRequestId(app)
    return faults.FaultWrapper(app)
