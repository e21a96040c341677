"""Every Glance call has a timeout in every auth mode, a timed-out call is
not retried (the wait would multiply), and Glance unreachable or silent is
a 503 (GlanceConnectionFailed). The loopback Glance that never answers is
in tests/functional/test_bounded_waits.py."""

import unittest
from unittest import mock

from glanceclient import exc as glance_exc
from keystoneauth1 import exceptions as ksa_exc
import requests

from nova_snapshot import conf as nova_conf
from nova_snapshot.conf import keystoneauth
from nova_snapshot import exception
from nova_snapshot.image import glance
from tests.unit.image.test_glance import make_context


def make_conf(**overrides):
    conf = nova_conf.new_conf([])
    for key, value in overrides.items():
        conf.set_override(key, value, group='glance')
    return conf


def _recorder(exc, calls):
    """requests.Session.request that fails with ``exc`` and keeps what it
    was asked."""
    def request(session, method, url, **kwargs):
        calls.append((method, url, kwargs))
        raise exc
    return request


class SessionTimeoutTest(unittest.TestCase):
    """The timeout reaches requests, whatever the identity."""

    def _get(self, api, context, exc=None):
        calls = []
        request = _recorder(exc or requests.exceptions.ReadTimeout('slow'),
                            calls)
        with mock.patch.object(requests.Session, 'request', request), \
                mock.patch.object(glance.time, 'sleep'):
            self.assertRaises(exception.GlanceConnectionFailed,
                              api.get, context, 'i1')
        return calls

    def test_default_timeout_in_every_group(self):
        conf = make_conf()
        for group in ('glance', 'cinder', 'service_user'):
            self.assertEqual(keystoneauth.DEFAULT_TIMEOUT,
                             conf[group].timeout, group)

    def test_identity_headers_mode(self):
        api = glance.GlanceAPI(make_conf(
            auth_mode='identity_headers',
            endpoint_override='http://127.0.0.1:9'))
        calls = self._get(api, make_context())
        self.assertEqual(1, len(calls))  # a timeout is not retried
        self.assertEqual(keystoneauth.DEFAULT_TIMEOUT, calls[0][2]['timeout'])

    def test_keystone_mode_with_the_users_token(self):
        api = glance.GlanceAPI(make_conf(
            endpoint_override='http://127.0.0.1:9', timeout=7.5))
        calls = self._get(api, make_context(auth_token='tok'))
        self.assertEqual(1, len(calls))
        self.assertEqual(7.5, calls[0][2]['timeout'])
        self.assertEqual('tok', calls[0][2]['headers']['X-Auth-Token'])

    def test_refused_connections_are_retried_a_few_times(self):
        api = glance.GlanceAPI(make_conf(
            auth_mode='identity_headers', num_retries=2,
            endpoint_override='http://127.0.0.1:9'))
        calls = self._get(api, make_context(),
                          requests.exceptions.ConnectionError('refused'))
        self.assertEqual(3, len(calls))
        self.assertTrue(all(c[2]['timeout'] == keystoneauth.DEFAULT_TIMEOUT
                            for c in calls))


class TimeoutNotRetriedTest(unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.client = mock.Mock()
        patcher = mock.patch.object(glance.glanceclient, 'Client',
                                    return_value=self.client)
        patcher.start()
        self.addCleanup(patcher.stop)
        sleep = mock.patch.object(glance.time, 'sleep')
        self.sleep = sleep.start()
        self.addCleanup(sleep.stop)
        self.api = glance.GlanceAPI(make_conf(
            auth_mode='identity_headers', num_retries=3,
            endpoint_override='http://127.0.0.1:9'))
        self.ctx = make_context()

    def test_timeouts_fail_at_once(self):
        for exc in (glance_exc.InvalidEndpoint('timed out'),
                    ksa_exc.ConnectTimeout('timed out')):
            self.client.images.get.reset_mock()
            self.client.images.get.side_effect = exc
            caught = self.assertRaises(exception.GlanceConnectionFailed,
                                       self.api.get, self.ctx, 'i1')
            self.assertEqual(1, self.client.images.get.call_count)
            self.assertIn('timed out', caught.format_message())
        self.sleep.assert_not_called()

    def assertRaises(self, exc_class, func, *args):
        with super().assertRaises(exc_class) as caught:
            func(*args)
        return caught.exception

    def test_upload_timeout_is_unavailable(self):
        def upload(image_id, reader, image_size=None):
            reader.read()
            raise glance_exc.InvalidEndpoint('timed out')
        self.client.images.upload.side_effect = upload
        self.assertRaises(exception.GlanceConnectionFailed, self.api.upload,
                          self.ctx, 'i1', iter([b'x' * 10]), 10)
        self.assertEqual(1, self.client.images.upload.call_count)

    def test_stalled_download_is_unavailable_and_leaves_no_file(self):
        import os
        import tempfile

        def chunks():
            yield b'abc'
            raise requests.exceptions.ConnectionError('read timed out')
        self.client.images.data.return_value = chunks()
        fd, path = tempfile.mkstemp()
        os.close(fd)
        self.assertRaises(exception.GlanceConnectionFailed,
                          self.api.download, self.ctx, 'i1', path)
        self.assertFalse(os.path.exists(path))


if __name__ == '__main__':
    unittest.main()
