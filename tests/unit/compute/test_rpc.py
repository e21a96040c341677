import unittest

from nova_snapshot import conf as ns_conf
from nova_snapshot import context as ns_context
from nova_snapshot import rpc


class TransportTest(unittest.TestCase):

    def _driver_name(self, transport):
        self.addCleanup(transport.cleanup)
        return type(transport._driver).__module__.rsplit('.', 1)[-1]

    def test_unset_url_is_in_process(self):
        conf = ns_conf.new_conf([])
        self.assertEqual('impl_fake',
                         self._driver_name(rpc.get_transport(conf)))
        self.assertEqual('impl_fake', self._driver_name(
            rpc.get_notification_transport(conf)))

    def test_configured_url_is_used(self):
        conf = ns_conf.new_conf([])
        rpc.register_opts(conf)
        conf.set_override('transport_url',
                          'rabbit://guest:guest@127.0.0.1:5672/x')
        # Building a rabbit transport does not connect yet.
        self.assertEqual('impl_rabbit',
                         self._driver_name(rpc.get_transport(conf)))
        self.assertEqual('impl_rabbit', self._driver_name(
            rpc.get_notification_transport(conf)))


class SerializerTest(unittest.TestCase):

    def test_context_round_trip(self):
        ctx = ns_context.RequestContext(user_id='u', project_id='p',
                                        roles=['member'])
        serializer = rpc.RequestContextSerializer()
        back = serializer.deserialize_context(
            serializer.serialize_context(ctx))
        self.assertIsInstance(back, ns_context.RequestContext)
        self.assertEqual((ctx.user_id, ctx.project_id, ctx.request_id,
                          ['member']),
                         (back.user_id, back.project_id, back.request_id,
                          back.roles))
