"""Nova's JSON shapes for servers, flavors and images (the compute images
proxy), built from plain dicts."""

import datetime
import hashlib
import json
import re
from urllib import parse

from oslo_utils import strutils

from nova_snapshot.api import util
from nova_snapshot.compute import server_update as updates
from nova_snapshot.compute import snapshot_metadata
from nova_snapshot.compute import task_states
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
    vm_states.SHELVED: {'default': 'SHELVED'},
    vm_states.SHELVED_OFFLOADED: {'default': 'SHELVED_OFFLOADED'},
    vm_states.SOFT_DELETED: {'default': 'SOFT_DELETED'},
}
# Reboots and rebuilds show as Nova shows them (REBOOT, HARD_REBOOT,
# REBUILD; a rebuild also from STOPPED and ERROR).
_REBUILD_STATUSES = {state: 'REBUILD' for state in task_states.REBUILD_STATES}
_STATE_MAP[vm_states.ACTIVE].update(_REBUILD_STATUSES)
_STATE_MAP[vm_states.ACTIVE].update(
    {state: 'REBOOT' for state in task_states.SOFT_REBOOT_STATES})
_STATE_MAP[vm_states.ACTIVE].update(
    {state: 'HARD_REBOOT' for state in task_states.HARD_REBOOT_STATES})
_STATE_MAP[vm_states.STOPPED].update(_REBUILD_STATUSES)
_STATE_MAP[vm_states.ERROR].update(_REBUILD_STATUSES)
# Nova shows progress only in these statuses and the fault only in these.
_PROGRESS_STATUSES = ('ACTIVE', 'BUILD', 'REBUILD', 'RESIZE',
                      'VERIFY_RESIZE', 'MIGRATING')
_FAULT_STATUSES = ('ERROR', 'DELETED')
# Not Nova's domain name scheme; ours (virt/libvirt/host.py).
_INSTANCE_NAME_PREFIX = 'instance-'
# system_metadata key of the availability zone a create asked for (2.96's
# pinned_availability_zone); ComputeAPI.create writes it under this name
# (compute/api.py PINNED_AZ_KEY; not imported: the views stay free of the
# compute API's imports).
PINNED_AZ_KEY = 'pinned_availability_zone'


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


def host_id(host, project_id):
    """Nova's generate_hostid: the host hashed with the project, so a
    project can tell its servers' hosts apart without learning them."""
    if not host:
        return ''
    data = (project_id or '') + host
    return hashlib.sha224(data.encode('utf-8')).hexdigest()


def _host_id(instance):
    return host_id(instance.get('host'), instance.get('project_id'))


# The boot image properties shown in the embedded image from 2.98: Nova
# shows only its ImageMetaProps fields (hardware and OS hints), never a
# user's free-form property, which may hold anything. These prefixes and
# names cover those fields; anything else stays hidden.
_STANDARD_IMAGE_PROPERTY_PREFIXES = ('hw_', 'img_', 'os_', 'trait:',
                                     'traits_')
_STANDARD_IMAGE_PROPERTIES = frozenset((
    'architecture', 'hypervisor_type', 'hypervisor_version_requires',
    'vm_mode', 'auto_disk_config', 'owner_specified.openstack.md5',
    'owner_specified.openstack.object', 'owner_specified.openstack.sha256',
))
# The key and value shapes Nova's 2.98 response allows.
_IMAGE_PROPERTY_KEY = re.compile(r'^[a-zA-Z0-9_:. ]{1,255}$')


def _image_properties(instance):
    properties = snapshot_metadata.image_meta_from_system_metadata(
        instance.get('system_metadata'))['properties']
    return {key: str(value)[:255] for key, value in properties.items()
            if (key in _STANDARD_IMAGE_PROPERTIES or
                key.startswith(_STANDARD_IMAGE_PROPERTY_PREFIXES))
            and _IMAGE_PROPERTY_KEY.match(key) and value is not None}


def _image(req, instance):
    image_ref = instance.get('image_ref')
    if not image_ref:
        return ''  # volume-backed: Nova sends an empty string
    image = {'id': image_ref, 'links': [
        {'rel': 'bookmark', 'href': util.bookmark(req, 'images', image_ref)}]}
    if util.version(req).matches((2, 98)):
        image['properties'] = _image_properties(instance)
    return image


def _flavor(req, instance):
    flavor = instance.get('flavor') or {}
    if util.version(req).matches((2, 47)):
        # The flavor as the server got it. Flavors here have no extra
        # specs, so there is nothing for Nova's extra-specs policy to
        # hide: an empty dict for everyone.
        return {'vcpus': int(flavor.get('vcpus') or 0),
                'ram': int(flavor.get('memory_mb') or 0),
                'disk': int(flavor.get('root_gb') or 0),
                'ephemeral': int(flavor.get('ephemeral_gb') or 0),
                'swap': int(flavor.get('swap') or 0),
                'original_name': flavor.get('name') or '',
                'extra_specs': dict(flavor.get('extra_specs') or {})}
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
        'key_name': instance.get('key_name'),
        'config_drive': '',
        'security_groups': [{'name': 'default'}],
        'OS-DCF:diskConfig': disk_config(instance),
        # Every host is in the one zone ([DEFAULT]
        # default_availability_zone, 'nova' unless set).
        'OS-EXT-AZ:availability_zone': util.conf(
            req).default_availability_zone,
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
                # The create request's (servers made before 0007: null).
                'OS-EXT-SRV-ATTR:reservation_id': instance.get(
                    'reservation_id'),
                'OS-EXT-SRV-ATTR:launch_index': int(
                    instance.get('launch_index') or 0),
                'OS-EXT-SRV-ATTR:hostname': hostname(instance),
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
    _add_later_fields(req, version, instance, body, show_extended)
    return body


def hostname(instance):
    """The server's hostname: the one its create or an update asked for
    (2.90, kept in system_metadata under compute/api.py's HOSTNAME_KEY; a
    rename writes down the one it had), else Nova's default, the name made
    a valid hostname (lower case, [a-z0-9-], at most 63)."""
    asked = (instance.get('system_metadata') or {}).get('hostname')
    if asked:
        return asked
    return updates.default_hostname(instance.get('name'), instance['uuid'])


def _add_later_fields(req, version, instance, body, show_extended):
    """The fields of 2.63 and later (see api/microversion.py)."""
    if version.matches((2, 63)):
        body['trusted_image_certificates'] = None  # never set here
    if version.matches((2, 73)):
        body['locked_reason'] = instance.get('locked_reason')
    if version.matches((2, 90)):
        # Shown whatever the extended-attributes policy says.
        body['OS-EXT-SRV-ATTR:hostname'] = hostname(instance)
    if version.matches((2, 96)):
        body['pinned_availability_zone'] = (
            instance.get('system_metadata') or {}).get(PINNED_AZ_KEY)
    if version.matches((2, 100)):
        body['scheduler_hints'] = {}  # create takes none here


def server_show(req, instance):
    """GET /servers/{id}: the full body, plus server_groups from 2.71
    (Nova leaves them out of the detail list)."""
    body = server(req, instance)
    if util.version(req).matches((2, 71)):
        body['server_groups'] = []  # no server groups here
    return body


# Fields Nova leaves out of the rebuild and update bodies below 2.75.
_NOT_IN_OLD_REBUILD = (
    'OS-EXT-AZ:availability_zone', 'config_drive', 'key_name',
    'OS-SRV-USG:launched_at', 'OS-SRV-USG:terminated_at', 'security_groups',
    'OS-EXT-STS:task_state', 'OS-EXT-STS:vm_state', 'OS-EXT-STS:power_state',
    'os-extended-volumes:volumes_attached', 'OS-EXT-SRV-ATTR:host',
    'OS-EXT-SRV-ATTR:hypervisor_hostname', 'OS-EXT-SRV-ATTR:instance_name',
    'OS-EXT-SRV-ATTR:reservation_id', 'OS-EXT-SRV-ATTR:launch_index',
    'OS-EXT-SRV-ATTR:kernel_id', 'OS-EXT-SRV-ATTR:ramdisk_id',
    'OS-EXT-SRV-ATTR:root_device_name', 'OS-EXT-SRV-ATTR:user_data',
)


def server_rebuild(req, instance, admin_password=None):
    """The server body of a rebuild response (202), per microversion.

    Below 2.75 Nova answers a reduced body (no zone, states, usage,
    volumes, security groups or extended attributes); from 2.75 the body
    of GET /servers/{id}. ``key_name`` from 2.54 and ``user_data`` from
    2.57 (not kept here: null); OS-EXT-SRV-ATTR:user_data is never
    in it. ``admin_password`` is added as ``adminPass`` when given.
    """
    version = util.version(req)
    body = server_show(req, instance)
    body.pop('OS-EXT-SRV-ATTR:user_data', None)
    if not version.matches((2, 75)):
        for key in _NOT_IN_OLD_REBUILD:
            body.pop(key, None)
    if version.matches((2, 54)):
        body['key_name'] = instance.get('key_name')
    if version.matches((2, 57)):
        body['user_data'] = None
    if admin_password is not None:
        body['adminPass'] = admin_password
    return body


def server_update(req, instance):
    """The server body of an update response (200), per microversion:
    Nova's reduced body below 2.75 (as for rebuild), from 2.75 the body
    of GET /servers/{id}."""
    body = server_show(req, instance)
    if not util.version(req).matches((2, 75)):
        for key in _NOT_IN_OLD_REBUILD:
            body.pop(key, None)
    return body


def flavor_summary(req, flavor):
    return {'id': str(flavor['id']), 'name': flavor['name'],
            'links': util.links(req, 'flavors', flavor['id'])}


def flavor(req, flavor):
    version = util.version(req)
    body = flavor_summary(req, flavor)
    body.update({
        'ram': flavor['memory_mb'],
        'disk': flavor['root_gb'],
        'vcpus': flavor['vcpus'],
        'OS-FLV-EXT-DATA:ephemeral': flavor.get('ephemeral_gb', 0),
        # Nova shows no swap as "" until 2.75, then as 0.
        'swap': (int(flavor.get('swap') or 0) if version.matches((2, 75))
                 else flavor.get('swap') or ''),
        'os-flavor-access:is_public': True,
    })
    if not version.matches((2, 102)):
        body['OS-FLV-DISABLED:disabled'] = False
        body['rxtx_factor'] = 1.0
    if version.matches((2, 55)):
        body['description'] = flavor.get('description')
    if version.matches((2, 61)):
        # No flavor here has extra specs: nothing for a policy to hide.
        body['extra_specs'] = dict(flavor.get('extra_specs') or {})
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
