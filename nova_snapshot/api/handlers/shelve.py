"""The unshelve server action and the policy target of the os-shelve
actions (shelve and shelveOffload are simple actions of
server_actions.ACTIONS): load the server (404), policy against its
project (403), the compute API's state checks (409), 202 with no body.
Unshelve's body is checked by microversion here (the action table checks
only the key)."""

from nova_snapshot.api import faults
from nova_snapshot.api.handlers import servers
from nova_snapshot.api.schemas import shelve as schema
from nova_snapshot.api import util
from nova_snapshot.api import validation
from nova_snapshot.compute import shelve as compute_shelve
from nova_snapshot import exception
from nova_snapshot.policies import shelve as policies


def policy_target(instance):
    """Nova's target of the os-shelve rules: the server's project and
    user."""
    return {'project_id': instance['project_id'],
            'user_id': instance.get('user_id')}


def unshelve(req, server_id, body):
    version = util.version(req)
    validation.validate(body, schema.unshelve_schema(version))
    context = util.context(req)
    instance = servers.load_server(req, server_id)
    context.can(policies.UNSHELVE,
                target={'project_id': instance['project_id']})
    kwargs = {}
    entity = body.get('unshelve')
    if entity:
        if version.matches((2, 77)) and 'availability_zone' in entity:
            kwargs['new_az'] = entity['availability_zone']
        if version.matches((2, 91)) and entity.get('host'):
            kwargs['host'] = entity['host']
            context.can(policies.UNSHELVE_TO_HOST, target=policy_target(instance))
    try:
        util.compute_api(req).unshelve(context, instance, **kwargs)
    except compute_shelve.UnshelveInstanceInvalidState as exc:
        raise faults.APIFault(409, exc.format_message())
    except exception.InstanceInvalidState as exc:
        raise servers.conflict(exc, 'unshelve', server_id)
    except (exception.Invalid, exception.ComputeHostNotFound) as exc:
        raise faults.APIFault(400, exc.format_message())
    return util.empty_response(202)
