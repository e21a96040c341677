"""The createBackup server action, in Nova's order.

1. load the server (404, even for callers the policy would refuse);
2. policy ``os_compute_api:os-create-backup`` against the *instance's*
   project (403);
3. below 2.39, the image metadata quota (403, Nova's default limit 128);
4. ``ComputeAPI.backup``: a wrong state is 409, a volume-backed server
   400 (Nova backs up image-backed servers only);
5. 202: below 2.45 a ``Location`` header naming the image under this
   API's ``/images`` (none when ``rotation`` is 0: the rotation deletes
   that image too), from 2.45 ``{"image_id": ...}`` and no header.

The body was validated against ``schemas.create_backup.CREATE_BACKUP``.
"""

from nova_snapshot.api import faults
from nova_snapshot.api.handlers import create_image
from nova_snapshot.api.handlers import servers
from nova_snapshot.api.schemas import create_backup as schema
from nova_snapshot.api import util
from nova_snapshot.policies import create_backup as policies

ACTION = 'createBackup'
# More digits than this keep every backup there could be; int() of a
# string of thousands of digits would raise (a 500) instead.
_MAX_ROTATION_DIGITS = 18


def rotation_value(value):
    """The schema's integer or string of digits as an int."""
    if isinstance(value, str):
        digits = value.lstrip('0') or '0'
        if len(digits) > _MAX_ROTATION_DIGITS:
            return 10 ** _MAX_ROTATION_DIGITS
        return int(digits)
    return min(int(value), 10 ** _MAX_ROTATION_DIGITS)


def create_backup(req, server_id, body):
    context = util.context(req)
    compute_api = util.compute_api(req)
    version = util.version(req)

    instance = servers.load_server(req, server_id)
    context.can(policies.BASE_POLICY_NAME,
                target={'project_id': instance['project_id']})

    entity = body[ACTION]
    name = entity['name'].strip()
    backup_type = entity['backup_type']
    rotation = rotation_value(entity['rotation'])
    metadata = entity.get('metadata', {})
    if not version.matches((2, 39)) and \
            len(metadata) > create_image.METADATA_ITEMS_LIMIT:
        raise faults.APIFault(403, 'Image metadata limit exceeded')

    with create_image.image_request_errors(ACTION, server_id):
        image = compute_api.backup(context, instance, name, backup_type,
                                   rotation, extra_properties=metadata)

    image_id = str(image['id'])
    if version.matches((2, 45)):
        return util.json_response(req, {'image_id': image_id}, status=202,
                                  schema=schema.CREATE_BACKUP_RESPONSE_V245)
    response = util.empty_response(202)
    if rotation > 0:
        response.headers['Location'] = util.link(req, 'images', image_id)
    return response
