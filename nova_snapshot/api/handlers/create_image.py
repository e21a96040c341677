"""The createImage server action, in Nova's order.

1. load the server (404, even for callers the policy would refuse);
2. policy ``create_image`` against the *instance's* project (403);
3. below 2.39, the image metadata quota (403, Nova's default limit 128);
4. volume-backed servers need ``create_image:allow_volume_backed`` too and
   go to ``snapshot_volume_backed``; the rest to ``snapshot``;
5. errors as Nova's handler maps them (nova-createimage.md 1.7): state
   409, ``InstanceQuiesceFailed`` 409, ``OverQuota`` 403 whatever its own
   code, any other ``Invalid`` 400, ``Forbidden`` 403; everything else
   (``VolumeNotFound`` included) is a 500, but for two answers of the
   compute host where Nova has a 500 too: an outage (Glance, Cinder, the
   compute service or its hypervisor unreachable) is a 503 the client may
   retry, and a server or guest gone meanwhile is a 404;
6. 202: below 2.45 a ``Location`` header naming the Glance image, from 2.45
   ``{"image_id": ...}`` and no header.

The body was validated against ``schemas.servers.CREATE_IMAGE`` already.
"""

import contextlib

from oslo_log import log as logging

from nova_snapshot.api import faults
from nova_snapshot.api.handlers import servers
from nova_snapshot.api.schemas import servers as schema
from nova_snapshot.api import util
from nova_snapshot import exception
from nova_snapshot.policies import servers as policies

LOG = logging.getLogger(__name__)
# Nova's [quota] metadata_items default; it only applies below 2.39.
METADATA_ITEMS_LIMIT = 128
ACTION = 'createImage'


def image_location(req, image_id):
    """Nova's generate_image_url: <glance endpoint>/images/<id>, no /v2
    (the endpoint from the catalog unless configured)."""
    return util.compute_api(req).image_api.generate_image_url(image_id)


@contextlib.contextmanager
def image_request_errors(action, server_id):
    """Nova's answers to what a request that makes an image raises
    (createImage, createBackup): see step 5 above."""
    try:
        yield
    except exception.InstanceInvalidState as exc:
        raise servers.conflict(exc, action, server_id)
    except (exception.InstanceQuiesceFailed, exception.Conflict) as exc:
        # Conflict: the compute host's wait for the server's lock or a
        # snapshot slot ran out within the call's deadline.
        raise faults.APIFault(409, exc.format_message())
    except exception.OverQuota as exc:
        # Before Forbidden/Invalid: Nova answers 403 even where the
        # exception says 413.
        raise faults.APIFault(403, exc.format_message())
    except exception.Invalid as exc:
        raise faults.APIFault(400, exc.format_message())
    except exception.Forbidden as exc:
        raise faults.APIFault(403, exc.format_message())
    except exception.InstanceNotFound as exc:
        # Deleted meanwhile, or its guest is gone from the host (the
        # compute side's answer to a volume-backed snapshot call): Nova's
        # 404, as for a console read.
        raise faults.APIFault(404, exc.format_message())
    except exception.ServiceUnavailable:
        # Glance, Cinder, the compute service or its hypervisor
        # (libvirtd restarting): a 503 fault (faults.from_exception).
        raise
    except exception.NovaSnapshotException as exc:
        LOG.error('%s of server %s failed: %s', action, server_id,
                  exc.format_message())
        raise faults.APIFault(500, '%s\n%s' % (faults.UNEXPECTED, type(exc)))


def create_image(req, server_id, body):
    context = util.context(req)
    compute_api = util.compute_api(req)
    version = util.version(req)

    instance = servers.load_server(req, server_id)
    target = {'project_id': instance['project_id']}
    context.can(policies.CREATE_IMAGE, target=target)

    entity = body[ACTION]
    # The schema already refuses edge whitespace; strip() is Nova's
    # normalize_name and changes nothing in practice.
    name = entity['name'].strip()
    metadata = entity.get('metadata', {})

    if not version.matches((2, 39)) and len(metadata) > METADATA_ITEMS_LIMIT:
        raise faults.APIFault(403, 'Image metadata limit exceeded')

    with image_request_errors(ACTION, server_id):
        if compute_api.is_volume_backed(context, instance):
            context.can(policies.CREATE_IMAGE_VOLUME_BACKED, target=target)
            image = compute_api.snapshot_volume_backed(
                context, instance, name, extra_properties=metadata)
        else:
            image = compute_api.snapshot(
                context, instance, name, extra_properties=metadata)

    image_id = str(image['id'])
    if version.matches((2, 45)):
        return util.json_response(req, {'image_id': image_id}, status=202,
                                  schema=schema.CREATE_IMAGE_RESPONSE_V245)
    response = util.empty_response(202)
    response.headers['Location'] = image_location(req, image_id)
    return response
