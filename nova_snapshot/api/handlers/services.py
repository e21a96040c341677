"""/os-services: list, enable/disable/force down, delete.

Below 2.53 a service is named by host and binary in the body of
PUT /os-services/{action} and its id is the integer row id; from 2.53 its
id is a UUID, PUT /os-services/{uuid} takes status, disabled_reason and
forced_down, and DELETE takes the UUID (Nova's microversion 2.53).
"""

import uuid

from oslo_utils import uuidutils

from nova_snapshot.api import faults
from nova_snapshot.api.schemas import services as schema
from nova_snapshot.api import util
from nova_snapshot.api import validation
from nova_snapshot.api import views
from nova_snapshot.compute import host_api as compute_host_api
from nova_snapshot import exception
from nova_snapshot.policies import services as policies

FORCE_DOWN_VERSION = (2, 11)
UUID_VERSION = (2, 53)
# The services table has no uuid column: a service's UUID (2.53) is
# derived from its host and binary, which name it uniquely. It is stable
# for as long as the service exists.
_SERVICE_UUID_NAMESPACE = uuid.UUID('0b8f3e57-4d0c-4f5e-8d6e-3f1f2a9c7b11')


def service_uuid(service):
    return str(uuid.uuid5(_SERVICE_UUID_NAMESPACE, '%s/%s' % (
        service['host'], service['binary'])))


def _host_api(req):
    return compute_host_api.HostAPI(util.conf(req),
                                    util.compute_api(req).db)


def _view(req, service):
    body = {
        'id': (service_uuid(service) if util.version(req).matches(
            UUID_VERSION) else service['id']),
        'binary': service['binary'],
        'host': service['host'],
        'zone': service['zone'],
        'status': 'disabled' if service['disabled'] else 'enabled',
        'state': 'up' if service['up'] else 'down',
        'updated_at': views.precise_time(service.get('updated_at')),
        'disabled_reason': service.get('disabled_reason'),
    }
    if util.version(req).matches(FORCE_DOWN_VERSION):
        body['forced_down'] = bool(service.get('forced_down'))
    return body


def index(req):
    context = util.context(req)
    context.can(policies.LIST, target={})
    if util.version(req).matches((2, 75)):
        validation.validate_query(req.GET.dict_of_lists(),
                                  schema.INDEX_QUERY_V275)
    services = _host_api(req).service_get_all(
        host=req.GET.get('host'), binary=req.GET.get('binary'))
    return util.json_response(
        req, {'services': [_view(req, s) for s in services]},
        schema=schema.INDEX_RESPONSE)


def _enable(body):
    return {'disabled': False, 'disabled_reason': None}, {
        'status': 'enabled'}


def _disable(body):
    return {'disabled': True, 'disabled_reason': None}, {
        'status': 'disabled'}


def _disable_log_reason(body):
    reason = body['disabled_reason']
    return {'disabled': True, 'disabled_reason': reason}, {
        'status': 'disabled', 'disabled_reason': reason}


def _force_down(body):
    return {'forced_down': body['forced_down']}, {
        'forced_down': body['forced_down']}


# action -> (request schema, values and response fields, first version)
ACTIONS = {
    'enable': (schema.ENABLE, _enable, None),
    'disable': (schema.DISABLE, _disable, None),
    'disable-log-reason': (schema.DISABLE_LOG_REASON, _disable_log_reason,
                           None),
    'force-down': (schema.FORCE_DOWN, _force_down, FORCE_DOWN_VERSION),
}


def _by_uuid(req, service_id):
    """The service whose UUID this is: 400 for a malformed one, 404 for
    an unknown one (Nova's answers)."""
    if not uuidutils.is_uuid_like(service_id):
        raise faults.APIFault(400, 'Invalid uuid %s' % service_id)
    for service in _host_api(req).service_get_all():
        if service_uuid(service) == service_id:
            return service
    raise faults.APIFault(404, 'Service %s could not be found.'
                          % service_id)


def _update_v253(req, service_id):
    body = util.extract_json(req)
    validation.validate(body, schema.UPDATE_V253)
    service = _by_uuid(req, service_id)
    values = {}
    if body.get('status') == 'enabled':
        if body.get('disabled_reason'):
            raise faults.APIFault(400, "Specifying 'disabled_reason' with "
                                       "status 'enabled' is invalid.")
        values.update(disabled=False, disabled_reason=None)
    elif body.get('status') == 'disabled':
        values.update(disabled=True,
                      disabled_reason=body.get('disabled_reason'))
    if 'forced_down' in body:
        values['forced_down'] = body['forced_down']
    if not values:
        raise faults.APIFault(400, "No updates were requested. Fields "
                                   "'status' or 'forced_down' should be "
                                   "specified.")
    updated = _host_api(req).service_update_by_host_and_binary(
        service['host'], service['binary'], values)
    view = _view(req, updated)
    view['forced_down'] = bool(updated.get('forced_down'))
    return util.json_response(req, {'service': view},
                              schema=schema.SHOW_RESPONSE_V253)


def update(req, service_id):
    """PUT /os-services/{action} below 2.53, /os-services/{uuid} from
    2.53."""
    context = util.context(req)
    context.can(policies.UPDATE, target={})
    if util.version(req).matches(UUID_VERSION):
        return _update_v253(req, service_id)
    found = ACTIONS.get(service_id)
    if found is None or (found[2] is not None and
                         not util.version(req).matches(found[2])):
        raise faults.APIFault(404, 'Unknown action')
    request_schema, convert, _version = found
    body = util.extract_json(req)
    validation.validate(body, request_schema)
    values, shown = convert(body)
    _host_api(req).service_update_by_host_and_binary(
        body['host'], body['binary'], values)
    response = {'host': body['host'], 'binary': body['binary']}
    response.update(shown)
    return util.json_response(req, {'service': response},
                              schema=schema.UPDATE_RESPONSE)


def delete(req, service_id):
    context = util.context(req)
    context.can(policies.DELETE, target={})
    if util.version(req).matches(UUID_VERSION):
        service_id = _by_uuid(req, service_id)['id']
    try:
        service_id = int(service_id)
    except ValueError:
        raise faults.APIFault(
            400, 'Invalid input received: id must be an integer')
    if not 0 < service_id < 2 ** 31:
        # Out of the column's range: no such row (never a DB error).
        raise exception.ServiceNotFound(service_id=service_id)
    _host_api(req).service_delete(service_id)
    return util.empty_response(204)
