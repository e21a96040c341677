"""GET /servers/{server_id}/os-instance-actions[/{request_id}].

Per microversion (api/microversion.py): 2.51 shows events to every reader
of the action (the traceback only with the events policy); 2.58 adds
``updated_at``, paging (limit, marker: a request id) and changes-since;
2.62 ``hostId`` (and ``host`` with the events policy) on events; 2.66
changes-before; 2.84 ``details`` on events (with the events policy).
From 2.21 the actions of a deleted server are shown too (its project's, as
for a live one: another project's deleted server is a 404, as Nova).
"""

from urllib import parse

from oslo_utils import timeutils

from nova_snapshot.api import faults
from nova_snapshot.api.handlers import servers
from nova_snapshot.api import microversion
from nova_snapshot.api import util
from nova_snapshot.api import validation
from nova_snapshot.api import views
from nova_snapshot import exception
from nova_snapshot.policies import instance_actions as policies

_ACTION_KEYS = ('action', 'instance_uuid', 'request_id', 'user_id',
                'project_id', 'message')
_EVENT_KEYS = ('event', 'result')

_QUERY_V258 = {
    'type': 'object',
    'properties': {
        'limit': {'type': 'array', 'items': {
            'type': 'string', 'pattern': '^[0-9]{1,20}$'}},
        'marker': {'type': 'array', 'items': {'type': 'string',
                                              'maxLength': 255}},
        'changes-since': {'type': 'array', 'items': {'type': 'string'}},
        'changes-before': {'type': 'array', 'items': {'type': 'string'}},
    },
    'additionalProperties': True,
}
validation.check_schema(_QUERY_V258)


def _updated_at(action):
    # Nova moves an action's updated_at when one of its events finishes;
    # here the action's finish time (set by the last event) stands in.
    return action.get('finish_time') or action.get('start_time')


def _action(version, action):
    body = {key: action.get(key) for key in _ACTION_KEYS}
    body['start_time'] = views.precise_time(action.get('start_time'))
    if version.matches((2, 58)):
        body['updated_at'] = views.precise_time(_updated_at(action))
    return body


def _event(version, event, project_id, privileged):
    body = {key: event.get(key) for key in _EVENT_KEYS}
    body['start_time'] = views.precise_time(event.get('start_time'))
    body['finish_time'] = views.precise_time(event.get('finish_time'))
    if privileged:
        body['traceback'] = event.get('traceback')
    if version.matches((2, 62)):
        host = event.get('host')
        body['hostId'] = views.host_id(host, project_id)
        if privileged:
            body['host'] = host
    if version.matches((2, 84)) and privileged:
        body['details'] = event.get('details')
    return body


def _time_option(params, key):
    if key not in params:
        return None
    try:
        return timeutils.normalize_time(
            timeutils.parse_isotime(params[key][-1]))
    except ValueError:
        raise faults.APIFault(400, 'Invalid input for query parameters '
                                   '%s.' % key)


def _page(req, server_id, actions):
    """Nova's 2.58 paging over the actions (newest first): changes-since
    and changes-before on updated_at, then marker and limit."""
    params = req.GET.dict_of_lists()
    validation.validate_query(params, _QUERY_V258)
    since = _time_option(params, 'changes-since')
    before = None
    if util.version(req).matches((2, 66)):
        before = _time_option(params, 'changes-before')
    if since and before and before < since:
        raise faults.APIFault(400, 'The value of changes-since must be less '
                                   'than or equal to changes-before.')

    def when(action):
        return timeutils.normalize_time(_updated_at(action))

    if since is not None:
        actions = [a for a in actions if when(a) >= since]
    if before is not None:
        actions = [a for a in actions if when(a) <= before]
    if 'marker' in params:
        marker = params['marker'][-1]
        ids = [a.get('request_id') for a in actions]
        if marker not in ids:
            raise faults.APIFault(400, 'Marker %s could not be found.'
                                  % marker)
        actions = actions[ids.index(marker) + 1:]
    max_limit = util.conf(req).api.max_limit
    limit = max_limit
    if 'limit' in params:
        limit = min(int(params['limit'][-1]), max_limit)
    actions = actions[:limit]
    links = []
    if limit and len(actions) == limit:
        query = sorted((k, v) for k, v in req.GET.items() if k != 'marker')
        query.append(('marker', actions[-1].get('request_id')))
        links = [{'rel': 'next', 'href': '%s?%s' % (
            util.link(req, 'servers', server_id, 'os-instance-actions'),
            parse.urlencode(query))}]
    return actions, links


def _load_server(req, server_id):
    """The server, deleted or not from 2.21 (Nova reads deleted
    instances there); another project's is a 404 either way."""
    if not util.version(req).matches((2, 21)):
        return servers.load_server(req, server_id)
    return util.compute_api(req).get(util.context(req), server_id,
                                     read_deleted=True)


def index(req, server_id):
    context = util.context(req)
    version = util.version(req)
    instance = _load_server(req, server_id)
    context.can(policies.LIST, target={'project_id': instance['project_id']})
    actions = util.compute_api(req).get_instance_actions(context, instance)
    links = []
    if version.matches((2, 58)):
        actions, links = _page(req, server_id, actions)
    body = {'instanceActions': [_action(version, a) for a in actions]}
    if links:
        body['links'] = links
    return util.json_response(req, body)


def show(req, server_id, request_id):
    microversion.check_no_query(req)
    context = util.context(req)
    version = util.version(req)
    instance = _load_server(req, server_id)
    target = {'project_id': instance['project_id']}
    context.can(policies.SHOW, target=target)
    try:
        action = util.compute_api(req).get_instance_action(
            context, instance, request_id)
    except exception.NotFound:
        action = None
    if action is None:
        raise faults.APIFault(404, 'Action %s not found' % request_id)
    body = _action(version, action)
    # Below 2.51 Nova shows the events only to callers passing this rule;
    # from 2.51 to every reader, with the traceback, host and details
    # still behind it.
    privileged = context.can(policies.EVENTS, target=target, fatal=False)
    if privileged or version.matches((2, 51)):
        project_id = action.get('project_id') or instance['project_id']
        body['events'] = [_event(version, e, project_id, privileged)
                          for e in action.get('events') or []]
    return util.json_response(req, {'instanceAction': body})
