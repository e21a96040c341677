"""Nova's JSON shapes for servers, flavors and images (the compute images
proxy), built from plain dicts."""

import datetime
import hashlib
import json
from urllib import parse

from oslo_utils import strutils

from nova_snapshot.api import util
from nova_snapshot.compute import vm_states
from nova_snapshot.image import glance
from nova_snapshot.policies import servers as server_policies

# Nova's _STATE_MAP (nova/api/openstack/common.py), reduced to the states
# this service has. A task_state without an entry shows the default; the
# snapshot and deleting task states therefore keep e.g. ACTIVE, as in Nova.
_STATE_MAP = {
    vm_states.ACTIVE: {'default': 'ACTIVE'},
    vm_states.BUILDING: {'default': 'BUILD'},
    vm_states.STOPPED: {'default': 'SHUTOFF'},
    vm_states.PAUSED: {'default': 'PAUSED'},
    vm_states.SUSPENDED: {'default': 'SUSPENDED'},
    vm_states.ERROR: {'default': 'ERROR'},
    vm_states.DELETED: {'default': 'DELETED'},
}
# Nova shows progress only in these statuses and the fault only in these.
_PROGRESS_STATUSES = ('ACTIVE', 'BUILD', 'REBUILD', 'RESIZE',
                      'VERIFY_RESIZE', 'MIGRATING')
_FAULT_STATUSES = ('ERROR', 'DELETED')
# Not Nova's domain name scheme; ours (virt/libvirt/host.py).
_INSTANCE_NAME_PREFIX = 'instance-'


def status_from_state(vm_state, task_state=None):
    task_map = _STATE_MAP.get(vm_state, {'default': 'UNKNOWN'})
    return task_map.get(task_state, task_map['default'])


def states_from_status(statuses):
    """Nova's task_and_vm_state_from_status: the vm_states and task_states
    (``'default'`` meaning any) that show as one of ``statuses``."""
    wanted = {status.strip().lower() for status in statuses}
    found_vm, found_task = set(), set()
    for vm_state, task_map in _STATE_MAP.items():
        for task_state, status in task_map.items():
            if status.lower() in wanted:
                found_vm.add(vm_state)
                found_task.add(task_state)
    return sorted(found_vm), sorted(found_task, key=str)


def _utc_text(value, fmt):
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return value.strftime(fmt)


def isotime(value):
    """Nova's utils.isotime: second precision with a Z."""
    return _utc_text(value, '%Y-%m-%dT%H:%M:%SZ')


def precise_time(value):
    """Nova's launched_at / action times: microseconds, no zone."""
    return _utc_text(value, '%Y-%m-%dT%H:%M:%S.%f')


def _host_id(instance):
    host = instance.get('host')
    if not host:
        return ''
    data = (instance.get('project_id') or '') + host
    return hashlib.sha224(data.encode('utf-8')).hexdigest()


def _image(req, instance):
    image_ref = instance.get('image_ref')
    if not image_ref:
        return ''  # volume-backed: Nova sends an empty string
    return {'id': image_ref, 'links': [
        {'rel': 'bookmark', 'href': util.bookmark(req, 'images', image_ref)}]}


def _flavor(req, instance):
    flavor = instance.get('flavor') or {}
    flavor_id = str(flavor.get('id', ''))
    return {'id': flavor_id, 'links': [
        {'rel': 'bookmark',
         'href': util.bookmark(req, 'flavors', flavor_id)}]}


def _fault(context, fault):
    body = {'code': fault['code'], 'message': fault.get('message') or '',
            'created': isotime(fault.get('created_at'))}
    # Nova hides the details (a traceback) of 500 faults from non-admins.
    if fault.get('details') and (context.is_admin or fault['code'] != 500):
        body['details'] = fault['details']
    return body


def _volumes_attached(req, context, instance):
    """Nova's os-extended-volumes: the volume ids, and from 2.3 whether
    each goes with the server."""
    compute_api = util.compute_api(req)
    lister = getattr(compute_api, 'get_volume_attachments', None)
    if lister is None:
        return []  # a compute API without volume support: none attached
    with_delete = util.version(req).matches((2, 3))
    volumes = []
    for bdm in lister(context, instance):
        volume = {'id': bdm['volume_id']}
        if with_delete:
            volume['delete_on_termination'] = bool(
                bdm.get('delete_on_termination'))
        volumes.append(volume)
    return volumes


def server_summary(req, instance):
    return {'id': instance['uuid'], 'name': instance.get('name') or '',
            'links': util.links(req, 'servers', instance['uuid'])}


def disk_config(instance):
    """Nova's OS-DCF:diskConfig: AUTO when the instance resizes its own
    partition (auto_disk_config), else MANUAL."""
    return 'AUTO' if instance.get('auto_disk_config') else 'MANUAL'


def _access_ip(value):
    # Nova shows "" for an unset access address.
    return '' if value is None else str(value)


def server_create(req, instance, admin_password=None):
    body = {
        'id': instance['uuid'],
        'links': util.links(req, 'servers', instance['uuid']),
        'OS-DCF:diskConfig': disk_config(instance),
        'security_groups': [{'name': 'default'}],
    }
    if admin_password is not None:
        body['adminPass'] = admin_password
    return body


def server(req, instance, show_extended=None):
    """The full server body (show and detail), shaped per microversion.

    ``show_extended``: whether the caller passes the extended-attributes
    policy; checked once per request by the caller of a list.
    """
    context = util.context(req)
    version = util.version(req)
    if show_extended is None:
        show_extended = context.can(server_policies.EXTENDED_ATTRIBUTES,
                                    fatal=False)
    status = status_from_state(instance.get('vm_state'),
                               instance.get('task_state'))
    body = {
        'id': instance['uuid'],
        'name': instance.get('name') or '',
        'status': status,
        'tenant_id': instance.get('project_id') or '',
        'user_id': instance.get('user_id') or '',
        'metadata': dict(instance.get('metadata') or {}),
        'hostId': _host_id(instance),
        'image': _image(req, instance),
        'flavor': _flavor(req, instance),
        'created': isotime(instance.get('created_at')),
        'updated': isotime(instance.get('updated_at')
                           or instance.get('created_at')),
        'addresses': {},
        'accessIPv4': _access_ip(instance.get('access_ip_v4')),
        'accessIPv6': _access_ip(instance.get('access_ip_v6')),
        'links': util.links(req, 'servers', instance['uuid']),
        'key_name': None,
        'config_drive': '',
        'security_groups': [{'name': 'default'}],
        'OS-DCF:diskConfig': disk_config(instance),
        'OS-EXT-AZ:availability_zone': 'nova',
        'OS-EXT-STS:task_state': instance.get('task_state'),
        'OS-EXT-STS:vm_state': instance.get('vm_state'),
        'OS-EXT-STS:power_state': int(instance.get('power_state') or 0),
        'OS-SRV-USG:launched_at': precise_time(instance.get('launched_at')),
        'OS-SRV-USG:terminated_at': precise_time(
            instance.get('terminated_at')),
        'os-extended-volumes:volumes_attached': _volumes_attached(
            req, context, instance),
    }
    if status in _PROGRESS_STATUSES:
        body['progress'] = int(instance.get('progress') or 0)
    fault = instance.get('fault')
    if fault and status in _FAULT_STATUSES:
        body['fault'] = _fault(context, fault)
    if show_extended:
        body['OS-EXT-SRV-ATTR:host'] = instance.get('host')
        body['OS-EXT-SRV-ATTR:hypervisor_hostname'] = instance.get('host')
        body['OS-EXT-SRV-ATTR:instance_name'] = (
            _INSTANCE_NAME_PREFIX + instance['uuid'])
        if version.matches((2, 3)):
            body.update({
                'OS-EXT-SRV-ATTR:reservation_id': None,
                'OS-EXT-SRV-ATTR:launch_index': 0,
                'OS-EXT-SRV-ATTR:hostname': instance.get('name'),
                'OS-EXT-SRV-ATTR:kernel_id': None,
                'OS-EXT-SRV-ATTR:ramdisk_id': None,
                'OS-EXT-SRV-ATTR:root_device_name': instance.get(
                    'root_device_name'),
                'OS-EXT-SRV-ATTR:user_data': None,
            })
    if version.matches((2, 9)):
        body['locked'] = bool(instance.get('locked', False))
    if version.matches((2, 19)):
        body['description'] = instance.get('description')
    if version.matches((2, 26)):
        body['tags'] = list(instance.get('tags') or [])
    return body


def flavor_summary(req, flavor):
    return {'id': str(flavor['id']), 'name': flavor['name'],
            'links': util.links(req, 'flavors', flavor['id'])}


def flavor(req, flavor):
    body = flavor_summary(req, flavor)
    body.update({
        'ram': flavor['memory_mb'],
        'disk': flavor['root_gb'],
        'vcpus': flavor['vcpus'],
        'OS-FLV-EXT-DATA:ephemeral': flavor.get('ephemeral_gb', 0),
        'OS-FLV-DISABLED:disabled': False,
        'swap': flavor.get('swap') or '',
        'rxtx_factor': 1.0,
        'os-flavor-access:is_public': True,
    })
    return body


# -- the compute images proxy (Nova's views/images.py) ----------------------

# Glance status -> Nova's image status; anything else is UNKNOWN.
_IMAGE_STATUS = {
    'active': 'ACTIVE', 'queued': 'SAVING', 'saving': 'SAVING',
    'deleted': 'DELETED', 'pending_delete': 'DELETED', 'killed': 'ERROR',
}
_IMAGE_PROGRESS = {'queued': 25, 'saving': 50, 'active': 100}
# Properties Nova stores JSON-encoded in Glance and shows decoded.
_JSON_PROPERTIES = ('block_device_mapping', 'mappings')
IMAGE_MEDIA_TYPE = 'application/vnd.openstack.image'


def image_metadata(image):
    """Nova's image ``properties``: the custom Glance properties."""
    metadata = glance.custom_properties(image)
    for key in _JSON_PROPERTIES:
        if isinstance(metadata.get(key), str):
            try:
                metadata[key] = json.loads(metadata[key])
            except ValueError:
                pass  # not ours: show it as Glance has it
    return metadata


def _image_links(req, image_id, glance_url):
    return util.links(req, 'images', image_id) + [
        {'rel': 'alternate', 'type': IMAGE_MEDIA_TYPE,
         'href': glance_url(image_id)}]


def image_summary(req, image, glance_url):
    """An item of GET /images. ``glance_url(image_id)`` is the image in
    Glance (the ``alternate`` link)."""
    return {'id': image['id'], 'name': image.get('name'),
            'links': _image_links(req, image['id'], glance_url)}


def image_detail(req, image, glance_url):
    """GET /images/{id} and the items of /images/detail."""
    metadata = image_metadata(image)
    body = {
        'id': image['id'],
        'name': image.get('name'),
        'minRam': int(image.get('min_ram') or 0),
        'minDisk': int(image.get('min_disk') or 0),
        'metadata': metadata,
        'created': isotime(image.get('created_at')),
        'updated': isotime(image.get('updated_at')),
        'status': _IMAGE_STATUS.get(image.get('status'), 'UNKNOWN'),
        'progress': _IMAGE_PROGRESS.get(image.get('status'), 0),
        # Glance has no size until data arrives; Nova shows 0 then.
        'OS-EXT-IMG-SIZE:size': int(image.get('size') or 0),
        'links': _image_links(req, image['id'], glance_url),
    }
    # A snapshot names its server.
    instance_uuid = metadata.get('instance_uuid')
    if instance_uuid is not None:
        body['server'] = {'id': instance_uuid,
                          'links': util.links(req, 'servers', instance_uuid)}
    auto_disk_config = metadata.get('auto_disk_config')
    if auto_disk_config is not None:
        body['OS-DCF:diskConfig'] = (
            'AUTO' if strutils.bool_from_string(auto_disk_config)
            else 'MANUAL')
    return body


def collection_links(req, items, collection, max_limit):
    """Nova's ``<collection>_links``: a "next" link when the page is full
    (``limit``, or ``max_limit`` when that is smaller or no limit was
    asked for), with the request's parameters and the last item as marker.
    """
    try:
        limit = int(req.params.get('limit', max_limit))
    except ValueError:
        limit = max_limit
    page = min(limit, max_limit)
    if not page or page != len(items):
        return []
    params = sorted((k, v) for k, v in req.params.items() if k != 'marker')
    params.append(('marker', items[-1]['id']))
    return [{'rel': 'next', 'href': '%s?%s' % (
        util.link(req, *collection.split('/')), parse.urlencode(params))}]
