"""Client side of the compute RPC API.

Only instance UUIDs travel: the manager reloads the row, so a message can
never carry a stale copy of the instance.

API version history:

* 1.0 - Initial version: build_instance, snapshot_instance,
  stop/start/pause/unpause/suspend/resume/terminate_instance (casts),
  get_console_output (call).
* 1.1 - Volume-backed servers: snapshot_volume_backed (call),
  attach_volume and detach_volume (casts).
"""

import oslo_messaging as messaging

from nova_snapshot import exception
from nova_snapshot import rpc

RPC_API_VERSION = '1.1'
TOPIC = 'nova-snapshot-compute'
# A console read is small; do not let an API worker hang for the transport's
# full default when a compute service is gone.
CONSOLE_CALL_TIMEOUT = 30
# Fallback when no [compute] volume_snapshot_rpc_timeout is handed in.
VOLUME_SNAPSHOT_CALL_TIMEOUT = 900
# A long call must still fail fast when the compute service dies: the
# server sends a heartbeat every half of this while the call runs, and the
# client gives up when none arrives in time.
CALL_MONITOR_TIMEOUT = 30


class ComputeRPCAPI(object):

    def __init__(self, transport, version_cap=None):
        self.transport = transport
        target = messaging.Target(topic=TOPIC, version=RPC_API_VERSION)
        self.client = rpc.get_client(transport, target,
                                     version_cap=version_cap)

    def _prepare(self, instance, **kwargs):
        host = instance.get('host')
        if not host:
            raise exception.NoComputeHost(
                reason='instance %s has no host' % instance['uuid'])
        return self.client.prepare(server=host, version=RPC_API_VERSION,
                                   **kwargs)

    def _cast(self, context, instance, method, **kwargs):
        self._prepare(instance).cast(context, method,
                                     instance_uuid=instance['uuid'], **kwargs)

    def build_instance(self, context, instance, image_ref):
        self._cast(context, instance, 'build_instance', image_ref=image_ref)

    def snapshot_instance(self, context, instance, image_id):
        self._cast(context, instance, 'snapshot_instance', image_id=image_id)

    def stop_instance(self, context, instance):
        self._cast(context, instance, 'stop_instance')

    def start_instance(self, context, instance):
        self._cast(context, instance, 'start_instance')

    def pause_instance(self, context, instance):
        self._cast(context, instance, 'pause_instance')

    def unpause_instance(self, context, instance):
        self._cast(context, instance, 'unpause_instance')

    def suspend_instance(self, context, instance):
        self._cast(context, instance, 'suspend_instance')

    def resume_instance(self, context, instance):
        self._cast(context, instance, 'resume_instance')

    def terminate_instance(self, context, instance):
        self._cast(context, instance, 'terminate_instance')

    def get_console_output(self, context, instance, length=None,
                           timeout=CONSOLE_CALL_TIMEOUT):
        cctxt = self._prepare(instance, timeout=timeout)
        return cctxt.call(context, 'get_console_output',
                          instance_uuid=instance['uuid'], length=length)

    # 1.1

    def snapshot_volume_backed(self, context, instance, image_meta,
                               timeout=VOLUME_SNAPSHOT_CALL_TIMEOUT):
        """Snapshot every volume and create the zero-byte image; returns
        the image dict. A call, so quiesce errors reach the client."""
        cctxt = self._prepare(instance, timeout=timeout,
                              call_monitor_timeout=CALL_MONITOR_TIMEOUT)
        return cctxt.call(context, 'snapshot_volume_backed',
                          instance_uuid=instance['uuid'],
                          image_meta=image_meta)

    def attach_volume(self, context, instance, volume_id, device=None):
        self._cast(context, instance, 'attach_volume', volume_id=volume_id,
                   device=device)

    def detach_volume(self, context, instance, volume_id):
        self._cast(context, instance, 'detach_volume', volume_id=volume_id)
