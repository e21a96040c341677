"""The rebuild server action (Nova's ``_action_rebuild``).

1. the body against the version's schema (api/schemas/rebuild.py; 400);
2. load the server (404), policy ``os_compute_api:servers:rebuild`` with
   the server's user and project as target (403);
3. server metadata over the limit: 403, as at create;
4. ComputeAPI.rebuild (compute/rebuild.py); errors as Nova maps them:
   lock and state 409, an image Glance does not find 400 ("Cannot find
   image for rebuild"), image/flavor/diskConfig/volume-backed 400 (before
   2.93 a volume-backed server keeps its image; from 2.93 its root volume
   is re-imaged, and a volume not ``in-use`` is a 400), an unreachable
   compute service 503;
5. 202 with the server body as it is now (task state ``rebuilding``, the
   new image, name, metadata; shaped per microversion by
   ``views.server_rebuild``) and ``adminPass`` when ``[api]
   enable_instance_password`` (the given one or a generated one, only
   returned, as at create), and a Location header naming the server.

key_name (2.54): a keypair of the caller's user (400 "Invalid key_name
provided." otherwise), null removes the server's. trusted_image_certificates
(2.63) can only be null: there is no certificate validation (400
otherwise).
"""

from oslo_utils import strutils

from nova_snapshot.api import faults
from nova_snapshot.api.handlers import servers
from nova_snapshot.api import password
from nova_snapshot.api.schemas import rebuild as schema
from nova_snapshot.api import util
from nova_snapshot.api import validation
from nova_snapshot.api import views
from nova_snapshot import exception
from nova_snapshot.policies import rebuild as policies

ACTION = 'rebuild'


def rebuild(req, server_id, body):
    context = util.context(req)
    validation.validate(body, schema.rebuild_schema(util.version(req)))
    entity = body[ACTION]
    instance = servers.load_server(req, server_id)
    context.can(policies.REBUILD, target={
        'user_id': instance['user_id'], 'project_id': instance['project_id']})
    validation.check_metadata_items(entity.get('metadata'))
    if entity.get('trusted_image_certificates') is not None:
        raise faults.APIFault(400, 'Image certificate validation is not '
                                   'supported by this service.')
    kwargs = servers._access_and_disk_config(entity)
    if 'name' in entity:
        kwargs['name'] = entity['name'].strip()
    if 'metadata' in entity:
        kwargs['metadata'] = entity['metadata']
    if 'description' in entity:  # 2.19; null removes it
        kwargs['description'] = entity['description']
    if 'hostname' in entity:  # 2.90
        kwargs['hostname'] = entity['hostname']
    if 'key_name' in entity:  # 2.54; null removes it
        kwargs['key_name'] = entity['key_name']
    kwargs['preserve_ephemeral'] = strutils.bool_from_string(
        entity.get('preserve_ephemeral', False), strict=True)
    # 2.93: a volume-backed server's root volume is re-imaged (Nova passes
    # reimage_boot_volume from this version on, whatever the image).
    kwargs['reimage_boot_volume'] = util.version(req).matches((2, 93))
    admin_password = password.for_create(util.conf(req), entity)
    try:
        util.compute_api(req).rebuild(context, instance, entity['imageRef'],
                                      **kwargs)
    except exception.InstanceInvalidState as exc:
        raise servers.conflict(exc, ACTION, server_id)
    except exception.ImageNotFound:
        raise faults.APIFault(400, 'Cannot find image for rebuild')
    except exception.KeypairNotFound:
        raise faults.APIFault(400, 'Invalid key_name provided.')
    except exception.OverQuota as exc:
        raise faults.APIFault(403, exc.format_message())
    except exception.Invalid as exc:
        raise faults.APIFault(400, exc.format_message())
    instance = servers.load_server(req, server_id)
    server = views.server_rebuild(req, instance,
                                  admin_password=admin_password)
    response = util.json_response(req, {'server': server}, status=202,
                                  schema=schema.REBUILD_RESPONSE)
    response.location = util.link(req, 'servers', instance['uuid'])
    return response
