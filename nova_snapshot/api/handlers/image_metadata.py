"""/images/{image_id}/metadata: Nova's image metadata proxy (below 2.39).

An image's metadata is its custom Glance properties. Changes go to Glance
as the caller; Nova's own limit applies first: more than
``METADATA_ITEMS_LIMIT`` properties after the change is 403 "Image
metadata limit exceeded" (Nova's ``[quota] metadata_items``, 128). Glance
may refuse further (its own property quota, reserved ``os_glance``
names): its 403 and 413 both come back as 403.

Nova served these up to 2.38, three versions longer than /images.
"""

from nova_snapshot.api import faults
from nova_snapshot.api.handlers import create_image
from nova_snapshot.api.handlers import images
from nova_snapshot.api.schemas import images as schema
from nova_snapshot.api import util
from nova_snapshot.api import validation
from nova_snapshot.api import views
from nova_snapshot import exception
from nova_snapshot.policies import images as policies

# Nova's image-metadata API went with 2.39.
METADATA_MAX_VERSION = (2, 38)
METADATA_ITEMS_LIMIT = create_image.METADATA_ITEMS_LIMIT
# Glance attributes that decide who owns and who sees an image. Nova
# passes any key on to Glance, so its proxy can make an image community
# or hidden; metadata here is the custom properties the reads show, and
# sharing stays with Glance's own API (and its policies).
ACCESS_ATTRIBUTES = frozenset(['owner', 'visibility', 'os_hidden',
                               'protected'])


def _start(req, policy, body_schema=None):
    """Version, body and policy checks in Nova's order.

    Returns the context and the body (None without a schema).
    """
    images.require_version(req, METADATA_MAX_VERSION)
    body = None
    if body_schema is not None:
        body = util.extract_json(req)
        validation.validate(body, body_schema)
    context = util.context(req)
    context.can(policy, target={'project_id': context.project_id})
    return context, body


def _get_image(req, context, image_id):
    try:
        return images.image_api(req).get(context, image_id)
    except exception.ImageNotAuthorized as exc:
        raise faults.APIFault(403, exc.format_message())
    except exception.ImageNotFound:
        raise faults.APIFault(404, 'Image not found.')


def _check_keys(metadata):
    named = sorted(ACCESS_ATTRIBUTES.intersection(metadata))
    if named:
        raise faults.APIFault(
            400, 'Invalid metadata: %s is an attribute of the image, not '
                 'metadata (change it in the Image service).'
                 % ', '.join(named))


def _check_limit(metadata):
    if len(metadata) > METADATA_ITEMS_LIMIT:
        raise faults.APIFault(403, 'Image metadata limit exceeded')


def _update(req, context, image_id, values, remove=()):
    """Set ``values`` and drop ``remove`` in Glance; the updated image."""
    try:
        return images.image_api(req).update(
            context, image_id, values, remove_props=list(remove))
    except exception.ImageNotFound:
        raise faults.APIFault(404, 'Image not found.')
    except exception.Forbidden as exc:
        # ImageNotAuthorized and Glance's property quota (OverQuota).
        raise faults.APIFault(403, exc.format_message())
    except exception.Invalid as exc:
        raise faults.APIFault(400, exc.format_message())
    except ValueError as exc:
        # A key naming a Glance attribute (min_ram...) with a bad value.
        raise faults.APIFault(400, 'Invalid metadata: %s' % exc)


def _metadata_response(req, metadata):
    return util.json_response(req, {'metadata': metadata},
                              schema=schema.METADATA_RESPONSE)


def index(req, image_id):
    context, _ = _start(req, policies.METADATA_INDEX)
    image = _get_image(req, context, image_id)
    return _metadata_response(req, views.image_metadata(image))


def show(req, image_id, key):
    context, _ = _start(req, policies.METADATA_SHOW)
    metadata = views.image_metadata(_get_image(req, context, image_id))
    if key not in metadata:
        raise faults.APIFault(404, 'The resource could not be found.')
    return util.json_response(req, {'meta': {key: metadata[key]}},
                              schema=schema.META_RESPONSE)


def create(req, image_id):
    """POST: merge the given items into the image's metadata."""
    context, body = _start(req, policies.METADATA_CREATE,
                           schema.CREATE_METADATA)
    new = body['metadata']
    _check_keys(new)
    image = _get_image(req, context, image_id)
    _check_limit(dict(views.image_metadata(image), **new))
    image = _update(req, context, image_id, new)
    return _metadata_response(req, views.image_metadata(image))


def update_all(req, image_id):
    """PUT: the given items become the image's whole metadata."""
    context, body = _start(req, policies.METADATA_UPDATE_ALL,
                           schema.UPDATE_ALL_METADATA)
    new = body['metadata']
    _check_keys(new)
    image = _get_image(req, context, image_id)
    _check_limit(new)
    old = views.image_metadata(image)
    _update(req, context, image_id, new,
            remove=[key for key in old if key not in new])
    return _metadata_response(req, new)


def update(req, image_id, key):
    """PUT /{key}: set one item; the body must name the same key."""
    context, body = _start(req, policies.METADATA_UPDATE,
                           schema.UPDATE_METADATA_ITEM)
    meta = body['meta']
    if key not in meta:
        raise faults.APIFault(400, 'Request body and URI mismatch')
    _check_keys(meta)
    image = _get_image(req, context, image_id)
    _check_limit(dict(views.image_metadata(image), **meta))
    _update(req, context, image_id, meta)
    return util.json_response(req, {'meta': meta},
                              schema=schema.META_RESPONSE)


def delete(req, image_id, key):
    context, _ = _start(req, policies.METADATA_DELETE)
    image = _get_image(req, context, image_id)
    if key not in views.image_metadata(image):
        raise faults.APIFault(404, 'Invalid metadata key')
    _update(req, context, image_id, {}, remove=[key])
    return util.empty_response(204)
