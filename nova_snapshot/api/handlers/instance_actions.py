"""GET /servers/{server_id}/os-instance-actions[/{request_id}]."""

from nova_snapshot.api import faults
from nova_snapshot.api.handlers import servers
from nova_snapshot.api import util
from nova_snapshot.api import views
from nova_snapshot import exception
from nova_snapshot.policies import instance_actions as policies

_ACTION_KEYS = ('action', 'instance_uuid', 'request_id', 'user_id',
                'project_id', 'message')
_EVENT_KEYS = ('event', 'result', 'traceback')


def _action(action):
    body = {key: action.get(key) for key in _ACTION_KEYS}
    body['start_time'] = views.precise_time(action.get('start_time'))
    return body


def _event(event):
    body = {key: event.get(key) for key in _EVENT_KEYS}
    body['start_time'] = views.precise_time(event.get('start_time'))
    body['finish_time'] = views.precise_time(event.get('finish_time'))
    return body


def index(req, server_id):
    context = util.context(req)
    instance = servers.load_server(req, server_id)
    context.can(policies.LIST, target={'project_id': instance['project_id']})
    actions = util.compute_api(req).get_instance_actions(context, instance)
    return util.json_response(
        req, {'instanceActions': [_action(a) for a in actions]})


def show(req, server_id, request_id):
    context = util.context(req)
    instance = servers.load_server(req, server_id)
    target = {'project_id': instance['project_id']}
    context.can(policies.SHOW, target=target)
    try:
        action = util.compute_api(req).get_instance_action(
            context, instance, request_id)
    except exception.NotFound:
        action = None
    if action is None:
        raise faults.APIFault(404, 'Action %s not found' % request_id)
    body = _action(action)
    # Below 2.51 Nova shows the events only to callers passing this rule.
    if context.can(policies.EVENTS, target=target, fatal=False):
        body['events'] = [_event(e) for e in action.get('events') or []]
    return util.json_response(req, {'instanceAction': body})
