"""Bounded RPC: retries on casts, calls and notifications, the reply-queue
wait, the 503 when they run out, and no in-memory transport for a split
deployment (the loopback brokers are in tests/functional/
test_bounded_waits.py)."""

import os
import tempfile
import unittest
from unittest import mock

from kombu import exceptions as kombu_exc
import oslo_messaging as messaging

from nova_snapshot.cmd import api as cmd_api
from nova_snapshot.cmd import compute as cmd_compute
from nova_snapshot.compute import rpcapi as compute_rpcapi
from nova_snapshot import conf as ns_conf
from nova_snapshot.conf import rpc as rpc_conf
from nova_snapshot import context as ns_context
from nova_snapshot import exception
from nova_snapshot import rpc

RABBIT_URL = 'rabbit://guest:guest@127.0.0.1:5672/x'


def make_conf(**overrides):
    conf = ns_conf.new_conf([])
    rpc.register_opts(conf)
    for key, value in overrides.items():
        conf.set_override(key, value)
    return conf


class CheckTransportTest(unittest.TestCase):

    def test_unset_url_refused_for_api_and_compute(self):
        conf = make_conf()
        for prog in ('nova-snapshot-api', 'nova-snapshot-compute'):
            exc = self.assertRaises(rpc.TransportURLRequired,
                                    rpc.check_transport, conf, prog)
            self.assertIn('transport_url', str(exc))
            self.assertIn(prog, str(exc))

    def assertRaises(self, exc_class, func, *args):
        with super().assertRaises(exc_class) as caught:
            func(*args)
        return caught.exception

    def test_all_in_one_may_use_the_in_process_broker(self):
        rpc.check_transport(make_conf(), 'nova-snapshot-all')

    def test_configured_url_passes(self):
        rpc.check_transport(make_conf(transport_url=RABBIT_URL),
                            'nova-snapshot-api')

    def test_explicit_fake_url_passes_with_a_warning(self):
        with self.assertLogs('nova_snapshot.rpc', 'WARNING') as logs:
            rpc.check_transport(make_conf(transport_url=rpc.IN_PROCESS_URL),
                                'nova-snapshot-compute')
        self.assertIn('in-memory', logs.output[0])

    def test_library_default_still_in_process(self):
        # Unit tests and nova-snapshot-all build services in-process.
        transport = rpc.get_transport(make_conf())
        self.addCleanup(transport.cleanup)
        self.assertEqual('impl_fake',
                         type(transport._driver).__module__.rsplit('.')[-1])


class ProgramsRefuseInProcessTest(unittest.TestCase):

    def setUp(self):
        super().setUp()
        fd, self.conf_file = tempfile.mkstemp(suffix='.conf')
        os.close(fd)
        self.addCleanup(os.unlink, self.conf_file)

    def _exit_message(self, main):
        with self.assertRaises(SystemExit) as caught:
            main(['--config-file', self.conf_file])
        return str(caught.exception.code)

    def test_api_exits_naming_the_option(self):
        with mock.patch.object(cmd_api, 'make_server') as make_server:
            message = self._exit_message(cmd_api.main)
        self.assertIn('[DEFAULT] transport_url', message)
        self.assertIn('nova-snapshot-api', message)
        make_server.assert_not_called()

    def test_compute_exits_naming_the_option(self):
        with mock.patch.object(cmd_compute.service,
                               'ComputeService') as service:
            message = self._exit_message(cmd_compute.main)
        self.assertIn('[DEFAULT] transport_url', message)
        self.assertIn('nova-snapshot-compute', message)
        service.assert_not_called()


class RetryDefaultsTest(unittest.TestCase):

    def _rpcapi(self, conf):
        transport = rpc.get_transport(conf, url=RABBIT_URL)
        self.addCleanup(transport.cleanup)
        return compute_rpcapi.ComputeRPCAPI(transport)

    def test_casts_and_calls_retry_a_bounded_number_of_times(self):
        api = self._rpcapi(make_conf())
        self.assertEqual(rpc_conf.DEFAULT_RPC_RETRY,
                         api._prepare({'uuid': 'u', 'host': 'h'}).retry)

    def test_retry_comes_from_the_config(self):
        api = self._rpcapi(make_conf(rpc_retry=0))
        self.assertEqual(0, api._prepare({'uuid': 'u', 'host': 'h'}).retry)
        self.assertEqual(0, api.retry)

    def test_notifications_retry_a_bounded_number_of_times(self):
        conf = make_conf()
        notifier = rpc.get_notifier(conf, 'p')
        self.addCleanup(notifier.transport.cleanup)
        self.assertEqual(rpc_conf.DEFAULT_NOTIFICATION_RETRY, notifier.retry)
        self.assertGreaterEqual(notifier.retry, 0)

    def test_notification_retry_from_the_config(self):
        conf = make_conf()
        conf.set_override('retry', 0, group='oslo_messaging_notifications')
        notifier = rpc.get_notifier(conf, 'p')
        self.addCleanup(notifier.transport.cleanup)
        self.assertEqual(0, notifier.retry)

    def test_unbounded_notification_retry_is_warned_about(self):
        conf = make_conf()
        conf.set_override('retry', -1, group='oslo_messaging_notifications')
        with self.assertLogs('nova_snapshot.rpc', 'WARNING'):
            notifier = rpc.get_notifier(conf, 'p')
        self.addCleanup(notifier.transport.cleanup)


class _Connection(object):
    def __init__(self, up):
        if not up:
            raise kombu_exc.OperationalError('[Errno 111] refused')
        self.closed = False

    def close(self):
        self.closed = True


class _Driver(object):
    """An AMQP driver's reply-queue plumbing over a broker that is up or
    not; declaring the queue with it down would block for ever."""

    def __init__(self, up):
        self.up = up
        self._reply_q = None
        self.probes = []
        self._connection_pool = self

    def create(self, retry=None):
        self.probes.append(retry)
        return _Connection(self.up)

    def _get_reply_q(self):
        if not self.up:
            raise AssertionError('would retry for ever')
        self._reply_q = 'reply_x'
        return self._reply_q


class EnsureReplyQueueTest(unittest.TestCase):

    def test_broker_down_fails_with_the_bounded_probe(self):
        driver = _Driver(up=False)
        self.assertRaises(kombu_exc.OperationalError, rpc.ensure_reply_queue,
                          mock.Mock(_driver=driver), 2)
        self.assertEqual([2], driver.probes)
        self.assertIsNone(driver._reply_q)

    def test_broker_up_declares_the_queue_once(self):
        driver = _Driver(up=True)
        transport = mock.Mock(_driver=driver)
        rpc.ensure_reply_queue(transport, 3)
        rpc.ensure_reply_queue(transport, 3)
        self.assertEqual('reply_x', driver._reply_q)
        self.assertEqual([3], driver.probes)

    def test_fake_transport_has_no_reply_queue(self):
        transport = rpc.get_transport(make_conf())
        self.addCleanup(transport.cleanup)
        rpc.ensure_reply_queue(transport, 0)


class _FailingClient(object):
    def __init__(self, exc):
        self.exc = exc
        self.prepared = []

    def prepare(self, **kwargs):
        self.prepared.append(kwargs)
        return self

    def cast(self, context, method, **kwargs):
        raise self.exc

    def call(self, context, method, **kwargs):
        raise self.exc


class RPCAPIFailuresTest(unittest.TestCase):

    INSTANCE = {'uuid': 'inst-1', 'host': 'host-x'}

    def _rpcapi(self, exc):
        api = compute_rpcapi.ComputeRPCAPI.__new__(
            compute_rpcapi.ComputeRPCAPI)
        api.client = _FailingClient(exc)
        return api

    def setUp(self):
        super().setUp()
        self.ctx = ns_context.RequestContext(user_id='u', project_id='p')

    def test_undeliverable_cast_is_compute_unavailable(self):
        for exc in (kombu_exc.OperationalError('[Errno 111] refused'),
                    messaging.MessageDeliveryFailure('gave up'),
                    ConnectionResetError('reset')):
            api = self._rpcapi(exc)
            with self.assertRaises(
                    exception.ComputeServiceUnavailable) as caught:
                api.snapshot_instance(self.ctx, self.INSTANCE, 'img')
            self.assertEqual(503, caught.exception.code)
            self.assertIn('host-x', caught.exception.format_message())

    def test_call_timeout_is_compute_unavailable(self):
        api = self._rpcapi(messaging.MessagingTimeout('no reply'))
        with self.assertRaises(exception.ComputeServiceUnavailable):
            api.get_console_output(self.ctx, self.INSTANCE, length=3)
        self.assertEqual(compute_rpcapi.CONSOLE_CALL_TIMEOUT,
                         api.client.prepared[0]['timeout'])

    def test_answers_of_the_compute_service_pass_through(self):
        for exc in (messaging.RemoteError('ValueError', 'bad'),
                    exception.InstanceNotFound(instance_id='inst-1')):
            api = self._rpcapi(exc)
            self.assertRaises(type(exc), api.snapshot_volume_backed,
                              self.ctx, self.INSTANCE, {'name': 'n'})

    def test_no_reply_queue_is_compute_unavailable(self):
        api = self._rpcapi(AssertionError('must not be sent'))
        api.transport = mock.Mock(_driver=_Driver(up=False))
        with self.assertRaises(exception.ComputeServiceUnavailable):
            api.get_console_output(self.ctx, self.INSTANCE)


if __name__ == '__main__':
    unittest.main()
