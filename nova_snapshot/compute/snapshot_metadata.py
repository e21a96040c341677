"""Which image properties a server snapshot carries.

Two halves of one rule live here so they cannot drift apart:

* at boot, :func:`system_metadata_from_image` records the base image's
  properties in the instance's system_metadata as ``image_<prop>``;
* at snapshot time, :func:`snapshot_image_meta` turns them back into image
  properties, drops what must not be inherited and adds the snapshot's own.

Unlike Nova, only ``image_``-prefixed system_metadata is inherited (an
allow-list): other keys (passwords, bookkeeping such as the id of the
snapshot being taken) never leak into an image.
"""

SYSMETA_PREFIX = 'image_'
# Glance v2 fields that are not properties: never copied into system
# metadata and never sent back as properties.
GLANCE_CORE_FIELDS = frozenset((
    'id', 'name', 'status', 'visibility', 'protected', 'os_hidden', 'owner',
    'size', 'virtual_size', 'checksum', 'os_hash_algo', 'os_hash_value',
    'created_at', 'updated_at', 'tags', 'file', 'schema', 'self',
    'direct_url', 'locations', 'stores', 'disk_format', 'container_format',
    'min_ram', 'min_disk', 'deleted', 'deleted_at',
))
# Image fields that are stored in sysmeta and come back as top-level fields.
_TOP_LEVEL = ('min_ram', 'min_disk', 'disk_format', 'container_format')
# Nova's SM_SKIP_KEYS (after the prefix is stripped): block device
# mappings of the base image describe its volumes, not the snapshot's.
_SKIP_KEYS = frozenset(('mappings', 'block_device_mapping', 'img_mappings',
                        'img_block_device_mapping'))
# Nova's NON_INHERITABLE_IMAGE_PROPERTIES: a snapshot is neither encrypted
# with the base image's key nor signed by the base image's signature.
NON_INHERITABLE = frozenset((
    'cinder_encryption_key_id', 'cinder_encryption_key_deletion_policy',
    'img_signature', 'img_signature_hash_method', 'img_signature_key_type',
    'img_signature_certificate_uuid',
))
# Properties a volume-backed snapshot writes itself; never inherited.
VOLUME_BACKED_OWN = ('block_device_mapping', 'bdm_v2', 'root_device_name')
# Reserved by Glance: it refuses to create an image that sets them.
NON_INHERITABLE_NAMESPACES = ('os_glance',)
# Nova's maximum length of a system_metadata value.
MAX_VALUE_LENGTH = 255


def _int_or_zero(value):
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return 0


def system_metadata_from_image(image, flavor):
    """Return the ``image_*`` system_metadata for a server booted from
    ``image`` (flattened Glance dict) with ``flavor``."""
    sysmeta = {}
    for key, value in image.items():
        if key in GLANCE_CORE_FIELDS or value is None:
            continue
        if key in _SKIP_KEYS:
            # A restore's mapping (a long JSON list) describes the source's
            # volumes; it would be cut at 255 characters anyway.
            continue
        if isinstance(value, (list, dict)):
            continue
        sysmeta[SYSMETA_PREFIX + key] = str(value)[:MAX_VALUE_LENGTH]
    sysmeta['image_min_ram'] = str(_int_or_zero(image.get('min_ram')))
    # Nova raises min_disk to the flavor's root disk: the snapshot of that
    # disk cannot boot on anything smaller.
    sysmeta['image_min_disk'] = str(max(_int_or_zero(image.get('min_disk')),
                                        _int_or_zero(flavor.get('root_gb'))))
    for key in ('disk_format', 'container_format'):
        if image.get(key):
            sysmeta[SYSMETA_PREFIX + key] = str(image[key])
    sysmeta.setdefault('image_base_image_ref', str(image['id']))
    return sysmeta


def image_meta_from_system_metadata(system_metadata):
    """Rebuild the base image (top-level fields plus properties) from
    ``image_*`` system_metadata."""
    meta = {'properties': {}}
    for key, value in (system_metadata or {}).items():
        if not key.startswith(SYSMETA_PREFIX) or value is None:
            continue
        name = key[len(SYSMETA_PREFIX):]
        if not name or name in _SKIP_KEYS:
            continue
        if name in _TOP_LEVEL:
            meta[name] = value
        else:
            meta['properties'][name] = value
    for key in ('min_ram', 'min_disk'):
        if key in meta:
            meta[key] = _int_or_zero(meta[key])
    return meta


def _inheritable(key, conf):
    if key in NON_INHERITABLE or key in GLANCE_CORE_FIELDS:
        return False
    if key in conf.compute.non_inheritable_image_properties:
        return False
    return not key.startswith(NON_INHERITABLE_NAMESPACES)


def snapshot_image_meta(conf, context, instance, name, extra_properties=None,
                        image_type='snapshot', volume_backed=False):
    """Return the flattened image dict to create for a snapshot.

    Order matters (Nova's ``create_image`` and
    ``initialize_instance_snapshot_metadata``): inherited properties, then
    ``image_type``/``instance_uuid``/``user_id``, then the user's metadata
    last, so a user may override any of them (tempest sends
    ``image_type=test`` and expects it back).

    :param volume_backed: Nova's ``snapshot_volume_backed`` does not go
        through ``create_image``: no ``image_type``/``instance_uuid``/
        ``user_id``, and the inherited ``block_device_mapping``, ``bdm_v2``
        and ``root_device_name`` are dropped (the snapshot sets its own).
    """
    base = image_meta_from_system_metadata(instance.get('system_metadata'))
    properties = {key: value for key, value in base['properties'].items()
                  if _inheritable(key, conf)}
    if volume_backed:
        for key in VOLUME_BACKED_OWN:
            properties.pop(key, None)
    else:
        properties.update({'instance_uuid': instance['uuid'],
                           'user_id': str(context.user_id),
                           'image_type': image_type})
    properties.update(extra_properties or {})

    image = {'name': name,
             'min_ram': base.get('min_ram', 0),
             'min_disk': base.get('min_disk', 0)}
    if image_type != 'snapshot' and not volume_backed:
        # A backup keeps the formats; a snapshot gets them from the driver
        # at upload time (it may convert).
        for key in ('disk_format', 'container_format'):
            if base.get(key):
                image[key] = base[key]
    if context.project_id != instance['project_id']:
        # An admin snapshotting another project's server: the image belongs
        # to the admin's project and is shared with the server's owner.
        image['visibility'] = 'shared'
        image['instance_owner'] = instance['project_id']
    else:
        image['visibility'] = 'private'
    # Properties are flattened into top-level keys (Glance v2) but may not
    # overwrite the fields set above.
    for key, value in properties.items():
        if key not in image and key not in GLANCE_CORE_FIELDS:
            image[key] = value
    return image


def volume_snapshot_image_meta(conf, context, instance, name,
                               extra_properties=None):
    """The image dict of a volume-backed snapshot (Nova §2.3), without the
    mapping: zero bytes, no formats (Glance gets raw/bare from
    ``create_active_empty``), ``root_device_name`` of the instance."""
    image = snapshot_image_meta(conf, context, instance, name,
                                extra_properties, volume_backed=True)
    image['size'] = 0
    for key in ('disk_format', 'container_format'):
        image.pop(key, None)
    if instance.get('root_device_name'):
        image['root_device_name'] = instance['root_device_name']
    return image
