"""Policies for the compute images proxy (/images, /images/{id}/metadata).

Nova checks no policy on these routes (its last rules here, the
"discoverable" ones, went in Pike): any authenticated caller reaches them
and Glance, called with the caller's own identity, decides which images
exist for them and which they may change. We still put a rule in front of
every route so none is unpoliced and operators can close the proxy: readers
may read, members may delete and change metadata. The names are ours, in
Nova's scheme.
"""

from oslo_policy import policy

from nova_snapshot.policies import base

IMAGES = 'os_compute_api:images:%s'
INDEX = IMAGES % 'index'
SHOW = IMAGES % 'show'
DELETE = IMAGES % 'delete'

METADATA = 'os_compute_api:image-metadata:%s'
METADATA_INDEX = METADATA % 'index'
METADATA_SHOW = METADATA % 'show'
METADATA_CREATE = METADATA % 'create'
METADATA_UPDATE = METADATA % 'update'
METADATA_UPDATE_ALL = METADATA % 'update_all'
METADATA_DELETE = METADATA % 'delete'

_IMAGE = '/images/{image_id}'
_META = _IMAGE + '/metadata'
_META_KEY = _META + '/{key}'


def _rule(name, check_str, description, method, path):
    return policy.DocumentedRuleDefault(
        name=name, check_str=check_str,
        description=description + ' (proxied to Glance; API versions '
                                  'below 2.36, metadata below 2.39).',
        operations=[{'method': method, 'path': p}
                    for p in ([path] if isinstance(path, str) else path)],
        scope_types=['project'])


rules = [
    _rule(INDEX, base.PROJECT_READER_OR_ADMIN, 'List images', 'GET',
          ['/images', '/images/detail']),
    _rule(SHOW, base.PROJECT_READER_OR_ADMIN, 'Show an image', 'GET',
          _IMAGE),
    _rule(DELETE, base.PROJECT_MEMBER_OR_ADMIN, 'Delete an image', 'DELETE',
          _IMAGE),
    _rule(METADATA_INDEX, base.PROJECT_READER_OR_ADMIN,
          'List the metadata of an image', 'GET', _META),
    _rule(METADATA_SHOW, base.PROJECT_READER_OR_ADMIN,
          'Show one metadata item of an image', 'GET', _META_KEY),
    _rule(METADATA_CREATE, base.PROJECT_MEMBER_OR_ADMIN,
          'Add or change metadata items of an image', 'POST', _META),
    _rule(METADATA_UPDATE_ALL, base.PROJECT_MEMBER_OR_ADMIN,
          'Replace all metadata of an image', 'PUT', _META),
    _rule(METADATA_UPDATE, base.PROJECT_MEMBER_OR_ADMIN,
          'Set one metadata item of an image', 'PUT', _META_KEY),
    _rule(METADATA_DELETE, base.PROJECT_MEMBER_OR_ADMIN,
          'Delete one metadata item of an image', 'DELETE', _META_KEY),
]


def list_rules():
    return rules
