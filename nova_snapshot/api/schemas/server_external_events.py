"""Request and response schemas of POST /os-server-external-events (Nova's
``server_external_events`` schemas: the event names grow by microversion).
"""

from nova_snapshot.api import microversion
from nova_snapshot.api import validation

# (first version, names it adds), in Nova's order.
NAMES_BY_VERSION = (
    ((2, 1), ('network-changed', 'network-vif-plugged',
              'network-vif-unplugged', 'network-vif-deleted')),
    ((2, 51), ('volume-extended',)),
    ((2, 76), ('power-update',)),
    ((2, 82), ('accelerator-request-bound',)),
    ((2, 93), ('volume-reimaged',)),
)
STATUSES = ('failed', 'completed', 'in-progress')
# Events that name what they are about in "tag" (a volume id, the power
# target, an accelerator request): without one the event is refused with
# a per-event 400 (Nova's TAG_REQUIRED).
TAG_REQUIRED = frozenset(['volume-extended', 'power-update',
                          'accelerator-request-bound'])
# The per-event codes of a response (Nova's create_response enum).
CODES = (200, 400, 404, 422)


def event_names(version):
    """The event names a request at ``version`` may send."""
    names = []
    for first, added in NAMES_BY_VERSION:
        if version.matches(first):
            names.extend(added)
    return names


def _event_properties(version):
    """One event's fields, as a request sends them and the answer echoes
    them."""
    return {
        'name': {'type': 'string', 'enum': event_names(version)},
        'server_uuid': {'type': 'string', 'format': 'uuid'},
        'status': {'type': 'string', 'enum': list(STATUSES)},
        'tag': {'type': 'string', 'maxLength': 255},
    }


def create_schema(version):
    return {
        'type': 'object',
        'properties': {
            'events': {
                'type': 'array',
                'minItems': 1,
                'items': {
                    'type': 'object',
                    'properties': _event_properties(version),
                    'required': ['name', 'server_uuid'],
                    'additionalProperties': False,
                },
            },
        },
        'required': ['events'],
        'additionalProperties': False,
    }


def create_response_schema(version):
    return {
        'type': 'object',
        'properties': {
            'events': {
                'type': 'array',
                'items': {
                    'type': 'object',
                    'properties': dict(
                        _event_properties(version),
                        code={'type': 'integer', 'enum': list(CODES)}),
                    # "tag" is echoed only when it was sent.
                    'required': ['code', 'name', 'server_uuid', 'status'],
                    'additionalProperties': False,
                },
            },
        },
        'required': ['events'],
        'additionalProperties': False,
    }


# Every shape the schemas take (one per version that adds names).
for _first, _added in NAMES_BY_VERSION:
    _version = microversion.APIVersion(*_first)
    validation.check_schema(create_schema(_version))
    validation.check_schema(create_response_schema(_version))
