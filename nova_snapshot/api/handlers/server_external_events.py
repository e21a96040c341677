"""POST /os-server-external-events (Nova's ``server_external_events.py``):
other services (Cinder, Neutron) tell the compute API about a server.

The body is validated against the version's schema (the event names grow
with 2.51, 2.76, 2.82 and 2.93), then the policy is checked (Nova's order
and rule: the service role or an admin). Each event is echoed back with a
``code`` and ``status``, as Nova does:

* 404 ``failed``: no live server has that UUID;
* 400 ``failed``: the event needs a ``tag`` and has none;
* 422 ``failed``: the server has no host (never placed, or offloaded);
* 200 ``completed``: accepted (``compute/external_events`` says what that
  does per event).

The answer is 200 when every event was accepted, 207 otherwise (all of
them failing included: Nova stopped answering 404 with the fix of bug
1855752).
"""

import logging

from nova_snapshot.api.schemas import server_external_events as schema
from nova_snapshot.api import util
from nova_snapshot.api import validation
from nova_snapshot.compute import external_events
from nova_snapshot.policies import server_external_events as policies

LOG = logging.getLogger(__name__)


def _verdict(event, instance):
    """(code, status) of one event, in Nova's order of checks."""
    if instance is None:
        return 404, 'failed'
    if event['name'] in schema.TAG_REQUIRED and event.get('tag') is None:
        return 400, 'failed'
    if not instance.get('host'):
        return 422, 'failed'
    return 200, 'completed'


def create(req):
    context = util.context(req)
    version = util.version(req)
    body = util.extract_json(req)
    validation.validate(body, schema.create_schema(version))
    context.can(policies.CREATE, target={})
    db = util.compute_api(req).db
    instances = external_events.find_servers(
        db, [event['server_uuid'] for event in body['events']])
    answered = []
    for event in body['events']:
        instance = instances.get(event['server_uuid'])
        code, status = _verdict(event, instance)
        if code != 200:
            LOG.info('Dropping event %s:%s for server %s (%d)',
                     event['name'], event.get('tag'), event['server_uuid'],
                     code)
        else:
            # What was sent, as the handlers see it ("completed" when
            # the sender gave no status).
            external_events.handle(db, context, instance, dict(
                event, status=event.get('status', 'completed')))
        answered.append(dict(event, code=code, status=status))
    overall = 200 if all(e['code'] == 200 for e in answered) else 207
    return util.json_response(req, {'events': answered}, status=overall,
                              schema=schema.create_response_schema(version))
