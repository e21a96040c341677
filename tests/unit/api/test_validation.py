import unittest

from nova_snapshot.api import faults
from nova_snapshot.api.schemas import servers as schema
from nova_snapshot.api import validation


def _create_image(name, **extra):
    body = {'createImage': {'name': name}}
    body['createImage'].update(extra)
    return body


class TestNameFormat(unittest.TestCase):

    def assertValid(self, body, s=schema.CREATE_IMAGE):
        validation.validate(body, s)

    def assertInvalid(self, body, s=schema.CREATE_IMAGE):
        with self.assertRaises(faults.APIFault) as ctx:
            validation.validate(body, s)
        self.assertEqual(400, ctx.exception.code)

    def test_good_names(self):
        for name in ('a', 'snap shot', 'x' * 255, '\u20a1 colon', 'é',
                     'a\u00a0b', 'tab-free', '日本語'):
            with self.subTest(name=name):
                self.assertValid(_create_image(name))

    def test_bad_names(self):
        for name in ('', ' a', 'a ', '\u00a0a', 'a\u3000', 'x' * 256,
                     'a\tb', 'a\nb', 'a\x00b', 'a\u2028b', 'a\u2029b',
                     'snap \U0001F600', '\U00010348', 'a\ufeffb', 42, None):
            with self.subTest(name=name):
                self.assertInvalid(_create_image(name))

    def test_metadata(self):
        self.assertValid(_create_image('n', metadata={}))
        self.assertValid(_create_image('n', metadata={
            'a-Z_0:9. x': 'v', 'k' * 255: 'v' * 255}))
        for metadata in ({'': ''}, {'k' * 256: 'v'}, {'a/b': 'v'},
                         {'k': 1}, {'k': None}, {'k': {}}, {'k': 'v' * 256},
                         ['k'], 'k'):
            with self.subTest(metadata=metadata):
                self.assertInvalid(_create_image('n', metadata=metadata))

    def test_closed_objects(self):
        self.assertInvalid(_create_image('n', extra='x'))
        self.assertInvalid({'createImage': {'name': 'n'}, 'other': None})
        self.assertInvalid({})


class TestSchemasAreClosed(unittest.TestCase):

    def test_every_schema_in_the_module(self):
        found = 0
        for name in dir(schema):
            value = getattr(schema, name)
            if name.isupper() and isinstance(value, dict):
                validation.check_schema(value)
                found += 1
        self.assertGreater(found, 10)

    def test_open_object_refused(self):
        for bad in ({'type': 'object'},
                    {'type': 'object', 'additionalProperties': False,
                     'properties': {'x': {'type': 'object'}}},
                    {'type': 'array', 'items': {'type': 'object'}},
                    {'oneOf': [{'type': 'object'}]}):
            with self.subTest(schema=bad):
                self.assertRaises(ValueError, validation.check_schema, bad)


class TestResponseValidation(unittest.TestCase):

    class _Conf:
        class api:
            response_validation = 'error'

    def test_error_mode_raises(self):
        self.assertRaises(ValueError, validation.validate_response,
                          self._Conf, {'image_id': 1},
                          schema.CREATE_IMAGE_RESPONSE_V245)
        validation.validate_response(
            self._Conf, {'image_id': '0d9c1a0e-8d7e-4a79-9b3c-1b8e6f2b7a11'},
            schema.CREATE_IMAGE_RESPONSE_V245)
