"""The reboot server action (Nova's ``_action_reboot``): 202, no body.

Load (404), policy ``os_compute_api:servers:reboot`` against the server's
project (403), then ComputeAPI.reboot: a locked server is a 409 for
non-admins ("Instance ... is locked"), a state that does not allow this
type of reboot a 409 in Nova's words, an unreachable compute service a 503.
"""

from nova_snapshot.api.handlers import servers
from nova_snapshot.api import util
from nova_snapshot import exception
from nova_snapshot.policies import reboot as policies

ACTION = 'reboot'


def reboot(req, server_id, body):
    context = util.context(req)
    instance = servers.load_server(req, server_id)
    context.can(policies.REBOOT, target={'project_id': instance['project_id']})
    try:
        util.compute_api(req).reboot(context, instance,
                                     body[ACTION]['type'].upper())
    except exception.InstanceInvalidState as exc:
        raise servers.conflict(exc, ACTION, server_id)
    return util.empty_response(202)
