"""The lock and unlock server actions (Nova's ``lock_server.py``).

lock: policy ``os-lock-server:lock`` (target: the server's user and
project); from 2.73 ``{"lock": {"locked_reason": "..."}}`` records a
reason. unlock: ``os-lock-server:unlock``, and also
``unlock:unlock_override`` when the lock is held by the other side (the
owner unlocking an admin's lock, or an admin from another project an
owner's). Both answer 202 with no body; the body was checked against the
version's schema here (the lock body changed at 2.73).
"""

from nova_snapshot.api.handlers import servers
from nova_snapshot.api.schemas import lock as schema
from nova_snapshot.api import util
from nova_snapshot.api import validation
from nova_snapshot.compute import lock as instance_lock
from nova_snapshot.policies import lock as policies


def lock(req, server_id, body):
    context = util.context(req)
    version = util.version(req)
    validation.validate(body, schema.lock_schema(version))
    instance = servers.load_server(req, server_id)
    context.can(policies.LOCK, target={'user_id': instance['user_id'],
                                       'project_id': instance['project_id']})
    reason = None
    if version.matches((2, 73)) and body['lock'] is not None:
        reason = body['lock'].get('locked_reason')
    util.compute_api(req).lock(context, instance, reason=reason)
    return util.empty_response(202)


def unlock(req, server_id, body):
    context = util.context(req)
    instance = servers.load_server(req, server_id)
    target = {'project_id': instance['project_id']}
    context.can(policies.UNLOCK, target=target)
    if not instance_lock.is_expected_locked_by(context, instance):
        context.can(policies.UNLOCK_OVERRIDE, target=target)
    util.compute_api(req).unlock(context, instance)
    return util.empty_response(202)
