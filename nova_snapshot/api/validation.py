"""JSON Schema validation of request and response bodies.

Schemas are plain dicts; every object in them must say whether it accepts
unknown keys (``check_schema`` refuses one that does not), so nothing is
open by accident. The ``name`` format is Nova's: printable characters only,
no whitespace at either end, and nothing outside the Basic Multilingual
Plane (Nova's character table stops at U+FFFE, so 4-byte UTF-8 characters
such as emoji are refused).
"""

import unicodedata

import jsonschema
from oslo_log import log as logging

from nova_snapshot.api import faults

LOG = logging.getLogger(__name__)

FORMAT_CHECKER = jsonschema.FormatChecker()


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
        field, error.instance, error.message)


def validate(body, schema):
    """Validate a request body; 400 in Nova's format when it does not fit."""
    validator = jsonschema.Draft4Validator(
        schema, format_checker=FORMAT_CHECKER)
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
    validator = jsonschema.Draft4Validator(
        schema, format_checker=FORMAT_CHECKER)
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
