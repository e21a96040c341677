"""The admin password a server create answers with.

Nova returns the caller's ``adminPass``, or one it made up, when
``[api] enable_instance_password`` is set. Nothing here puts it into the
guest: like Nova without a guest agent or config drive, the value is only
returned.
"""

import secrets

# Nova's [DEFAULT] password_length default.
DEFAULT_LENGTH = 12
# Digits and letters without the look-alikes (0/O, 1/l/I), as Nova picks
# them; a password holds at least one character of each group.
SYMBOL_GROUPS = ('23456789',
                 'ABCDEFGHJKLMNPQRSTUVWXYZ',
                 'abcdefghijkmnopqrstuvwxyz')


def generate(length=DEFAULT_LENGTH):
    """A random password of ``length`` characters from SYMBOL_GROUPS."""
    chars = [secrets.choice(group) for group in SYMBOL_GROUPS][:length]
    alphabet = ''.join(SYMBOL_GROUPS)
    chars += [secrets.choice(alphabet) for _ in range(length - len(chars))]
    # Shuffle so the guaranteed characters are not always in front.
    for index in range(len(chars) - 1, 0, -1):
        other = secrets.randbelow(index + 1)
        chars[index], chars[other] = chars[other], chars[index]
    return ''.join(chars)


def for_create(conf, server):
    """The ``adminPass`` of a create response, or None when disabled."""
    if not conf.api.enable_instance_password:
        return None
    if 'adminPass' in server:
        return server['adminPass']
    return generate()
