"""/servers/{server_id}/os-volume_attachments[/{volume_id}].

Nova's order in every handler: the server (404), policy against the
server's project (403), then the attachment (404) and the state (409).
Attach and detach are asynchronous: the compute API records the intent and
casts; the attachment shows up (or goes) in the list when the host is
done. Attachments are the server's volume BDMs, from
``ComputeAPI.get_volume_attachments``.
"""

from nova_snapshot.api import faults
from nova_snapshot.api.handlers import servers
from nova_snapshot.api.schemas import volume_attachments as schema
from nova_snapshot.api import util
from nova_snapshot.api import validation
from nova_snapshot.compute import block_device
from nova_snapshot import exception
from nova_snapshot.policies import volumes_attachments as policies


def _view(server_id, volume_id, device):
    # Nova leaves "device" out of list and show when it is not known yet.
    body = {'id': volume_id, 'serverId': server_id, 'volumeId': volume_id}
    if device:
        body['device'] = device
    return body


def _load(req, server_id, policy):
    context = util.context(req)
    instance = servers.load_server(req, server_id)
    context.can(policy, target={'project_id': instance['project_id']})
    return context, instance


def _find(req, context, instance, volume_id):
    for bdm in util.compute_api(req).get_volume_attachments(
            context, instance):
        if bdm.get('volume_id') == volume_id:
            return bdm
    raise faults.APIFault(404, 'Instance %s is not attached to volume %s'
                          % (instance['uuid'], volume_id))


def _unexpected(exc):
    """Nova's expected_errors: anything not mapped is a 500, even an
    internal exception with a 4xx code."""
    if isinstance(exc, (exception.NotFound, exception.Invalid,
                        exception.Conflict, exception.Forbidden,
                        exception.ServiceUnavailable)):
        return exc
    return faults.APIFault(500, '%s\n%s' % (faults.UNEXPECTED, type(exc)))


def index(req, server_id):
    context, instance = _load(req, server_id, policies.INDEX)
    bdms = util.compute_api(req).get_volume_attachments(context, instance)
    body = {'volumeAttachments': [
        _view(instance['uuid'], b['volume_id'], b.get('device_name'))
        for b in bdms]}
    return util.json_response(req, body, schema=schema.INDEX_RESPONSE)


def show(req, server_id, volume_id):
    context, instance = _load(req, server_id, policies.SHOW)
    bdm = _find(req, context, instance, volume_id)
    body = {'volumeAttachment': _view(instance['uuid'], volume_id,
                                      bdm.get('device_name'))}
    return util.json_response(req, body, schema=schema.SHOW_RESPONSE)


def create(req, server_id):
    body = util.extract_json(req)
    validation.validate(body, schema.CREATE)
    context, instance = _load(req, server_id, policies.CREATE)
    volume_id = body['volumeAttachment']['volumeId']
    # A name the driver cannot hot-plug on is a 400 now, not a failed
    # attach later (the shared normaliser's rule).
    device = block_device.attach_device_name(
        body['volumeAttachment'].get('device'))
    try:
        device = util.compute_api(req).attach_volume(
            context, instance, volume_id, device=device)
    except exception.InstanceInvalidState as exc:
        raise servers.conflict(exc, 'attach_volume', server_id)
    except exception.NovaSnapshotException as exc:
        raise _unexpected(exc)
    if isinstance(device, dict):  # a BDM row is fine too
        device = device.get('device_name')
    # Nova's create always has "device", null when not known yet.
    attachment = _view(instance['uuid'], volume_id, None)
    attachment['device'] = device or None
    return util.json_response(req, {'volumeAttachment': attachment},
                              schema=schema.SHOW_RESPONSE)


def delete(req, server_id, volume_id):
    context, instance = _load(req, server_id, policies.DELETE)
    bdm = _find(req, context, instance, volume_id)
    if bdm.get('boot_index') == 0:
        raise faults.APIFault(400, 'Cannot detach a root device volume')
    try:
        util.compute_api(req).detach_volume(context, instance, volume_id)
    except exception.InstanceInvalidState as exc:
        raise servers.conflict(exc, 'detach_volume', server_id)
    except exception.NovaSnapshotException as exc:
        raise _unexpected(exc)
    return util.empty_response(202)
