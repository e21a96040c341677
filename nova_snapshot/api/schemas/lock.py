"""The lock and unlock actions' request bodies (Nova's
``schemas/lock_server.py``)."""

# Before 2.73 the value of "lock" means nothing (any JSON value).
LOCK = {
    'type': 'object',
    'properties': {'lock': {}},
    'required': ['lock'],
    'additionalProperties': False,
}

# 2.73: null, or an object with an optional locked_reason.
LOCK_V273 = {
    'type': 'object',
    'properties': {
        'lock': {
            'type': ['object', 'null'],
            'properties': {
                'locked_reason': {'type': 'string', 'minLength': 1,
                                  'maxLength': 255},
            },
            'additionalProperties': False,
        },
    },
    'required': ['lock'],
    'additionalProperties': False,
}

UNLOCK = {
    'type': 'object',
    'properties': {'unlock': {}},
    'required': ['unlock'],
    'additionalProperties': False,
}


def lock_schema(version):
    return LOCK_V273 if version.matches((2, 73)) else LOCK
