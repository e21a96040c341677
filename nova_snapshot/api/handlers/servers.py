"""/servers: list, create, show, delete."""

import ipaddress

from nova_snapshot.api import block_device
from nova_snapshot.api import faults
from nova_snapshot.api.handlers import server_list
from nova_snapshot.api import microversion
from nova_snapshot.api import password
from nova_snapshot.api.schemas import servers as schema
from nova_snapshot.api import util
from nova_snapshot.api import validation
from nova_snapshot.api import views
from nova_snapshot.compute import scheduler
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
    target = {'project_id': context.project_id, 'user_id': context.user_id}
    context.can(policies.CREATE, target=target)
    server = body['server']
    validation.check_metadata_items(server.get('metadata'))
    image_ref, bdms = block_device.from_request(server)
    kwargs = {'metadata': server.get('metadata')}
    kwargs.update(_access_and_disk_config(server))
    if 'hostname' in server:  # 2.90
        kwargs['hostname'] = server['hostname']
    if bdms:
        # Nova checks this one only when the request maps block devices.
        context.can(policies.CREATE_ATTACH_VOLUME, target=target)
        kwargs['block_device_mapping'] = bdms
    kwargs.update(_requested_destination(context, server, target))
    instance = util.compute_api(req).create(
        context, server['name'], image_ref, str(server['flavorRef']),
        **kwargs)
    admin_password = password.for_create(util.conf(req), server)
    response = util.json_response(
        req, {'server': views.server_create(req, instance, admin_password)},
        status=202, schema=schema.CREATE_RESPONSE)
    response.location = util.link(req, 'servers', instance['uuid'])
    return response


def _requested_destination(context, server, target):
    """ComputeAPI.create kwargs from ``availability_zone``; naming a host
    or node takes Nova's create:forced_host policy (admins)."""
    zone, host, node = scheduler.parse_availability_zone(
        server.get('availability_zone'))
    if host or node:
        context.can(policies.CREATE_FORCED_HOST, target=target)
    return {'availability_zone': zone, 'forced_host': host,
            'forced_node': node}


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


def delete(req, server_id):
    context = util.context(req)
    instance = load_server(req, server_id)
    context.can(policies.DELETE, target={'project_id': instance['project_id']})
    try:
        util.compute_api(req).delete(context, instance)
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
