"""The nova-snapshot-compute service: manager + RPC server + heartbeat.

Each heartbeat also reports the host's capacity (the driver's
``get_available_resource`` plus this host's allocation ratios and
reservations) for the scheduler. It writes totals only: the usage counters
belong to the claims, and a heartbeat only repairs them, by
compare-and-swap, when they disagree with the instances' own claims.

:class:`ComputeService` builds whatever it is not given, so the console
script passes only a ConfigOpts while tests inject a database, a fake
driver, a fake image API and a shared in-memory transport, and run several
services with different host names in one process.
"""

import logging
import random
import threading

import oslo_messaging as messaging

from nova_snapshot.compute import manager as compute_manager
from nova_snapshot.compute import notifications
from nova_snapshot.compute import reconciler as compute_reconciler
from nova_snapshot.compute import rpcapi as compute_rpcapi
from nova_snapshot import rpc
from nova_snapshot import volume

LOG = logging.getLogger(__name__)

BINARY = 'nova-snapshot-compute'
# Default of [DEFAULT] report_interval.
HEARTBEAT_INTERVAL = 10
# How long stop() lets running snapshots finish before giving up on them.
STOP_TASK_TIMEOUT = 60
# How long stop() waits for a reconciler pass to reach a stopping point.
RECONCILER_STOP_TIMEOUT = 30


class ComputeService(object):
    """One compute host.

    :param conf: the service's ConfigOpts.
    :param host: host name (default ``conf.host``); RPC server name and
        ``instances.host`` value.
    :param db: a ``db.api.Database`` (default: built from ``[database]``).
    :param image_api: default ``GlanceAPI(conf)``.
    :param driver: default: ``[compute] compute_driver`` via stevedore.
    :param transport: RPC transport (default from ``transport_url``; tests
        share one ``fake:/`` transport between clients and servers).
    :param notifier: default an oslo.messaging Notifier from
        ``[oslo_messaging_notifications]``.
    :param volume_api: default ``CinderAPI(conf)`` (None, with a warning,
        when the Cinder client cannot be built: image-backed servers work
        without it).
    """

    def __init__(self, conf, host=None, db=None, image_api=None, driver=None,
                 transport=None, notifier=None,
                 heartbeat_interval=None, volume_api=None):
        self.conf = conf
        self.host = host or conf.host
        if db is None:
            from nova_snapshot.db import api as db_api
            db = db_api.Database(conf)
        self.db = db
        if image_api is None:
            from nova_snapshot.image import glance
            image_api = glance.GlanceAPI(conf)
        self.image_api = image_api
        if volume_api is None:
            volume_api = volume.build_volume_api(conf)
        self.volume_api = volume_api
        if driver is None:
            from nova_snapshot.virt import loader
            driver = loader.load_compute_driver(conf, image_api,
                                                volume_api=volume_api)
        self.driver = driver
        self.transport = transport or rpc.get_transport(conf)
        self._owns_transport = transport is None
        if notifier is None:
            notifier = rpc.get_notifier(
                conf, notifications.publisher_id(self.host))
        self.notifier = notifier
        self.heartbeat_interval = heartbeat_interval or conf.report_interval
        self.manager = compute_manager.ComputeManager(
            conf, self.host, self.db, self.driver, self.image_api,
            self.notifier, volume_api=self.volume_api)
        self.reconciler = compute_reconciler.Reconciler(
            conf, self.host, self.db, self.driver, self.image_api,
            volume_api=self.volume_api, manager=self.manager)
        self.server = None
        self._stopping = threading.Event()
        self._heartbeat_thread = None
        self._reconciler_thread = None
        self._shelved_thread = None
        self._reclaim_thread = None

    def start(self):
        """Repair the host, then take RPC messages and report in."""
        self.manager.init_host()
        target = messaging.Target(topic=compute_rpcapi.TOPIC,
                                  server=self.host)
        self.server = rpc.get_server(self.transport, target, [self.manager])
        self.server.start()
        self._stopping.clear()
        # First report before returning: whoever started us can schedule
        # onto this host right away.
        self._report()
        self._heartbeat_thread = threading.Thread(
            target=self._heartbeat_loop, name='heartbeat-%s' % self.host,
            daemon=True)
        self._heartbeat_thread.start()
        if self.conf.reconciler.interval > 0:
            self._reconciler_thread = threading.Thread(
                target=self._reconciler_loop,
                name='reconciler-%s' % self.host, daemon=True)
            self._reconciler_thread.start()
        if self.conf.shelved_poll_interval > 0 and \
                self.conf.shelved_offload_time > 0:
            self._shelved_thread = threading.Thread(
                target=self._shelved_poll_loop,
                name='shelved-poll-%s' % self.host, daemon=True)
            self._shelved_thread.start()
        if self.conf.reclaim_instance_interval > 0:
            self._reclaim_thread = threading.Thread(
                target=self._reclaim_loop, name='reclaim-%s' % self.host,
                daemon=True)
            self._reclaim_thread.start()
        LOG.info('%s started on host %s', BINARY, self.host)
        return self

    def _report(self):
        try:
            self.db.service_update(self.host, compute_rpcapi.TOPIC,
                                   binary=BINARY)
        except Exception:
            LOG.warning('Heartbeat of %s failed', self.host, exc_info=True)
            return
        try:
            self.report_capacity()
        except Exception:
            LOG.warning('Capacity report of %s failed', self.host,
                        exc_info=True)

    def report_capacity(self):
        """Store what this host offers; repair the usage counters if they
        disagree with the instances' claims. Returns the node dict."""
        resources = dict(self.driver.get_available_resource())
        resources['hypervisor_hostname'] = (
            resources.get('hypervisor_hostname') or self.host)
        resources['running_vms'] = len(self.driver.list_instance_uuids())
        resources.update(capacity_options(self.conf))
        node = self.db.compute_node_update(self.host, resources)
        repaired = self.db.compute_node_repair_usage(self.host)
        if repaired is not None:
            LOG.warning('Usage counters of %s did not match its instances\' '
                        'claims; set to %s', self.host, repaired)
            node.update(repaired)
        return node

    def _heartbeat_loop(self):
        while not self._stopping.wait(self.heartbeat_interval):
            self._report()

    def _reconciler_loop(self):
        delay = first_reconcile_delay(self.conf)
        while not self._stopping.wait(delay):
            try:
                self.reconciler.run_pass(stop=self._stopping)
            except Exception:
                LOG.exception('Reconciler pass on %s failed', self.host)
            delay = self.conf.reconciler.interval

    def _shelved_poll_loop(self):
        # Nova's _poll_shelved_instances periodic task.
        while not self._stopping.wait(self.conf.shelved_poll_interval):
            try:
                self.manager._poll_shelved_instances()
            except Exception:
                LOG.exception('Offloading shelved servers on %s failed',
                              self.host)

    def _reclaim_loop(self):
        # Nova's _reclaim_queued_deletes periodic task (its spacing is the
        # interval too).
        while not self._stopping.wait(self.conf.reclaim_instance_interval):
            try:
                self.manager._reclaim_queued_deletes()
            except Exception:
                LOG.exception('Reclaiming soft-deleted servers on %s failed',
                              self.host)

    def stop(self, task_timeout=STOP_TASK_TIMEOUT):
        """Stop taking messages, let running work finish, stop reporting."""
        self._stopping.set()
        if self.server is not None:
            self.server.stop()
            self.server.wait()
            self.server = None
        if not self.manager.wait_for_tasks(task_timeout):
            LOG.warning('Snapshots still running on %s at stop; the next '
                        'start-up repairs them', self.host)
        if self._heartbeat_thread is not None:
            self._heartbeat_thread.join(self.heartbeat_interval + 1)
            self._heartbeat_thread = None
        if self._reconciler_thread is not None:
            # A pass stops between two repairs once _stopping is set; one
            # repair waits at most for its client's timeout.
            self._reconciler_thread.join(RECONCILER_STOP_TIMEOUT)
            self._reconciler_thread = None
        if self._owns_transport:
            self.transport.cleanup()
        LOG.info('%s stopped on host %s', BINARY, self.host)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


def first_reconcile_delay(conf, rand=random.uniform):
    """Seconds before the first reconciler pass: between half and all of
    ``startup_delay`` (never more than the interval), so hosts restarted
    together do not all call Glance and Cinder at the same moment."""
    ceiling = min(conf.reconciler.startup_delay, conf.reconciler.interval)
    return rand(ceiling / 2.0, ceiling)


def capacity_options(conf):
    """This host's reservations and allocation ratios, as the node row
    stores them (reserved disk rounded up to whole GiB, as Nova does)."""
    return {
        'cpu_allocation_ratio': conf.cpu_allocation_ratio,
        'ram_allocation_ratio': conf.ram_allocation_ratio,
        'disk_allocation_ratio': conf.disk_allocation_ratio,
        'vcpus_reserved': conf.reserved_host_cpus,
        'memory_mb_reserved': conf.reserved_host_memory_mb,
        'local_gb_reserved': -(-conf.reserved_host_disk_mb // 1024),
    }
