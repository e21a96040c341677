"""Client side of the compute RPC API.

Only instance UUIDs travel: the manager reloads the row, so a message can
never carry a stale copy of the instance.

API version history:

* 1.0 - Initial version: build_instance, snapshot_instance,
  stop/start/pause/unpause/suspend/resume/terminate_instance (casts),
  get_console_output (call).
* 1.1 - Volume-backed servers: snapshot_volume_backed (call),
  attach_volume and detach_volume (casts).
* 1.2 - createBackup: backup_instance (cast).
* 1.3 - shelve_instance, shelve_offload_instance, unshelve_instance (casts).
* 1.4 - rebuild_instance, reboot_instance (casts).
* 1.5 - Soft delete: soft_delete_instance, restore_instance (casts).
"""

from oslo_log import log as logging
import oslo_messaging as messaging

from nova_snapshot.conf import rpc as rpc_conf
from nova_snapshot import exception
from nova_snapshot import rpc

LOG = logging.getLogger(__name__)

RPC_API_VERSION = '1.5'
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
    """Casts and calls to one instance's compute host.

    Every send gives up after ``[DEFAULT] rpc_retry`` reconnections to an
    unreachable broker (never oslo.messaging's unbounded default), and a
    call also after its timeout; either way the caller gets
    ``ComputeServiceUnavailable`` (a 503 at the API), not an
    oslo.messaging or kombu exception, and can undo what it started.
    """

    transport = None
    retry = rpc_conf.DEFAULT_RPC_RETRY

    def __init__(self, transport, version_cap=None, retry=None):
        self.transport = transport
        if retry is None:
            retry = rpc.rpc_retry(getattr(transport, 'conf', None))
        self.retry = retry
        target = messaging.Target(topic=TOPIC, version=RPC_API_VERSION)
        self.client = rpc.get_client(transport, target,
                                     version_cap=version_cap, retry=retry)

    def _prepare(self, instance, **kwargs):
        host = instance.get('host')
        if not host:
            raise exception.NoComputeHost(
                reason='instance %s has no host' % instance['uuid'])
        return self.client.prepare(server=host, version=RPC_API_VERSION,
                                   **kwargs)

    def _unavailable(self, instance, method, exc):
        LOG.error('RPC %s to host %s for instance %s failed: %s: %s',
                  method, instance.get('host'), instance['uuid'],
                  type(exc).__name__, exc)
        return exception.ComputeServiceUnavailable(
            host=instance.get('host'),
            reason='%s not delivered: %s' % (method, type(exc).__name__))

    def _cast(self, context, instance, method, **kwargs):
        cctxt = self._prepare(instance)
        try:
            cctxt.cast(context, method, instance_uuid=instance['uuid'],
                       **kwargs)
        except rpc.DELIVERY_ERRORS as exc:
            raise self._unavailable(instance, method, exc)

    def _call(self, context, instance, method, timeout,
              call_monitor_timeout=None, **kwargs):
        prepare = {'timeout': timeout}
        if call_monitor_timeout is not None:
            prepare['call_monitor_timeout'] = call_monitor_timeout
        cctxt = self._prepare(instance, **prepare)
        try:
            if self.transport is not None:
                rpc.ensure_reply_queue(self.transport, self.retry)
            return cctxt.call(context, method,
                              instance_uuid=instance['uuid'], **kwargs)
        except messaging.RemoteError:
            raise  # the compute service answered: its error, not an outage
        except messaging.MessagingTimeout as exc:
            LOG.error('RPC call %s to host %s for instance %s: no answer '
                      'within %s s', method, instance.get('host'),
                      instance['uuid'], timeout)
            raise exception.ComputeServiceUnavailable(
                host=instance.get('host'),
                reason='no answer to %s within %s s' % (method, timeout)
            ) from exc
        except rpc.DELIVERY_ERRORS as exc:
            raise self._unavailable(instance, method, exc)

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
        return self._call(context, instance, 'get_console_output', timeout,
                          length=length)

    # 1.1

    def snapshot_volume_backed(self, context, instance, image_meta,
                               timeout=VOLUME_SNAPSHOT_CALL_TIMEOUT):
        """Snapshot every volume and create the zero-byte image; returns
        the image dict. A call, so quiesce errors reach the client."""
        return self._call(context, instance, 'snapshot_volume_backed',
                          timeout, call_monitor_timeout=CALL_MONITOR_TIMEOUT,
                          image_meta=image_meta)

    def attach_volume(self, context, instance, volume_id, device=None):
        self._cast(context, instance, 'attach_volume', volume_id=volume_id,
                   device=device)

    def detach_volume(self, context, instance, volume_id):
        self._cast(context, instance, 'detach_volume', volume_id=volume_id)

    # 1.2

    def backup_instance(self, context, instance, image_id, backup_type,
                        rotation):
        self._cast(context, instance, 'backup_instance', image_id=image_id,
                   backup_type=backup_type, rotation=rotation)

    # 1.3

    def shelve_instance(self, context, instance, image_id):
        self._cast(context, instance, 'shelve_instance', image_id=image_id)

    def shelve_offload_instance(self, context, instance):
        self._cast(context, instance, 'shelve_offload_instance')

    def unshelve_instance(self, context, instance):
        """Cast to ``instance['host']``: the chosen host when offloaded."""
        self._cast(context, instance, 'unshelve_instance')

    # 1.4

    def rebuild_instance(self, context, instance, image_ref,
                         preserve_ephemeral=False):
        self._cast(context, instance, 'rebuild_instance',
                   image_ref=image_ref,
                   preserve_ephemeral=bool(preserve_ephemeral))

    def reboot_instance(self, context, instance, reboot_type):
        self._cast(context, instance, 'reboot_instance',
                   reboot_type=reboot_type)

    # 1.5

    def soft_delete_instance(self, context, instance):
        self._cast(context, instance, 'soft_delete_instance')

    def restore_instance(self, context, instance):
        self._cast(context, instance, 'restore_instance')
