"""The built-in flavors.

A snapshot service needs only a few sizes, so they are code, not a table.
Ids are strings, as the compute API shows them.
"""

import copy

from nova_snapshot import exception

_FLAVORS = (
    {'id': '1', 'name': 'm1.nano', 'memory_mb': 64, 'vcpus': 1,
     'root_gb': 1, 'ephemeral_gb': 0, 'swap': 0},
    {'id': '2', 'name': 'm1.micro', 'memory_mb': 128, 'vcpus': 1,
     'root_gb': 1, 'ephemeral_gb': 0, 'swap': 0},
    {'id': '3', 'name': 'm1.tiny', 'memory_mb': 512, 'vcpus': 1,
     'root_gb': 1, 'ephemeral_gb': 0, 'swap': 0},
    {'id': '4', 'name': 'm1.small', 'memory_mb': 2048, 'vcpus': 1,
     'root_gb': 20, 'ephemeral_gb': 0, 'swap': 0},
)


def list_flavors():
    """Return every flavor, ordered by id (copies; callers may mutate)."""
    return [copy.deepcopy(f) for f in _FLAVORS]


def get_flavor(flavor_id):
    """Return one flavor by id (or name, which clients sometimes send)."""
    wanted = str(flavor_id)
    for flavor in _FLAVORS:
        if wanted in (flavor['id'], flavor['name']):
            return copy.deepcopy(flavor)
    raise exception.FlavorNotFound(flavor_id=flavor_id)
