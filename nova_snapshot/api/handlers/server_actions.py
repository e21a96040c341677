"""POST /servers/{server_id}/action: one body key picks the action.

The body must be a JSON object with exactly one key; that key selects an
entry of ``ACTIONS`` (an unknown one is 400, Nova's "There is no such
action"). Each entry names its schema, checked before anything is loaded,
as Nova's validation decorator does.
"""

import re

from nova_snapshot.api import faults
from nova_snapshot.api.handlers import create_backup
from nova_snapshot.api.handlers import create_image
from nova_snapshot.api.handlers import lock
from nova_snapshot.api.handlers import reboot
from nova_snapshot.api.handlers import rebuild
from nova_snapshot.api.handlers import servers
from nova_snapshot.api.handlers import shelve
from nova_snapshot.api.schemas import create_backup as backup_schema
from nova_snapshot.api.schemas import deferred_delete as dd_schema
from nova_snapshot.api.schemas import lock as lock_schema
from nova_snapshot.api.schemas import reboot as reboot_schema
from nova_snapshot.api.schemas import rebuild as rebuild_schema
from nova_snapshot.api.schemas import servers as schema
from nova_snapshot.api.schemas import shelve as shelve_schema
from nova_snapshot.api import util
from nova_snapshot.api import validation
from nova_snapshot import exception
from nova_snapshot.policies import deferred_delete as dd_policies
from nova_snapshot.policies import servers as policies
from nova_snapshot.policies import shelve as shelve_policies


def _project_target(instance):
    return {'project_id': instance['project_id']}


def _owner_target(instance):
    # Nova's forceDelete target: the server's user and project.
    return {'project_id': instance['project_id'],
            'user_id': instance.get('user_id')}


def _simple(method, policy, nova_action, target=_project_target):
    """An action that loads the server, checks policy (against
    ``target(instance)``) and calls ``ComputeAPI.<method>``; 202 with no
    body."""

    def handler(req, server_id, body):
        context = util.context(req)
        instance = servers.load_server(req, server_id)
        context.can(policy, target=target(instance))
        try:
            getattr(util.compute_api(req), method)(context, instance)
        except exception.InstanceInvalidState as exc:
            raise servers.conflict(exc, nova_action, server_id)
        return util.empty_response(202)

    handler.__name__ = method
    return handler


# What Nova removes from a console's output (all C0 controls but tab and
# newline).
_CONSOLE_CONTROL_CHARS = re.compile('[\x00-\x08\x0B-\x1F]')


def console_output(req, server_id, body):
    context = util.context(req)
    instance = servers.load_server(req, server_id)
    context.can(policies.CONSOLE_OUTPUT,
                target={'project_id': instance['project_id']})
    length = (body['os-getConsoleOutput'] or {}).get('length')
    if length is not None:
        length = int(length)
        if length < 0:
            length = None  # -1: the whole log, as in Nova
    try:
        output = util.compute_api(req).get_console_output(
            context, instance, length=length)
    except exception.InstanceInvalidState as exc:
        # No host yet (building) or being deleted: Nova's InstanceNotReady.
        raise servers.conflict(exc, 'getConsoleOutput', server_id)
    except exception.InstanceNotFound as exc:
        # No guest on its host (deleted meanwhile, or not defined yet):
        # Nova's 404 for an instance its hypervisor does not know.
        raise faults.APIFault(404, exc.format_message())
    except exception.ServiceUnavailable:
        # The compute service or its hypervisor (libvirtd restarting) did
        # not answer: a 503 the client may retry (faults.from_exception).
        raise
    except NotImplementedError:
        raise faults.APIFault(501, 'Unable to get console output.')
    # Nova drops the control characters JSON clients choke on.
    output = _CONSOLE_CONTROL_CHARS.sub('', output)
    return util.json_response(req, {'output': output},
                              schema=schema.CONSOLE_OUTPUT_RESPONSE)


# body key -> (request schema, handler(req, server_id, body))
ACTIONS = {
    'createImage': (schema.CREATE_IMAGE, create_image.create_image),
    'os-stop': (schema.STOP, _simple('stop', policies.STOP, 'stop')),
    'os-start': (schema.START, _simple('start', policies.START, 'start')),
    'pause': (schema.PAUSE, _simple('pause', policies.PAUSE, 'pause')),
    'unpause': (schema.UNPAUSE,
                _simple('unpause', policies.UNPAUSE, 'unpause')),
    'suspend': (schema.SUSPEND,
                _simple('suspend', policies.SUSPEND, 'suspend')),
    'resume': (schema.RESUME, _simple('resume', policies.RESUME, 'resume')),
    'os-getConsoleOutput': (schema.GET_CONSOLE_OUTPUT, console_output),
    'reboot': (reboot_schema.REBOOT, reboot.reboot),
    # rebuild's and lock's bodies depend on the microversion: checked by
    # their handlers.
    'rebuild': (rebuild_schema.ANY_VERSION, rebuild.rebuild),
    'lock': (lock_schema.LOCK, lock.lock),
    'unlock': (lock_schema.UNLOCK, lock.unlock),
    'shelve': (shelve_schema.SHELVE,
               _simple('shelve', shelve_policies.SHELVE, 'shelve',
                       target=shelve.policy_target)),
    'shelveOffload': (shelve_schema.SHELVE_OFFLOAD,
                      _simple('shelve_offload', shelve_policies.SHELVE_OFFLOAD,
                              'shelveOffload', target=shelve.policy_target)),
    # unshelve's body depends on the microversion: checked by its handler.
    'unshelve': (shelve_schema.UNSHELVE, shelve.unshelve),
    'createBackup': (backup_schema.CREATE_BACKUP,
                     create_backup.create_backup),
    # Deferred delete ([DEFAULT] reclaim_instance_interval > 0;
    # compute/soft_delete.py).
    'restore': (dd_schema.RESTORE,
                _simple('restore', dd_policies.RESTORE, 'restore')),
    'forceDelete': (dd_schema.FORCE_DELETE,
                    _simple('force_delete', dd_policies.FORCE, 'forceDelete',
                            target=_owner_target)),
}


def action(req, server_id):
    body = util.extract_json(req)
    if not isinstance(body, dict) or len(body) != 1:
        raise faults.APIFault(
            400, 'Malformed request body: the body must be an object with '
                 'exactly one action key')
    key = next(iter(body))
    if key not in ACTIONS:
        raise faults.APIFault(400, 'There is no such action: %s' % key)
    action_schema, handler = ACTIONS[key]
    validation.validate(body, action_schema)
    return handler(req, server_id, body)
