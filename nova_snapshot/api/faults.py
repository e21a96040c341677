"""Nova's fault bodies, and the outermost middleware that guarantees one.

Every error leaves the API as ``{"<name>": {"code": N, "message": "..."}}``
with the names Nova uses (``nova/api/openstack/wsgi.py`` ``Fault``); codes
without a name (406 among them) are ``computeFault``, as in Nova.
"""

import json

from oslo_db import exception as db_exc
from oslo_log import log as logging
import sqlalchemy.exc
import webob
import webob.dec

from nova_snapshot import exception

LOG = logging.getLogger(__name__)

FAULT_NAMES = {
    400: 'badRequest',
    401: 'unauthorized',
    403: 'forbidden',
    404: 'itemNotFound',
    405: 'badMethod',
    409: 'conflictingRequest',
    413: 'overLimit',
    415: 'badMediaType',
    429: 'overLimit',
    501: 'notImplemented',
    503: 'serviceUnavailable',
}
DEFAULT_NAME = 'computeFault'
UNEXPECTED = ('Unexpected API Error. Please report this to the operators '
              'with the request id and attach the nova-snapshot-api log.')


class APIFault(Exception):
    """An HTTP error to send in Nova's fault format."""

    def __init__(self, code, message, headers=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers or {}

    def response(self):
        return fault_response(self.code, self.message, self.headers)


def fault_response(code, message, headers=None):
    name = FAULT_NAMES.get(code, DEFAULT_NAME)
    body = {name: {'code': code, 'message': message}}
    response = webob.Response(status=code, charset='utf-8',
                              content_type='application/json')
    response.text = json.dumps(body)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def from_exception(exc):
    """Turn an exception raised by a handler into a fault response.

    Our exceptions carry ``code``; 4xx ones are the client's fault and keep
    their message. Anything else is a bug or an outage: log it with the
    traceback and tell the client only that it happened.
    """
    if isinstance(exc, APIFault):
        return exc.response()
    if isinstance(exc, webob.exc.HTTPException) and exc.code < 500:
        return fault_response(exc.code, exc.explanation or exc.title)
    if (isinstance(exc, exception.NovaSnapshotException)
            and 400 <= exc.code < 500):
        return fault_response(exc.code, exc.format_message())
    if isinstance(exc, exception.ServiceUnavailable):
        return unavailable_response(exc)
    if isinstance(exc, (db_exc.DBConnectionError,
                        sqlalchemy.exc.OperationalError)):
        # The database restarting or unreachable, after oslo.db's own
        # retries: an outage, as a silent Glance is. (oslo.db wraps what
        # a statement raises; a refused new connection at pool checkout
        # comes as SQLAlchemy's OperationalError.)
        LOG.error('Database unavailable: %s', exc)
        return fault_response(503, 'The database is unavailable; try '
                                   'again later.')
    LOG.exception('Unexpected error handling an API request')
    return fault_response(500, '%s\n%s' % (UNEXPECTED, type(exc)))


# What a 503 names; the exception's own message (endpoints, client
# errors) goes to the log only.
_UNAVAILABLE_SERVICES = (
    (exception.GlanceConnectionFailed, 'The image service'),
    (exception.CinderConnectionFailed, 'The block storage service'),
    (exception.ComputeServiceUnavailable, 'The compute service'),
    (exception.HypervisorUnavailable, "The hypervisor of the server's host"),
)


def unavailable_response(exc):
    """Glance, Cinder or a compute service did not answer in time: an
    outage the client may retry after, not a bug (503, no traceback)."""
    LOG.error('Dependency unavailable: %s', exc.format_message())
    service = 'A service this request needs'
    for cls, name in _UNAVAILABLE_SERVICES:
        if isinstance(exc, cls):
            service = name
            break
    return fault_response(503, '%s is unavailable; try again later.'
                          % service)


class FaultWrapper:
    """Outermost middleware: no exception ever escapes as a traceback."""

    def __init__(self, application):
        self.application = application

    @webob.dec.wsgify
    def __call__(self, req):
        try:
            return req.get_response(self.application)
        except Exception as exc:  # noqa: BLE001 - the point of this layer
            return from_exception(exc)
