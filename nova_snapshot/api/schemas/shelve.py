"""Nova's request schemas of the os-shelve actions."""

from nova_snapshot.api.schemas import servers

# Like Nova: any value (null, {}) for shelve and shelveOffload, and for
# unshelve before 2.77 (no body validation there).
SHELVE = servers._no_argument_action('shelve')
SHELVE_OFFLOAD = servers._no_argument_action('shelveOffload')
UNSHELVE = servers._no_argument_action('unshelve')

# 2.77: null, or an object naming the availability zone ({} is refused).
UNSHELVE_V277 = {
    'type': 'object',
    'properties': {
        'unshelve': {
            'type': ['object', 'null'],
            'properties': {'availability_zone': servers.NAME},
            'required': ['availability_zone'],
            'additionalProperties': False,
        },
    },
    'required': ['unshelve'],
    'additionalProperties': False,
}

# 2.91: availability_zone may be null (unpin) and an admin may name a
# host; {} is allowed again.
UNSHELVE_V291 = {
    'type': 'object',
    'properties': {
        'unshelve': {
            'type': ['object', 'null'],
            'properties': {
                'availability_zone': {'type': ['string', 'null']},
                'host': {'type': 'string'},
            },
            'additionalProperties': False,
        },
    },
    'required': ['unshelve'],
    'additionalProperties': False,
}


def unshelve_schema(version):
    if version.matches((2, 91)):
        return UNSHELVE_V291
    if version.matches((2, 77)):
        return UNSHELVE_V277
    return UNSHELVE
