"""Decode a JSON request body within bounds; anything else is a 400.

The size of the body is bounded before it gets here (oslo.middleware's
sizelimit in ``deploy.py``); this module bounds what a small body can still
do to the code behind it:

* nesting: the stdlib decoder recurses once per level and raises
  RecursionError (not ValueError) near Python's recursion limit, and a body
  just under that limit would still overflow jsonschema, ``str()`` of an
  error value or ``json.dumps``. No body of the compute API is deeper than
  a few levels, so more than ``MAX_DEPTH`` is refused;
* numbers: a 4,301-digit integer literal raises ValueError in ``int()``
  and shorter ones overflow every database column, so a number literal
  longer than ``MAX_NUMBER_CHARS`` is refused, and so are ``NaN`` and
  ``Infinity`` (not JSON) and floats that overflow to infinity;
* strings: a lone surrogate (``"\\ud800"``) decodes to a Python string that
  cannot be encoded as UTF-8, and NUL cannot be stored in PostgreSQL text;
  both fail only when the row is written, after the checks, as a 500. Any
  string (key or value) holding one is refused;
* the top level must be an object: every body of the compute API is one.

Every refusal is ``400 badRequest`` with Nova's "Malformed request body"
message, with the reason after a colon.
"""

import json
import math

from nova_snapshot.api import faults

# Deepest nesting accepted (the top-level object is depth 1). Nova's
# deepest body, a server create with block_device_mapping_v2, is 4.
MAX_DEPTH = 32
# Longest number literal accepted, sign and exponent included: a 64-bit
# integer has at most 20 characters; a float's shortest repr at most 24.
MAX_NUMBER_CHARS = 32

MALFORMED = 'Malformed request body'


class _Refused(ValueError):
    """A body outside our bounds (reason in the message)."""


def _parse_int(text):
    if len(text) > MAX_NUMBER_CHARS:
        raise _Refused('a number has more than %d characters'
                       % MAX_NUMBER_CHARS)
    return int(text)


def _parse_float(text):
    if len(text) > MAX_NUMBER_CHARS:
        raise _Refused('a number has more than %d characters'
                       % MAX_NUMBER_CHARS)
    value = float(text)
    if not math.isfinite(value):
        raise _Refused('a number is out of range')
    return value


def _parse_constant(name):
    # json accepts NaN, Infinity and -Infinity, which are not JSON.
    raise _Refused('%s is not a JSON value' % name)


def _check_string(value):
    if '\x00' in value:
        raise _Refused('a string contains a NUL character')
    try:
        value.encode('utf-8')
    except UnicodeEncodeError:
        raise _Refused('a string contains a lone surrogate (not UTF-8)')


def _check_tree(body):
    """Walk the decoded body without recursion: depth and strings."""
    stack = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_string(value)
            continue
        if not isinstance(value, (dict, list)):
            continue
        if depth > MAX_DEPTH:
            raise _Refused('nested deeper than %d levels' % MAX_DEPTH)
        if isinstance(value, dict):
            for key, item in value.items():
                _check_string(key)
                stack.append((item, depth + 1))
        else:
            stack.extend((item, depth + 1) for item in value)


def parse(raw):
    """The JSON object in ``raw`` (bytes); APIFault 400 otherwise."""
    if not raw:
        raise faults.APIFault(400, MALFORMED)
    try:
        # Strict UTF-8 (RFC 8259 section 8.1): json.loads(bytes) would
        # also guess UTF-16 and UTF-32.
        text = raw.decode('utf-8')
    except UnicodeDecodeError:
        raise faults.APIFault(400, '%s: it is not UTF-8' % MALFORMED)
    try:
        body = json.loads(text, parse_int=_parse_int,
                          parse_float=_parse_float,
                          parse_constant=_parse_constant)
        _check_tree(body)
    except _Refused as exc:
        raise faults.APIFault(400, '%s: %s' % (MALFORMED, exc))
    except RecursionError:
        raise faults.APIFault(400, '%s: nested deeper than %d levels'
                              % (MALFORMED, MAX_DEPTH))
    except ValueError:
        raise faults.APIFault(400, MALFORMED)
    if not isinstance(body, dict):
        raise faults.APIFault(400, '%s: the body must be a JSON object'
                              % MALFORMED)
    return body
