"""/os-services: list, enable/disable/force down, delete (Nova's API below
2.53, where the service is named by host and binary in the body and the
id is the integer row id)."""

from nova_snapshot.api import faults
from nova_snapshot.api.schemas import services as schema
from nova_snapshot.api import util
from nova_snapshot.api import validation
from nova_snapshot.api import views
from nova_snapshot.compute import host_api as compute_host_api
from nova_snapshot import exception
from nova_snapshot.policies import services as policies

FORCE_DOWN_VERSION = (2, 11)


def _host_api(req):
    return compute_host_api.HostAPI(util.conf(req),
                                    util.compute_api(req).db)


def _view(req, service):
    body = {
        'id': service['id'],
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


def update(req, service_id):
    """PUT /os-services/{action}: ``service_id`` is the action's name
    below 2.53 (the only form this API's microversions reach)."""
    context = util.context(req)
    context.can(policies.UPDATE, target={})
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
