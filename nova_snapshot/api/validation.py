"""JSON Schema validation of request and response bodies.

Schemas are plain dicts; every object in them must say whether it accepts
unknown keys (``check_schema`` refuses one that does not), so nothing is
open by accident. The ``name`` format is Nova's: printable characters only,
no whitespace at either end, and nothing outside the Basic Multilingual
Plane (Nova's character table stops at U+FFFE, so 4-byte UTF-8 characters
such as emoji are refused).

``minimum`` and ``maximum`` apply to integer strings too (``"volume_size":
"2147483648"``), as in Nova's validator: plain JSON Schema ignores them for
strings, and such a value passed every check and failed in the database.
"""

import re
import unicodedata

import jsonschema
from oslo_log import log as logging

from nova_snapshot.api import faults

LOG = logging.getLogger(__name__)

FORMAT_CHECKER = jsonschema.FormatChecker()

# An integer as the schemas' patterns write one; more digits than this is
# out of every range we check (and int() of 4,301 digits raises).
_INTEGER_STRING = re.compile(r'^(-?)0*([0-9]{1,20})$')
_BEYOND = 10 ** 21
# Longest rendering of a refused value in an error message.
_MAX_VALUE_CHARS = 255


def _printable(char):
    """Nova's rule: not a C* category, and of the Z* only the space class."""
    if ord(char) > 0xFFFE:
        return False
    category = unicodedata.category(char)
    if category.startswith('C'):
        return False
    if category.startswith('Z') and category != 'Zs':
        return False
    return True


def _edge_ok(char):
    return _printable(char) and unicodedata.category(char) != 'Zs'


@FORMAT_CHECKER.checks('name', raises=ValueError)
def _check_name(value):
    if not isinstance(value, str):
        return True
    if not value:
        return True  # minLength reports empty names
    if not all(_printable(c) for c in value):
        raise ValueError('An invalid name was given: it may only contain '
                         'printable characters.')
    if not (_edge_ok(value[0]) and _edge_ok(value[-1])):
        raise ValueError('An invalid name was given: it may not start or '
                         'end with whitespace.')
    return True


@FORMAT_CHECKER.checks('regex', raises=ValueError)
def _check_regex(value):
    """A pattern Python compiles; jsonschema's own check lets the
    RecursionError of a pattern nested thousands deep through (a 500)."""
    if not isinstance(value, str):
        return True
    try:
        re.compile(value)
    except (re.error, RecursionError, OverflowError) as exc:
        raise ValueError(str(exc) if not isinstance(exc, RecursionError)
                         else 'the pattern is nested too deep')
    return True


def _string_number(text):
    """The integer a numeric string names (capped at +-_BEYOND), or None
    when it is not an integer string (its pattern reports that)."""
    match = _INTEGER_STRING.match(text)
    if match is None:
        digits = text.lstrip('-').lstrip('0')
        if digits.isdigit() and digits.isascii():
            return -_BEYOND if text.startswith('-') else _BEYOND
        return None
    sign, digits = match.groups()
    return -int(digits) if sign else int(digits)


def _bound(keyword, out_of_range, wording):
    """A ``minimum``/``maximum`` that checks integer strings as well."""
    number_check = jsonschema.Draft4Validator.VALIDATORS[keyword]

    def check(validator, bound, instance, schema):
        if not isinstance(instance, str):
            yield from number_check(validator, bound, instance, schema)
            return
        number = _string_number(instance)
        if number is not None and out_of_range(number, bound):
            yield jsonschema.ValidationError(
                '%r is %s the %s of %r' % (_shorten(instance), wording,
                                           keyword, bound))

    return check


def _shorten(value):
    text = str(value)
    if len(text) > _MAX_VALUE_CHARS:
        text = '%s... (%d characters)' % (text[:_MAX_VALUE_CHARS], len(text))
    return text


Validator = jsonschema.validators.extend(jsonschema.Draft4Validator, {
    'minimum': _bound('minimum', lambda n, b: n < b, 'less than'),
    'maximum': _bound('maximum', lambda n, b: n > b, 'greater than'),
})


def check_schema(schema, path='#'):
    """Raise ValueError for an object schema without additionalProperties.

    Run on every schema at import time of its module (and by a unit test).
    """
    if not isinstance(schema, dict):
        return
    if schema.get('type') == 'object' or (
            isinstance(schema.get('type'), list)
            and 'object' in schema['type']):
        if 'additionalProperties' not in schema:
            raise ValueError('%s: object schema without '
                             'additionalProperties' % path)
    for key, value in schema.items():
        if isinstance(value, dict):
            if key in ('properties', 'patternProperties'):
                for name, sub in value.items():
                    check_schema(sub, '%s/%s/%s' % (path, key, name))
            else:
                check_schema(value, '%s/%s' % (path, key))
        elif isinstance(value, list):
            for index, sub in enumerate(value):
                check_schema(sub, '%s/%s/%d' % (path, key, index))


def _error_message(error):
    if (error.validator == 'format' and error.cause is not None
            and error.validator_value == 'name'):
        # Our name checker's own explanation (Nova's InvalidName text);
        # other formats (ipv4, ipv6) get the field-naming message below.
        return str(error.cause)
    field = '/'.join(str(p) for p in error.absolute_path)
    if error.validator == 'required':
        return error.message
    if error.validator == 'additionalProperties':
        return 'Additional properties are not allowed (%s)' % (
            error.message.split('(', 1)[-1].rstrip(')'))
    return 'Invalid input for field/attribute %s. Value: %s. %s' % (
        field, _shorten(error.instance), _shorten(error.message))


def validate(body, schema):
    """Validate a request body; 400 in Nova's format when it does not fit."""
    validator = Validator(schema, format_checker=FORMAT_CHECKER)
    error = jsonschema.exceptions.best_match(validator.iter_errors(body))
    if error is not None:
        raise faults.APIFault(400, _error_message(error))


def validate_response(conf, body, schema):
    """Check a response body against its schema per [api] response_validation.

    "error" (tests) makes a mismatch a 500, "warn" logs it, "ignore" skips.
    """
    mode = conf.api.response_validation
    if mode == 'ignore':
        return
    validator = jsonschema.Draft4Validator(
        schema, format_checker=FORMAT_CHECKER)
    error = jsonschema.exceptions.best_match(validator.iter_errors(body))
    if error is None:
        return
    if mode == 'error':
        raise ValueError('Response body does not match its schema: %s' %
                         error.message)
    LOG.warning('Response body does not match its schema: %s', error.message)


def validate_query(params, schema):
    """Validate a query string (``req.GET.dict_of_lists()``); 400 in Nova's
    wording ("Invalid input for query parameters ...") when it does not fit.
    """
    validator = Validator(schema, format_checker=FORMAT_CHECKER)
    error = jsonschema.exceptions.best_match(validator.iter_errors(params))
    if error is None:
        return
    path = list(error.absolute_path)
    param = path[0] if path else ''
    value = params.get(param, error.instance) if param else error.instance
    if error.validator == 'format' and error.cause is not None:
        reason = str(error.cause)
    else:
        reason = error.message
    raise faults.APIFault(400, 'Invalid input for query parameters %s. '
                               'Value: %s. %s' % (param, value, reason))


# Nova's [quota] metadata_items default: how many metadata items a server
# may have (the schema bounds each key and value to 255 characters).
METADATA_ITEMS = 128


def check_metadata_items(metadata, limit=METADATA_ITEMS):
    """403 as Nova answers its MetadataLimitExceeded on server create."""
    if metadata and len(metadata) > limit:
        raise faults.APIFault(
            403, 'Maximum number of metadata items exceeds %d' % limit)
