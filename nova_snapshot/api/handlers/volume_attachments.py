"""/servers/{server_id}/os-volume_attachments[/{volume_id}].

Nova's order in every handler: the server (404), policy against the
server's project (403), then the attachment (404) and the state (409).
Attach and detach are asynchronous: the compute API records the intent and
casts; the attachment shows up (or goes) in the list when the host is
done. Attachments are the server's volume BDMs, from
``ComputeAPI.get_volume_attachments``. The fields shown change with the
microversion (schemas/volume_attachments.py says which).

Update (PUT, Nova's ``update``): from 2.85 a member may change the
attachment's ``delete_on_termination``; the other fields of the body must
be what the attachment shows (400 otherwise). A different ``volumeId`` (and
every PUT before 2.85) is Nova's swap-volume API (admin policy), which
Cinder calls while it migrates an attached volume: Nova refuses it with a
409 when the volume is not migrating, and so does this service; a swap of
a migrating volume is not done here either (409, the same fault), as
moving a running guest's disk to another volume is not implemented.
"""

import uuid

from oslo_utils import strutils

from nova_snapshot.api import faults
from nova_snapshot.api.handlers import servers
from nova_snapshot.api import microversion
from nova_snapshot.api.schemas import volume_attachments as schema
from nova_snapshot.api import util
from nova_snapshot.api import validation
from nova_snapshot.compute import block_device
from nova_snapshot.compute import vm_states
from nova_snapshot import exception
from nova_snapshot.policies import volumes_attachments as policies


# BDM rows here have no uuid column: ``bdm_uuid`` (2.89) is derived from
# the row id, so it is stable for the attachment's life and unique.
_BDM_UUID_NAMESPACE = uuid.UUID('5b1b0e6c-3c36-4e0e-9b7a-5a4f2d1c6e01')


def bdm_uuid(bdm):
    return str(uuid.uuid5(_BDM_UUID_NAMESPACE, 'bdm-%s' % bdm['id']))


def _view(req, server_id, bdm):
    """An attachment in list and show. Nova leaves "device" out when it
    is not known yet."""
    version = util.version(req)
    volume_id = bdm['volume_id']
    body = {'serverId': server_id, 'volumeId': volume_id}
    if not version.matches((2, 89)):
        body['id'] = volume_id
    if bdm.get('device_name'):
        body['device'] = bdm['device_name']
    if version.matches((2, 70)):
        body['tag'] = bdm.get('tag')
    if version.matches((2, 79)):
        body['delete_on_termination'] = bool(
            bdm.get('delete_on_termination'))
    if version.matches((2, 89)):
        body['attachment_id'] = bdm.get('attachment_id')
        body['bdm_uuid'] = bdm_uuid(bdm)
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


def _check_shelved(req, instance, method, server_id):
    """Nova's _check_request_version: a shelved (or offloaded) server
    takes attach and detach only from 2.20 (409 before)."""
    if instance['vm_state'] in (vm_states.SHELVED,
                                vm_states.SHELVED_OFFLOADED) and \
            not util.version(req).matches((2, 20)):
        raise servers.conflict(exception.InstanceInvalidState(
            attr='vm_state', instance_uuid=instance['uuid'],
            state=instance['vm_state'], method=method), method, server_id)


def _limited(req, items):
    """Nova's common.limited: offset, then at most limit ([api]
    max_limit caps it) of the items."""
    version = util.version(req)
    params = req.GET.dict_of_lists()
    validation.validate_query(params, schema.INDEX_QUERY_V275
                              if version.matches((2, 75))
                              else schema.INDEX_QUERY)
    max_limit = util.conf(req).api.max_limit
    offset = int(params['offset'][-1]) if 'offset' in params else 0
    limit = max_limit
    if 'limit' in params:
        limit = min(int(params['limit'][-1]) or max_limit, max_limit)
    return items[offset:offset + limit]


def index(req, server_id):
    context, instance = _load(req, server_id, policies.INDEX)
    bdms = util.compute_api(req).get_volume_attachments(context, instance)
    body = {'volumeAttachments': [
        _view(req, instance['uuid'], b) for b in _limited(req, bdms)]}
    return util.json_response(req, body, schema=schema.INDEX_RESPONSE)


def show(req, server_id, volume_id):
    microversion.check_no_query(req)
    context, instance = _load(req, server_id, policies.SHOW)
    bdm = _find(req, context, instance, volume_id)
    body = {'volumeAttachment': _view(req, instance['uuid'], bdm)}
    return util.json_response(req, body, schema=schema.SHOW_RESPONSE)


def create(req, server_id):
    version = util.version(req)
    body = util.extract_json(req)
    validation.validate(body, schema.create_schema(version))
    context, instance = _load(req, server_id, policies.CREATE)
    _check_shelved(req, instance, 'attach_volume', server_id)
    request = body['volumeAttachment']
    volume_id = request['volumeId']
    tag = request.get('tag')
    delete_on_termination = strutils.bool_from_string(
        request.get('delete_on_termination', False), strict=True)
    # A name the driver cannot hot-plug on is a 400 now, not a failed
    # attach later (the shared normaliser's rule).
    device = block_device.attach_device_name(
        body['volumeAttachment'].get('device'))
    try:
        device = util.compute_api(req).attach_volume(
            context, instance, volume_id, device=device, tag=tag,
            delete_on_termination=delete_on_termination)
    except exception.InstanceInvalidState as exc:
        raise servers.conflict(exc, 'attach_volume', server_id)
    except exception.NovaSnapshotException as exc:
        raise _unexpected(exc)
    if isinstance(device, dict):  # a BDM row is fine too
        device = device.get('device_name')
    if version.matches((2, 101)):
        return util.empty_response(202)  # Nova: no body from 2.101
    # Nova's create always has "id" and "device" (null when not known
    # yet), then tag (2.70) and delete_on_termination (2.79).
    attachment = {'id': volume_id, 'serverId': instance['uuid'],
                  'volumeId': volume_id, 'device': device or None}
    if version.matches((2, 70)):
        attachment['tag'] = tag
    if version.matches((2, 79)):
        attachment['delete_on_termination'] = delete_on_termination
    return util.json_response(req, {'volumeAttachment': attachment},
                              schema=schema.SHOW_RESPONSE)


def update(req, server_id, volume_id):
    version = util.version(req)
    body = util.extract_json(req)
    validation.validate(body, schema.update_schema(version))
    context = util.context(req)
    instance = servers.load_server(req, server_id)
    request = body['volumeAttachment']
    new_volume_id = request['volumeId']
    only_swap = not version.matches((2, 85))
    if only_swap or new_volume_id != volume_id:
        context.can(policies.SWAP, target={})
    else:
        context.can(policies.UPDATE,
                    target={'project_id': instance['project_id']})
    # The swap first: it refuses (409/400/404) before anything is written,
    # so a refused swap does not change delete_on_termination on the way.
    if only_swap or new_volume_id != volume_id:
        _swap(req, context, instance, volume_id, new_volume_id)
    if not only_swap:
        _update_attachment(req, context, instance, volume_id, request)
    return util.empty_response(202)


def _update_attachment(req, context, instance, volume_id, request):
    """Nova's _update_volume_regular: only delete_on_termination changes."""
    bdm = _find(req, context, instance, volume_id)
    for key, current in (('id', volume_id), ('serverId', instance['uuid']),
                         ('device', bdm.get('device_name')),
                         ('tag', bdm.get('tag'))):
        if key in request and request[key] != current:
            raise faults.APIFault(400, 'The %s property is not mutable'
                                  % key)
    if 'delete_on_termination' in request:
        try:
            util.compute_api(req).update_volume_attachment(
                context, instance, bdm, delete_on_termination=(
                    strutils.bool_from_string(
                        request['delete_on_termination'], strict=True)))
        except exception.NotFound:
            raise faults.APIFault(404, 'Instance %s is not attached to '
                                  'volume %s' % (instance['uuid'], volume_id))


def _swap(req, context, instance, old_volume_id, new_volume_id):
    """Nova's _update_volume_swap up to its first refusal: a volume that
    Cinder is not migrating is a 409; one it is migrating is refused the
    same way here (no swap of a guest's disk is implemented)."""
    volume_api = util.compute_api(req).volume_api
    if volume_api is None:
        raise faults.APIFault(404, 'Volume %s could not be found.'
                              % old_volume_id)
    try:
        old = volume_api.get(context, old_volume_id)
    except exception.VolumeNotFound as exc:
        raise faults.APIFault(404, exc.format_message())
    if not old.get('migration_status'):
        raise faults.APIFault(
            409, 'volume %s is not migrating; this API should only be '
                 'called by Cinder' % old_volume_id)
    try:
        volume_api.get(context, new_volume_id)
    except exception.VolumeNotFound as exc:
        raise faults.APIFault(400, exc.format_message())
    raise faults.APIFault(
        409, 'Swapping volume %s of server %s for volume %s is not '
             'supported by this service.' % (old_volume_id,
                                             instance['uuid'],
                                             new_volume_id))


def delete(req, server_id, volume_id):
    context, instance = _load(req, server_id, policies.DELETE)
    _check_shelved(req, instance, 'detach_volume', server_id)
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
