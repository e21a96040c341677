"""Every Cinder call has a timeout in both auth modes, and Cinder
unreachable or silent is CinderConnectionFailed: a VolumeError for the
compute side's clean-ups, a 503 at the API."""

import unittest
from unittest import mock

from cinderclient import exceptions as cinder_exc
from keystoneauth1 import exceptions as ksa_exc
import requests

from nova_snapshot import conf as nova_conf
from nova_snapshot.conf import keystoneauth
from nova_snapshot import context as nova_context
from nova_snapshot import exception
from nova_snapshot.volume import cinder

PROJECT = '0123456789abcdef0123456789abcdef'


def make_conf(**overrides):
    conf = nova_conf.new_conf([])
    for key, value in overrides.items():
        conf.set_override(key, value, group='cinder')
    return conf


class TimeoutTest(unittest.TestCase):

    def _get(self, api, context):
        calls = []

        def request(session, method, url, **kwargs):
            calls.append(kwargs)
            raise requests.exceptions.ReadTimeout('silent')
        with mock.patch.object(requests.Session, 'request', request):
            with self.assertRaises(exception.CinderConnectionFailed) as cm:
                api.get(context, 'v1')
        self.assertIsInstance(cm.exception, exception.VolumeError)
        self.assertIsInstance(cm.exception, exception.ServiceUnavailable)
        self.assertEqual(503, cm.exception.code)
        return calls

    def test_noauth_mode(self):
        api = cinder.CinderAPI(make_conf(
            auth_mode='noauth', api_endpoint='http://127.0.0.1:9/v3'))
        calls = self._get(api, nova_context.RequestContext(
            user_id='u', project_id=PROJECT))
        self.assertEqual(1, len(calls))
        self.assertEqual(keystoneauth.DEFAULT_TIMEOUT, calls[0]['timeout'])

    def test_keystone_mode(self):
        api = cinder.CinderAPI(make_conf(
            endpoint_override='http://127.0.0.1:9/v3/%(project_id)s',
            timeout=4.0))
        calls = self._get(api, nova_context.RequestContext(
            user_id='u', project_id=PROJECT, auth_token='tok'))
        self.assertEqual(1, len(calls))
        self.assertEqual(4.0, calls[0]['timeout'])


class TranslateTest(unittest.TestCase):

    def test_connection_errors(self):
        for exc in (ksa_exc.ConnectTimeout('t'), ksa_exc.ConnectFailure('r'),
                    cinder_exc.ConnectionError('r')):
            self.assertIsInstance(cinder.translate_error(exc, volume_id='v'),
                                  exception.CinderConnectionFailed)

    def test_other_errors_stay_volume_errors(self):
        exc = cinder.translate_error(cinder_exc.ClientException(500, 'x'))
        self.assertIs(type(exc), exception.VolumeError)


if __name__ == '__main__':
    unittest.main()
