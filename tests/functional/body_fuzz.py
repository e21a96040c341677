"""Request bodies for the API fuzz, generated from the API's own schemas.

``schema_bodies(schema)`` draws bodies that match a request schema:
objects and arrays are composed here (``fixed_dictionaries``/``lists``,
which draw in microseconds) and every other subschema is
hypothesis-jsonschema's ``from_schema``. Letting hypothesis-jsonschema
build the whole object costs ~60 ms a body (it canonicalises the
subschemas on every draw), too slow for thousands of bodies in CI.

``hostile_bodies(schema)`` turns them into bodies that must be refused
or are at least unusual: a value anywhere replaced by one that broke
something once (5,000-digit strings, 2**31, NUL, lone surrogates, deep
nesting...) or by arbitrary JSON, keys dropped or added, and raw bytes that
are not a JSON object at all (truncated, other encodings, over the size
limit). ``encode(body, how)`` makes the bytes.
"""

import json
import urllib.parse

from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

# The server's [oslo_middleware] max_request_body_size default.
SIZE_LIMIT = 114688


# The API's "name" format (validation.py): printable characters of the
# Basic Multilingual Plane (letters, marks, numbers, punctuation, symbols,
# spaces), no whitespace at either end. Drawn from those categories and
# stripped, so (almost) no draw is thrown away.
_NAME = st.text(
    st.characters(categories=('L', 'M', 'N', 'P', 'S', 'Zs'),
                  max_codepoint=0xFFFE),
    min_size=1, max_size=40).map(str.strip).filter(bool)

CUSTOM_FORMATS = {
    'name': _NAME,
    'uuid': st.uuids().map(str),
    # hypothesis-jsonschema's own draws whole regex syntax trees and gives
    # up on half of them; these are what a server filter looks like (the
    # mutations bring the ones that do not compile).
    'regex': st.sampled_from(('^vm', 'target', '.*', '^$', '[0-9]+', 'a|b',
                              '(other)?', 'x{2,3}', '\\d', 'volume-',
                              '^(a+)+$', '[^a-z]', 'é')),
}


def _type_list(schema):
    types = schema.get('type')
    if types is None:
        return []
    return types if isinstance(types, list) else [types]


def schema_bodies(schema):
    """A strategy for instances of ``schema`` (a request schema dict)."""
    types = _type_list(schema)
    if types == ['object'] and 'properties' in schema and not any(
            key in schema for key in ('oneOf', 'anyOf', 'allOf', 'not')):
        required = schema.get('required', [])
        return st.fixed_dictionaries(
            {key: schema_bodies(schema['properties'][key])
             for key in required},
            optional={key: schema_bodies(sub)
                      for key, sub in schema['properties'].items()
                      if key not in required})
    if set(schema) in ({'oneOf'}, {'anyOf'}):
        # Each branch on its own (an object branch then takes the fast
        # path above); a draw matching two oneOf branches is still a
        # body worth sending.
        branches = schema.get('oneOf') or schema.get('anyOf')
        return st.one_of([schema_bodies(branch) for branch in branches])
    if types == ['array'] and isinstance(schema.get('items'), dict):
        return st.lists(schema_bodies(schema['items']),
                        min_size=schema.get('minItems', 0),
                        max_size=min(schema.get('maxItems', 3), 3))
    return from_schema(schema, custom_formats=CUSTOM_FORMATS)


# Values that broke something somewhere once; every leaf may become one.
HOSTILE_VALUES = (
    '9' * 5000, '1' * 4301, '2147483648', '-2147483649', '4294967296',
    '9223372036854775808', 2 ** 31, -2 ** 31 - 1, 2 ** 63, 2 ** 64,
    10 ** 30, -10 ** 30, 1e308, -1e308, 0.5, -0.0, 0, -1, 1, '0', '-1',
    '', ' ', 'x' * 256, 'x' * 65536, 'é' * 300, '\x00', 'a\x00b',
    '\ud800', 'x\udfff', '\U0001F600', '\u202e', '\ufeff', '\n', '%s%n',
    '(' * 3000, '[', '(?P<x', '*',
    "' OR 1=1 --", '../../../etc/passwd', '/dev/sda', 'fdc', 'floppy',
    'local', 'blank', 'image', 'volume', '00000000-0000-0000-0000-000000000000',
    None, True, False, 'True', [], {}, [None], {'': ''}, {'a' * 256: 'b'},
    ['x'] * 300, {str(i): 'v' for i in range(200)},
)


def _deep(depth, leaf=None):
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() |
    st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) |
    st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)


def _paths(value, prefix=()):
    """Every path into ``value`` (tuples of keys and indexes)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, prefix + (key,)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_paths(item, prefix + (index,)))
    return found


def _replace(value, path, new):
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        copy = dict(value)
    else:
        copy = list(value)
    copy[head] = _replace(value[head], rest, new)
    return copy


def _drop(value, path):
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        copy = dict(value)
    else:
        copy = list(value)
    if rest:
        copy[head] = _drop(value[head], rest)
    else:
        del copy[head]
    return copy


def _get(value, path):
    for key in path:
        value = value[key]
    return value


@st.composite
def mutated(draw, valid):
    """A body of ``valid`` with one thing changed."""
    body = draw(valid)
    paths = _paths(body)
    path = draw(st.sampled_from(paths))
    operation = draw(st.sampled_from(
        ('hostile', 'hostile', 'hostile', 'json', 'deep', 'drop', 'add',
         'wrap')))
    if operation == 'hostile':
        return _replace(body, path, draw(st.sampled_from(HOSTILE_VALUES)))
    if operation == 'json':
        return _replace(body, path, draw(json_values))
    if operation == 'deep':
        depth = draw(st.sampled_from((8, 31, 33, 100, 900, 990)))
        return _replace(body, path, _deep(depth, draw(json_values)))
    target = _get(body, path)
    if operation == 'drop' and path:
        return _drop(body, path)
    if operation == 'add' and isinstance(target, dict):
        key = draw(st.sampled_from(('', 'x', 'name', 'server', '\x00',
                                    'k' * 256, 'metadata')))
        return _replace(body, path, dict(target, **{key: draw(json_values)}))
    return _replace(body, path, [target])


def schema_paths(schema, prefix=()):
    """Every path the schema names (object keys, item 0 of arrays, the
    branches of oneOf/anyOf), present in a drawn body or not."""
    found = []
    for key, sub in schema.get('properties', {}).items():
        found.append(prefix + (key,))
        found.extend(schema_paths(sub, prefix + (key,)))
    if isinstance(schema.get('items'), dict):
        found.append(prefix + (0,))
        found.extend(schema_paths(schema['items'], prefix + (0,)))
    for branch in schema.get('oneOf', []) + schema.get('anyOf', []):
        found.extend(schema_paths(branch, prefix))
    return sorted(set(found), key=lambda p: [str(k) for k in p])


def _put(value, path, new):
    """``value`` with ``new`` at ``path``, making the containers the path
    needs (a dict for a key, a one-item list for index 0)."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if head == 0 and not isinstance(head, bool):
        items = list(value) if isinstance(value, list) and value else [None]
        items[0] = _put(items[0], rest, new)
        return items
    copy = dict(value) if isinstance(value, dict) else {}
    copy[head] = _put(copy.get(head), rest, new)
    return copy


@st.composite
def targeted(draw, valid, paths):
    """A body of ``valid`` with a hostile value at a path of the schema:
    every field the schema names gets its turn, drawn or not."""
    body = draw(valid)
    path = draw(st.sampled_from(paths))
    return _put(body, path, draw(st.sampled_from(HOSTILE_VALUES)))


# The sweep (every field of a schema, in turn, with each value of its
# kind): few values per kind, so every field gets all of them.
NUMERIC_SWEEP = ('9' * 5000, '1' * 4301, '9' * 21, '2147483648',
                 '-2147483649', 2 ** 31, -2 ** 31 - 1, 2 ** 63, 10 ** 30,
                 -1, 0, 1.5, '1.5', ' 1', '', None, True)
STRING_SWEEP = ('x' * 256, 'x' * 65536, '', ' ', 'a\x00b', '\ud800',
                '\U0001F600', '(' * 3000, '[', '9' * 5000, 7, None,
                ['x'], {'x': 'y'})
CONTAINER_SWEEP = (None, 'x', 1, [], {}, [None], {'': ''}, _deep(40))


def _kind(schema):
    types = _type_list(schema)
    if 'properties' in schema or 'items' in schema or (
            types and set(types) <= {'object', 'array'}):
        return CONTAINER_SWEEP
    if {'integer', 'number'} & set(types) or '0-9' in schema.get(
            'pattern', ''):
        return NUMERIC_SWEEP
    return STRING_SWEEP


def sweep(schema, prefix=(), containers=True):
    """(path, value) for every path of ``schema`` and every value of its
    kind (numeric, string or container; ``containers=False`` skips the
    objects and arrays themselves)."""
    found = []

    def walk(sub, path):
        values = _kind(sub)
        if path and (containers or values is not CONTAINER_SWEEP):
            found.extend((path, value) for value in values)
        for key, child in sub.get('properties', {}).items():
            walk(child, path + (key,))
        for child in sub.get('patternProperties', {}).values():
            walk(child, path + ('k',))  # a key every pattern here takes
        if isinstance(sub.get('items'), dict):
            walk(sub['items'], path + (0,))
        for branch in sub.get('oneOf', []) + sub.get('anyOf', []):
            for key, child in branch.get('properties', {}).items():
                walk(child, path + (key,))
            if isinstance(branch.get('items'), dict):
                walk(branch['items'], path + (0,))

    walk(schema, prefix)
    return found


def put(value, path, new):
    """Public name of ``_put`` for the sweep."""
    return _put(value, path, new)


def encode(body, how):
    """The bytes of ``body``: ``ascii`` (escapes), ``utf8`` (raw, lone
    surrogates passed through as invalid UTF-8) or ``utf16``."""
    if how == 'ascii':
        return json.dumps(body).encode('ascii')
    text = json.dumps(body, ensure_ascii=False)
    if how == 'utf16':
        return text.encode('utf-16')
    return text.encode('utf-8', 'surrogatepass')


@st.composite
def raw_bodies(draw, valid):
    """Bytes that are no JSON object, or one only just past a bound."""
    kind = draw(st.sampled_from((
        'truncated', 'flipped', 'utf16', 'nested', 'number', 'constant',
        'scalar', 'empty', 'oversized', 'deep-value')))
    text = encode(draw(valid), 'ascii')
    if kind == 'truncated':
        return text[:draw(st.integers(0, max(len(text) - 1, 0)))]
    if kind == 'flipped':
        position = draw(st.integers(0, len(text) - 1))
        byte = draw(st.sampled_from((0x00, 0x80, 0xC3, 0xFF, 0x7B, 0x22)))
        return text[:position] + bytes([byte]) + text[position + 1:]
    if kind == 'utf16':
        return encode(json.loads(text), 'utf16')
    if kind == 'nested':
        depth = draw(st.sampled_from((33, 999, 1000, 5000, 50000)))
        opener, closer = draw(st.sampled_from(((b'[', b']'),
                                               (b'{"a":', b'}'))))
        return opener * depth + b'1' * (opener == b'[') + closer * depth
    if kind == 'number':
        digits = draw(st.sampled_from((33, 400, 4301, 5000, 100000)))
        sign = draw(st.sampled_from((b'', b'-')))
        return b'{"a": ' + sign + b'9' * digits + b'}'
    if kind == 'constant':
        return b'{"a": %s}' % draw(st.sampled_from(
            (b'NaN', b'Infinity', b'-Infinity', b'1e999', b'-1e400')))
    if kind == 'scalar':
        return draw(st.sampled_from((b'[]', b'[{}]', b'"x"', b'1', b'null',
                                     b'true', b'  ', b'\xef\xbb\xbf{}')))
    if kind == 'empty':
        return b''
    if kind == 'oversized':
        # Just over the limit, or 16 MiB.
        size = draw(st.sampled_from((SIZE_LIMIT + 1, 16 << 20)))
        return b'{"pad": "' + b'x' * (size - 11) + b'"}'
    # A value nested deeper than the parser's bound inside a valid body.
    body = json.loads(text)
    if not body:
        # A schema that requires nothing draws {}: nest under a new key.
        body = {'deep': None}
    key = next(iter(body))
    body[key] = _deep(40, body[key])
    return encode(body, 'ascii')


def query_string(params):
    """A query string of a drawn query "body" (a dict of lists, or any
    JSON after a mutation): every value as text, repeated keys kept."""
    if not isinstance(params, dict):
        params = {'q': params}
    pairs = []
    for key, values in params.items():
        for value in values if isinstance(values, list) else [values]:
            pairs.append((str(key), str(value)))
    return urllib.parse.urlencode(pairs, errors='surrogatepass').encode()
