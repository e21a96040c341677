"""The RPC client and the manager must agree on methods, arguments and
version (Ironic's test_versions_in_sync, plus the argument names)."""

import inspect
import unittest

from nova_snapshot.compute import manager as compute_manager
from nova_snapshot.compute import rpcapi as compute_rpcapi
from nova_snapshot import context as ns_context
from nova_snapshot import exception


class _RecordingClient(object):
    """Stands in for the oslo.messaging client; keeps what would be sent."""

    def __init__(self):
        self.sent = []
        self.prepared = []

    def prepare(self, **kwargs):
        self.prepared.append(kwargs)
        return self

    def cast(self, context, method, **kwargs):
        self.sent.append(('cast', method, kwargs))

    def call(self, context, method, **kwargs):
        self.sent.append(('call', method, kwargs))
        return 'output'


def _public_methods(cls):
    return {name for name, _ in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith('_')}


class VersionsInSyncTest(unittest.TestCase):

    def test_versions_in_sync(self):
        self.assertEqual(compute_rpcapi.RPC_API_VERSION,
                         compute_manager.ComputeManager.target.version)

    def test_history_mentions_current_version(self):
        self.assertIn('* %s ' % compute_rpcapi.RPC_API_VERSION,
                      compute_rpcapi.__doc__)


class ClientMatchesManagerTest(unittest.TestCase):

    def setUp(self):
        self.rpcapi = compute_rpcapi.ComputeRPCAPI.__new__(
            compute_rpcapi.ComputeRPCAPI)
        self.rpcapi.client = _RecordingClient()
        self.ctx = ns_context.RequestContext(user_id='u', project_id='p')
        self.instance = {'uuid': 'inst-1', 'host': 'host-x'}

    def _send_each(self):
        extra = {'build_instance': {'image_ref': 'img'},
                 'snapshot_instance': {'image_id': 'img'},
                 'get_console_output': {'length': 5},
                 'snapshot_volume_backed': {'image_meta': {'name': 'n'}},
                 'attach_volume': {'volume_id': 'vol',
                                   'device': '/dev/vdb'},
                 'detach_volume': {'volume_id': 'vol'},
                 'shelve_instance': {'image_id': 'img'},
                 'backup_instance': {'image_id': 'img',
                                     'backup_type': 'daily', 'rotation': 2},
                 'reboot_instance': {'reboot_type': 'HARD'},
                 'rebuild_instance': {'image_ref': 'img',
                                      'preserve_ephemeral': True}}
        client_methods = _public_methods(compute_rpcapi.ComputeRPCAPI)
        for name in sorted(client_methods):
            getattr(self.rpcapi, name)(self.ctx, self.instance,
                                       **extra.get(name, {}))
        return client_methods

    def test_every_client_method_reaches_a_matching_endpoint(self):
        client_methods = self._send_each()
        sent = self.rpcapi.client.sent
        self.assertEqual(len(client_methods), len(sent))
        endpoints = _public_methods(compute_manager.ComputeManager)
        for kind, method, kwargs in sent:
            self.assertIn(method, endpoints)
            signature = inspect.signature(
                getattr(compute_manager.ComputeManager, method))
            # self, context and exactly the keyword arguments sent.
            signature.bind(None, self.ctx, **kwargs)
            params = [p for p in signature.parameters][2:]
            self.assertEqual(sorted(params), sorted(kwargs), method)
            self.assertEqual('inst-1', kwargs['instance_uuid'])
        # Casts for every method but the console and the volume-backed
        # snapshot, which are calls.
        self.assertEqual({'get_console_output', 'snapshot_volume_backed'},
                         {m for kind, m, _ in sent if kind == 'call'})

    def test_every_endpoint_has_a_client_method(self):
        endpoints = _public_methods(compute_manager.ComputeManager)
        # Not RPC: service-side entry points.
        endpoints -= {'init_host', 'wait_for_tasks', 'busy_instances',
                      'server_lock_if_free'}
        self.assertEqual(endpoints,
                         _public_methods(compute_rpcapi.ComputeRPCAPI))

    def test_routed_to_instance_host_and_pinned_version(self):
        self._send_each()
        for kwargs in self.rpcapi.client.prepared:
            self.assertEqual('host-x', kwargs['server'])
            self.assertEqual(compute_rpcapi.RPC_API_VERSION,
                             kwargs['version'])

    def test_no_host_refuses_to_send(self):
        self.assertRaises(exception.NoComputeHost,
                          self.rpcapi.snapshot_instance, self.ctx,
                          {'uuid': 'u', 'host': None}, 'img')
        self.assertEqual([], self.rpcapi.client.sent)
