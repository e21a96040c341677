"""Bounded waits against loopback services that hang (issue 7, item 3).

A Glance, Cinder or Keystone that accepts connections and never answers,
a Glance that stalls mid-body, a RabbitMQ port where nothing listens and
one that accepts and never speaks AMQP: every call, API request, cast,
notification and snapshot upload comes back within its configured bound
(plus a margin for this shared two-core machine) with a Nova fault, not a
hang and not a 500. Loopback only; no shared service is touched.
"""

import datetime
import json
import os
import shutil
import tempfile
import time
import unittest
from unittest import mock

from oslo_config import cfg
import webob

from nova_snapshot.api import deploy
from nova_snapshot.compute import api as compute_api
from nova_snapshot.compute import rpcapi
from nova_snapshot import conf as nova_conf
from nova_snapshot import context as nova_context
from nova_snapshot.db import api as db_api
from nova_snapshot import exception
from nova_snapshot.image import glance
from nova_snapshot import rpc
from nova_snapshot.volume import cinder
from tests.functional import blackhole
from tests.unit.api import fake_auth
from tests.unit.compute import fakes as compute_fakes

# [glance]/[cinder] timeout for these tests, seconds.
TIMEOUT = 1.0
# Allowed on top of a bound: thread start-up, SQLite, a loaded machine.
MARGIN = 3.0
HOST = 'bounded-host'
PROJECT = '0123456789abcdef0123456789abcdef'


def _conf(config_files=(), **groups):
    conf = cfg.ConfigOpts()
    nova_conf.register_opts(conf)
    rpc.register_opts(conf)
    conf([], project='nova-snapshot',
         default_config_files=list(config_files))
    for group, values in groups.items():
        for key, value in values.items():
            conf.set_override(key, value,
                              group=None if group == 'DEFAULT' else group)
    return conf


class Timed(object):
    def __enter__(self):
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.elapsed = time.monotonic() - self.start
        # Shown with pytest -s / in the stestr log: the measured figures.
        print('  %s: %.2f s' % (getattr(self, 'label', 'wait'),
                                self.elapsed))


def timed(label):
    t = Timed()
    t.label = label
    return t


class ClientTimeoutTest(unittest.TestCase):
    """GlanceAPI and CinderAPI straight at a silent or stalling service,
    in every auth mode."""

    def _hole(self, mode='silent'):
        hole = blackhole.BlackHole(mode)
        self.addCleanup(hole.stop)
        return hole

    def _bounded(self, label, exc_class, func, *args, bound=TIMEOUT):
        with timed(label) as t:
            self.assertRaises(exc_class, func, *args)
        self.assertLess(t.elapsed, bound + MARGIN)
        return t.elapsed

    def test_glance_identity_headers_silent(self):
        hole = self._hole()
        api = glance.GlanceAPI(_conf(glance={
            'auth_mode': 'identity_headers', 'endpoint_override': hole.url,
            'timeout': TIMEOUT}))
        ctx = nova_context.RequestContext(user_id='u', project_id='p')
        elapsed = self._bounded('glance identity_headers get',
                                exception.GlanceConnectionFailed,
                                api.get, ctx, 'i1')
        self.assertGreaterEqual(elapsed, TIMEOUT * 0.9)
        self.assertEqual(1, hole.accepted)  # not retried

    def test_glance_keystone_token_silent(self):
        hole = self._hole()
        api = glance.GlanceAPI(_conf(glance={
            'endpoint_override': hole.url, 'timeout': TIMEOUT}))
        ctx = nova_context.RequestContext(user_id='u', project_id='p',
                                          auth_token='tok')
        self._bounded('glance keystone create', exception.GlanceConnectionFailed,
                      api.create, ctx, {'name': 'x'})

    def test_service_credentials_against_a_silent_keystone(self):
        # No user token: the service's own password auth, catalog lookup.
        hole = self._hole()
        # A file: the password plugin's options exist only once it loads.
        path = os.path.join(tempfile.mkdtemp(), 'glance.conf')
        self.addCleanup(shutil.rmtree, os.path.dirname(path), True)
        with open(path, 'w') as f:
            f.write('[glance]\nauth_type = password\n'
                    'auth_url = %s/v3\nusername = nova\npassword = x\n'
                    'project_name = service\nuser_domain_name = Default\n'
                    'project_domain_name = Default\ntimeout = %s\n'
                    % (hole.url, TIMEOUT))
        api = glance.GlanceAPI(_conf([path]))
        self._bounded('glance via silent keystone',
                      exception.GlanceConnectionFailed, api.delete,
                      nova_context.RequestContext(user_id=None,
                                                  project_id=None), 'i1')

    def test_glance_download_stalled_mid_body(self):
        hole = self._hole('stall_body')
        api = glance.GlanceAPI(_conf(glance={
            'auth_mode': 'identity_headers', 'endpoint_override': hole.url,
            'timeout': TIMEOUT}))
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp, True)
        dest = os.path.join(tmp, 'disk')
        self._bounded('glance download stalled mid-body',
                      exception.GlanceConnectionFailed, api.download,
                      nova_context.RequestContext(user_id='u',
                                                  project_id='p'),
                      'i1', dest)
        self.assertFalse(os.path.exists(dest))

    def test_glance_upload_to_a_glance_that_stops_reading(self):
        hole = self._hole()
        api = glance.GlanceAPI(_conf(glance={
            'auth_mode': 'identity_headers', 'endpoint_override': hole.url,
            'timeout': TIMEOUT}))
        chunk = b'\0' * (1024 * 1024)
        sent = []

        def data():
            for _ in range(256):  # more than the loopback buffers hold
                sent.append(len(chunk))
                yield chunk
        self._bounded('glance upload, receiver stalled',
                      exception.GlanceConnectionFailed, api.upload,
                      nova_context.RequestContext(user_id='u',
                                                  project_id='p'),
                      'i1', data(), 256 * len(chunk))
        self.assertLess(len(sent), 256)  # stopped mid-stream

    def test_cinder_noauth_and_keystone_silent(self):
        hole = self._hole()
        noauth = cinder.CinderAPI(_conf(cinder={
            'auth_mode': 'noauth', 'api_endpoint': hole.url + '/v3',
            'timeout': TIMEOUT}))
        keystone = cinder.CinderAPI(_conf(cinder={
            'endpoint_override': hole.url + '/v3/%(project_id)s',
            'timeout': TIMEOUT}))
        ctx = nova_context.RequestContext(user_id='u', project_id=PROJECT,
                                          auth_token='tok')
        self._bounded('cinder noauth get', exception.CinderConnectionFailed,
                      noauth.get, ctx, 'v1')
        self._bounded('cinder keystone attachment_create',
                      exception.CinderConnectionFailed,
                      keystone.attachment_create, ctx, 'v1', 'i1')


class _APITestBase(unittest.TestCase):
    """The real API stack and ComputeAPI over SQLite, with the given
    image, volume and RPC plumbing."""

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix='nova-snapshot-waits-')
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def make_app(self, conf, image_api, volume_api, transport):
        conf.set_override('connection', 'sqlite:///%s/db.sqlite' % self.tmp,
                          group='database')
        conf.set_override('auth_strategy', 'keystone', group='api')
        conf.set_override('default_schedule_host', HOST, group='compute')
        self.db = db_api.Database(conf)
        self.db.create_schema()
        self.addCleanup(self.db.dispose)
        self.compute_api = compute_api.ComputeAPI(
            conf, self.db, image_api, rpcapi.ComputeRPCAPI(transport),
            volume_api=volume_api)
        self.app = deploy.loadapp(conf, compute_api=self.compute_api,
                                  auth_protocol=fake_auth.FakeAuthToken)
        now = datetime.datetime.now(datetime.timezone.utc).replace(
            tzinfo=None)
        self.server = self.db.instance_create({
            'name': 'vm', 'project_id': PROJECT, 'user_id': 'alice',
            'host': HOST, 'vm_state': 'active', 'task_state': None,
            'power_state': 1, 'image_ref': 'base',
            'flavor': {'id': '1', 'name': 'm1.nano', 'memory_mb': 64,
                       'vcpus': 1, 'root_gb': 1, 'ephemeral_gb': 0,
                       'swap': 0},
            'root_device_name': '/dev/vda', 'launched_at': now,
            'system_metadata': {'image_hw_disk_bus': 'virtio'}})
        self.db.service_update(HOST, rpcapi.TOPIC,
                               binary='nova-snapshot-compute')

    def request(self, method, path, body=None, label=None):
        req = webob.Request.blank('/v2.1' + path, method=method)
        req.headers['X-Auth-Token'] = fake_auth.token('alice', PROJECT)
        req.headers['X-OpenStack-Nova-API-Version'] = '2.45'
        if body is not None:
            req.content_type = 'application/json'
            req.body = json.dumps(body).encode()
        with timed(label or '%s %s' % (method, path)) as t:
            response = req.get_response(self.app)
        self.elapsed = t.elapsed
        return response

    def assertUnavailable(self, response, bound, service):
        self.assertEqual(503, response.status_int, response.text)
        body = response.json
        self.assertEqual(['serviceUnavailable'], list(body))
        self.assertIn(service, body['serviceUnavailable']['message'])
        self.assertNotIn('Error', body['serviceUnavailable']['message'])
        self.assertLess(self.elapsed, bound + MARGIN)


class APIWithSilentServicesTest(_APITestBase):
    """Glance and Cinder (Keystone mode: the caller's token) never
    answer: each request needing them is a 503 within the timeout."""

    def setUp(self):
        super().setUp()
        self.glance_hole = blackhole.BlackHole()
        self.addCleanup(self.glance_hole.stop)
        self.cinder_hole = blackhole.BlackHole()
        self.addCleanup(self.cinder_hole.stop)
        conf = _conf(glance={'endpoint_override': self.glance_hole.url,
                             'timeout': TIMEOUT},
                     cinder={'endpoint_override':
                             self.cinder_hole.url + '/v3/%(project_id)s',
                             'timeout': TIMEOUT},
                     DEFAULT={'transport_url': rpc.IN_PROCESS_URL})
        transport = rpc.get_transport(conf)
        self.addCleanup(transport.cleanup)
        self.make_app(conf, glance.GlanceAPI(conf), cinder.CinderAPI(conf),
                      transport)

    def test_server_create_with_an_image(self):
        response = self.request('POST', '/servers', {'server': {
            'name': 'new', 'imageRef': 'a2459075-d96c-40d5-893e-577ff92e721c',
            'flavorRef': '1', 'networks': 'none'}},
            label='API server create, Glance silent')
        self.assertUnavailable(response, TIMEOUT, 'image service')

    def test_create_image(self):
        response = self.request(
            'POST', '/servers/%s/action' % self.server['uuid'],
            {'createImage': {'name': 'snap'}},
            label='API createImage, Glance silent')
        self.assertUnavailable(response, TIMEOUT, 'image service')
        self.assertIsNone(
            self.db.instance_get(self.server['uuid'])['task_state'])

    def test_volume_attach(self):
        response = self.request(
            'POST', '/servers/%s/os-volume_attachments' % self.server['uuid'],
            {'volumeAttachment': {
                'volumeId': 'c9a4c5ac-0a0a-4b8c-9a55-5c9a1c0e0b11'}},
            label='API volume attach, Cinder silent')
        self.assertUnavailable(response, TIMEOUT, 'block storage service')


class _RPCBoundsMixin(object):

    # Expected bounds, seconds: rabbit_retry_interval 1 s growing by 2 s;
    # each attempt fails at once when refused, after ~5 s (kombu's connect
    # timeout) when something accepts and stays silent.
    RPC_RETRY = None
    NOTIFICATION_RETRY = None
    ATTEMPT = 0.0

    def _pauses(self, retry):
        return sum(1 + 2 * i for i in range(retry))

    def bound(self, retry):
        return (retry + 1) * self.ATTEMPT + self._pauses(retry)

    def _rabbit_conf(self):
        conf = _conf(DEFAULT={'transport_url': self.broker_url()})
        if self.RPC_RETRY is not None:
            conf.set_override('rpc_retry', self.RPC_RETRY)
        if self.NOTIFICATION_RETRY is not None:
            conf.set_override('retry', self.NOTIFICATION_RETRY,
                              group='oslo_messaging_notifications')
        return conf

    def test_cast_gives_up_with_compute_unavailable(self):
        conf = self._rabbit_conf()
        transport = rpc.get_transport(conf)
        self.addCleanup(transport.cleanup)
        api = rpcapi.ComputeRPCAPI(transport)
        ctx = nova_context.RequestContext(user_id='u', project_id='p')
        with timed('%s: cast, rpc_retry=%d' % (self.KIND, conf.rpc_retry)) \
                as t:
            self.assertRaises(exception.ComputeServiceUnavailable,
                              api.stop_instance, ctx,
                              {'uuid': 'i1', 'host': HOST})
        self.assertLess(t.elapsed, self.bound(conf.rpc_retry) + MARGIN)

    def test_notification_gives_up(self):
        conf = self._rabbit_conf()
        conf.set_override('driver', ['messagingv2'],
                          group='oslo_messaging_notifications')
        notifier = rpc.get_notifier(conf, 'nova-snapshot-compute:h')
        self.addCleanup(notifier.transport.cleanup)
        retry = conf.oslo_messaging_notifications.retry
        with timed('%s: notification, retry=%d' % (self.KIND, retry)) as t:
            # oslo.messaging logs the failure; nothing is raised.
            notifier.info(
                nova_context.RequestContext(user_id='u', project_id='p'),
                'instance.snapshot.end', {'x': 1})
        self.assertLess(t.elapsed, self.bound(retry) + MARGIN)

    def test_first_call_gives_up_with_compute_unavailable(self):
        conf = self._rabbit_conf()
        transport = rpc.get_transport(conf)
        self.addCleanup(transport.cleanup)
        api = rpcapi.ComputeRPCAPI(transport)
        ctx = nova_context.RequestContext(user_id='u', project_id='p')
        with timed('%s: first call, rpc_retry=%d' % (self.KIND,
                                                     conf.rpc_retry)) as t:
            self.assertRaises(exception.ComputeServiceUnavailable,
                              api.get_console_output, ctx,
                              {'uuid': 'i1', 'host': HOST})
        self.assertLess(t.elapsed, self.bound(conf.rpc_retry) + MARGIN)
        # Nothing holds the reply-queue lock: cleanup does not hang.
        with timed('%s: transport cleanup' % self.KIND) as t:
            transport.cleanup()
        self.assertLess(t.elapsed, MARGIN)

    def test_create_image_answers_503_and_undoes_itself(self):
        conf = self._rabbit_conf()
        conf.set_override('rpc_retry', 0)
        transport = rpc.get_transport(conf)
        self.addCleanup(transport.cleanup)
        image_api = compute_fakes.FakeImageAPI()
        base = image_api.add_image(name='base')
        self.make_app(conf, image_api, None, transport)
        self.db.instance_update(self.server['uuid'],
                                {'image_ref': base['id']})
        before = {i['id'] for i in image_api.list(None)}
        response = self.request(
            'POST', '/servers/%s/action' % self.server['uuid'],
            {'createImage': {'name': 'snap'}},
            label='%s: API createImage, rpc_retry=0' % self.KIND)
        self.assertUnavailable(response, self.bound(0), 'compute service')
        self.assertIsNone(
            self.db.instance_get(self.server['uuid'])['task_state'])
        self.assertEqual(before, {i['id'] for i in image_api.list(None)})


class RefusedBrokerTest(_RPCBoundsMixin, _APITestBase):
    """Nothing listens on the broker's port; the default retries."""

    KIND = 'broker refused'
    ATTEMPT = 0.1

    def broker_url(self):
        return 'rabbit://guest:guest@127.0.0.1:%d/' % blackhole.closed_port()


class SilentBrokerTest(_RPCBoundsMixin, _APITestBase):
    """Something accepts on the broker's port and never speaks AMQP; one
    retry each to keep the test short (the defaults are ~29 s and ~19 s,
    doc in nova_snapshot/conf/rpc.py)."""

    KIND = 'broker silent'
    ATTEMPT = 5.0
    RPC_RETRY = 1
    NOTIFICATION_RETRY = 1

    def setUp(self):
        super().setUp()
        self.hole = blackhole.BlackHole()
        self.addCleanup(self.hole.stop)

    def broker_url(self):
        return 'rabbit://guest:guest@127.0.0.1:%d/' % self.hole.port


class _StallingImageAPI(object):
    """The fake Glance, except that the first upload goes to a real
    GlanceAPI whose Glance stops reading."""

    def __init__(self, fake, real):
        self.fake = fake
        self.real = real
        self.stalled = []

    def __getattr__(self, name):
        return getattr(self.fake, name)

    def upload(self, context, image_id, data, size=None):
        if not self.stalled:
            self.stalled.append(image_id)
            return self.real.upload(context, image_id, data, size)
        return self.fake.upload(context, image_id, data, size)


class SnapshotUploadToStalledGlanceTest(compute_fakes.ComputeTestCase):
    """The compute side's upload against a Glance that stops reading fails
    within [glance] timeout and gives its snapshot slot back."""

    def setUp(self):
        make_conf = compute_fakes.make_conf
        with mock.patch.object(
                compute_fakes, 'make_conf',
                lambda: make_conf(max_concurrent_snapshots=1)):
            super().setUp()
        self.hole = blackhole.BlackHole()
        self.addCleanup(self.hole.stop)
        real = glance.GlanceAPI(_conf(glance={
            'auth_mode': 'identity_headers',
            'endpoint_override': self.hole.url, 'timeout': TIMEOUT}))
        self.stalling = _StallingImageAPI(self.image_api, real)
        self.driver.image_api = self.stalling
        # 32 MiB: more than the loopback socket buffers take in.
        self.driver.snapshot_data = b'\0' * (32 * 1024 * 1024)

    def test_upload_fails_bounded_and_frees_the_slot(self):
        self.assertEqual(1, self.conf.compute.max_concurrent_snapshots)
        instance = self.boot()
        with timed('compute snapshot upload, Glance stops reading') as t:
            image = self.api.snapshot(self.ctx, instance, 'stalled', {})
            self.wait_for_instance(instance['uuid'],
                                   lambda i: i['task_state'] is None,
                                   'the failed snapshot to end')
        self.assertEqual([image['id']], self.stalling.stalled)
        self.assertLess(t.elapsed, TIMEOUT + MARGIN + 2)
        self.assertEqual('active',
                         self.db.instance_get(instance['uuid'])['vm_state'])
        # The one slot is free again: the next snapshot runs and ends.
        self.driver.snapshot_data = b'data'
        second = self.api.snapshot(self.ctx, instance, 'next', {})
        compute_fakes.wait_for(
            lambda: self.image_api.images.get(second['id'], {}).get(
                'status') == 'active', timeout=10,
            message='the second snapshot to finish')


if __name__ == '__main__':
    unittest.main()
