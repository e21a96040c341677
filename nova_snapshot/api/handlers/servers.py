"""/servers: list, create, show, update, delete."""

import ipaddress

from oslo_utils import strutils

from nova_snapshot.api import block_device
from nova_snapshot.api import faults
from nova_snapshot.api.handlers import server_list
from nova_snapshot.api import microversion
from nova_snapshot.api import password
from nova_snapshot.api.schemas import server_update as update_schema
from nova_snapshot.api.schemas import servers as schema
from nova_snapshot.api import util
from nova_snapshot.api import validation
from nova_snapshot.api import views
from nova_snapshot.compute import scheduler
from nova_snapshot.compute import soft_delete
from nova_snapshot import exception
from nova_snapshot.policies import servers as policies


def load_server(req, server_id):
    """The instance, or 404: another project's server does not exist."""
    return util.compute_api(req).get(util.context(req), server_id)


def index(req):
    return server_list.list_servers(req, detail=False)


def detail(req):
    # Faults and volumes of the whole page come with it (no query per
    # server): see server_list.
    return server_list.list_servers(req, detail=True)


def show(req, server_id):
    microversion.check_no_query(req)
    context = util.context(req)
    instance = load_server(req, server_id)
    context.can(policies.SHOW, target={'project_id': instance['project_id']})
    return util.json_response(
        req, {'server': views.server_show(req, instance)},
        schema=schema.SHOW_RESPONSE)


def create(req):
    context = util.context(req)
    body = util.extract_json(req)
    validation.validate(body, schema.create_schema(util.version(req)))
    counts = _counts(body['server'])  # Nova: before the policy check
    target = {'project_id': context.project_id, 'user_id': context.user_id}
    context.can(policies.CREATE, target=target)
    server = body['server']
    validation.check_metadata_items(server.get('metadata'))
    image_ref, bdms = block_device.from_request(server)
    kwargs = {'metadata': server.get('metadata')}
    kwargs.update(_access_and_disk_config(server))
    if 'hostname' in server:  # 2.90
        kwargs['hostname'] = server['hostname']
    if 'description' in server:  # 2.19
        kwargs['description'] = server['description']
    if server.get('key_name') is not None:
        kwargs['key_name'] = server['key_name']
    if bdms:
        # Nova checks this one only when the request maps block devices.
        context.can(policies.CREATE_ATTACH_VOLUME, target=target)
        kwargs['block_device_mapping'] = bdms
    kwargs.update(_requested_destination(context, server, target))
    kwargs.update(_requested_host(req, context, server, target, kwargs))
    kwargs.update(counts)
    try:
        instance = util.compute_api(req).create(
            context, server['name'], image_ref, str(server['flavorRef']),
            **kwargs)
    except exception.KeypairNotFound:
        raise faults.APIFault(400, 'Invalid key_name provided.')
    if strutils.bool_from_string(server.get('return_reservation_id')):
        # Nova: the request's reservation id instead of a server (202, no
        # Location, no adminPass).
        return util.json_response(
            req, {'reservation_id': instance['reservation_id']},
            status=202, schema=schema.CREATE_RESERVATION_RESPONSE)
    admin_password = password.for_create(util.conf(req), server)
    response = util.json_response(
        req, {'server': views.server_create(req, instance, admin_password)},
        status=202, schema=schema.CREATE_RESPONSE)
    response.location = util.link(req, 'servers', instance['uuid'])
    return response


def _counts(server):
    """ComputeAPI.create kwargs for os-multiple-create: ``min_count``
    (default 1) and ``max_count`` (default min_count), integers or digit
    strings (the schema); Nova's 400 when min_count > max_count."""
    min_count = int(server.get('min_count', 1))
    max_count = int(server.get('max_count', min_count))
    if min_count > max_count:
        raise faults.APIFault(400, 'min_count must be <= max_count')
    return {'min_count': min_count, 'max_count': max_count}


def _requested_destination(context, server, target):
    """ComputeAPI.create kwargs from ``availability_zone``; naming a host
    or node takes Nova's create:forced_host policy (admins)."""
    zone, host, node = scheduler.parse_availability_zone(
        server.get('availability_zone'))
    if host or node:
        context.can(policies.CREATE_FORCED_HOST, target=target)
    return {'availability_zone': zone, 'forced_host': host,
            'forced_node': node}


def _requested_host(req, context, server, target, destination):
    """2.74: ``host`` and/or ``hypervisor_hostname`` (Nova's
    requested_destination, admins): exclusive with a host or node in
    ``availability_zone`` (400); one that no compute node has is Nova's
    400; the scheduler then takes only that host or node (enabled, alive,
    with room, else the server goes to ERROR, No valid host)."""
    host = server.get('host')
    node = server.get('hypervisor_hostname')
    if not (host or node):
        return {}
    context.can(policies.REQUESTED_DESTINATION, target=target)
    if destination.get('forced_host') or destination.get('forced_node'):
        raise faults.APIFault(
            400, 'One mechanism with host and/or hypervisor_hostname and '
                 'another mechanism with zone:host:node are mutually '
                 'exclusive.')
    try:
        util.compute_api(req).check_requested_destination(host, node)
    except exception.ComputeHostNotFound as exc:
        raise faults.APIFault(400, exc.format_message())
    return {'forced_host': host or None, 'forced_node': node or None}


def _access_and_disk_config(server):
    """ComputeAPI.create kwargs for accessIPv4/v6 and OS-DCF:diskConfig.

    Addresses are stored in their canonical text, as Nova's IPAddress
    field does (``0:0::babe:220.12.22.2`` becomes ``::babe:dc0c:1602``).
    """
    kwargs = {}
    for key, field in (('accessIPv4', 'access_ip_v4'),
                       ('accessIPv6', 'access_ip_v6')):
        if key in server:
            kwargs[field] = str(ipaddress.ip_address(server[key]))
    if 'OS-DCF:diskConfig' in server:
        kwargs['auto_disk_config'] = server['OS-DCF:diskConfig'] == 'AUTO'
    return kwargs


def update(req, server_id):
    """PUT /servers/{id} (Nova's ``update``): body against the version's
    schema (400), the server (404), policy ``servers:update`` with its user
    and project (403), then one compare-and-swap (compute/server_update.py;
    409 for a pin Nova refuses). No lock or state check, as in Nova. 200
    with the server: the reduced body below 2.75, the show body from it."""
    context = util.context(req)
    version = util.version(req)
    body = util.extract_json(req)
    validation.validate(body, update_schema.update_schema(version))
    instance = load_server(req, server_id)
    context.can(policies.UPDATE, target={
        'user_id': instance['user_id'], 'project_id': instance['project_id']})
    server = body['server']
    values = _access_and_disk_config(server)
    if 'name' in server:
        values['name'] = server['name'].strip()
    if 'description' in server:  # 2.19; null removes it
        values['description'] = server['description']
    kwargs = {}
    if 'hostname' in server:  # 2.90
        kwargs['hostname'] = server['hostname']
    if 'pinned_availability_zone' in server:  # 2.104
        kwargs['pinned_az'] = server['pinned_availability_zone']
    instance = util.compute_api(req).update_instance(context, instance,
                                                     values, **kwargs)
    response_schema = (schema.SHOW_RESPONSE if version.matches((2, 75))
                       else update_schema.UPDATE_RESPONSE)
    return util.json_response(
        req, {'server': views.server_update(req, instance)},
        schema=response_schema)


def delete(req, server_id):
    context = util.context(req)
    instance = load_server(req, server_id)
    context.can(policies.DELETE, target={'project_id': instance['project_id']})
    api = util.compute_api(req)
    try:
        if util.conf(req).reclaim_instance_interval > 0:
            # Nova: a soft delete, or the normal delete for a server it
            # does not apply to (compute/soft_delete.py).
            try:
                api.soft_delete(context, instance)
                return util.empty_response(204)
            except soft_delete.NotSoftDeletable:
                pass
        api.delete(context, instance)
    except exception.InstanceInvalidState as exc:
        raise conflict(exc, 'delete', server_id)
    return util.empty_response(204)


def conflict(exc, action, server_id):
    """Nova's raise_http_conflict_for_instance_invalid_state message."""
    attr = exc.kwargs.get('attr')
    state = exc.kwargs.get('state')
    if attr is not None and state is not None:
        message = ("Cannot '%s' instance %s while it is in %s %s"
                   % (action, server_id, attr, state))
    else:
        message = ("Instance %s is in an invalid state for '%s'"
                   % (server_id, action))
    return faults.APIFault(409, message)
