"""oslo.messaging plumbing: transports, the context serializer, clients,
servers and notifiers.

Everything takes the ``ConfigOpts`` it should read; nothing here keeps a
module-level transport, so a test can run several isolated services (and
several in-memory brokers) in one process.
"""

import importlib

from oslo_config import cfg
from oslo_log import log as logging
import oslo_messaging as messaging
from oslo_messaging import opts as messaging_opts
from oslo_messaging.rpc import dispatcher

from nova_snapshot.conf import rpc as rpc_conf
from nova_snapshot import context as ns_context
from nova_snapshot import exception

try:  # oslo.messaging's rabbit driver lets kombu's connect errors out
    from kombu import exceptions as kombu_exc
    _KOMBU_ERRORS = (kombu_exc.KombuError,)
except ImportError:  # pragma: no cover - kombu comes with oslo.messaging
    _KOMBU_ERRORS = ()

LOG = logging.getLogger(__name__)

# oslo.messaging's in-memory driver, used when no transport_url is
# configured so an all-in-one process (unit tests, a one-host demo) works
# without a broker. Each transport object is its own broker: clients and
# servers only see each other when they share the same transport instance.
IN_PROCESS_URL = 'fake:/'

NOTIFICATIONS_GROUP = 'oslo_messaging_notifications'
# Exceptions from these modules are re-raised as themselves on the caller
# side of an RPC call (e.g. InstanceNotFound from get_console_output).
ALLOWED_EXMODS = ['nova_snapshot.exception']
# What a cast or call raises when the broker cannot be reached within its
# retries: oslo.messaging's own exceptions, and kombu's (the rabbit driver
# lets "connection refused" or "timed out" through as OperationalError).
DELIVERY_ERRORS = (messaging.MessagingException, OSError) + _KOMBU_ERRORS
# The programs that may run on the in-memory transport: the API and the
# compute service share one process there, so a cast reaches its server.
IN_PROCESS_PROGRAMS = ('nova-snapshot-all',)


class TransportURLRequired(exception.NovaSnapshotException):
    msg_fmt = ('%(prog)s needs [DEFAULT] transport_url (e.g. '
               'rabbit://user:password@host:5672/vhost): without it the '
               'API and the compute services would each talk to an '
               'in-memory broker of their own, and every cast would be '
               'lost. Only nova-snapshot-all, which runs both in one '
               'process, may leave it unset.')


# Options oslo.messaging reads on every client call but registers only on
# the global cfg.CONF (oslo.messaging 18.x; its own ConfFixture has the same
# list). A ConfigOpts of our own needs them registered by hand.
_GLOBAL_ONLY_OPTS = (
    ('oslo_messaging._metrics.client', 'oslo_messaging_metrics',
     'oslo_messaging_metrics'),
    ('oslo_messaging._tracing.client', 'oslo_messaging_tracing',
     'oslo_messaging_tracing'),
)


def register_opts(conf):
    """Register oslo.messaging's options so they can be read before use."""
    messaging.set_transport_defaults('nova_snapshot')
    for group, opts in messaging_opts.list_opts():
        if group in (None, NOTIFICATIONS_GROUP):
            conf.register_opts(opts, group=group)
    rpc_conf.register_opts(conf)
    # oslo.messaging's default (-1) retries a notification for ever: with
    # the broker down, the snapshot that sends it would never finish.
    conf.set_default('retry', rpc_conf.DEFAULT_NOTIFICATION_RETRY,
                     group=NOTIFICATIONS_GROUP)
    for module_name, attr, group in _GLOBAL_ONLY_OPTS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # a version without that feature
            continue
        conf.register_opts(getattr(module, attr), group=group)


def _is_set(conf, name, group=None):
    value = conf[group][name] if group else conf[name]
    if not value:
        return False
    # oslo.messaging's own default is a bare 'rabbit://'; treat "nobody
    # configured it" as unset rather than silently dialling a local broker.
    location = conf.get_location(name, group)
    return location is None or location.location != cfg.Locations.opt_default


def check_transport(conf, prog):
    """Refuse to start ``prog`` on the in-memory transport unless it is the
    all-in-one program; raises :class:`TransportURLRequired`.

    An explicit ``transport_url = fake:/`` is let through with a warning
    (a listing-only API in tests); an unset one is the forgotten option.
    """
    register_opts(conf)
    if prog in IN_PROCESS_PROGRAMS:
        return
    if not _is_set(conf, 'transport_url'):
        raise TransportURLRequired(prog=prog)
    if conf.transport_url.startswith('fake:'):
        LOG.warning('%s uses the in-memory transport (%s): casts from this '
                    'process reach no other process', prog,
                    conf.transport_url)


def get_transport(conf, url=None):
    """Return the RPC transport for ``url``, else ``transport_url``, else
    the in-process broker."""
    register_opts(conf)
    if url is None and _is_set(conf, 'transport_url'):
        url = conf.transport_url
    return messaging.get_rpc_transport(
        conf, url=url or IN_PROCESS_URL,
        allowed_remote_exmods=ALLOWED_EXMODS)


def get_notification_transport(conf, url=None):
    """Return the notification transport.

    ``[oslo_messaging_notifications] transport_url`` wins, then
    ``transport_url``, then the in-process broker.
    """
    register_opts(conf)
    if url is None:
        if _is_set(conf, 'transport_url', NOTIFICATIONS_GROUP):
            url = conf[NOTIFICATIONS_GROUP].transport_url
        elif _is_set(conf, 'transport_url'):
            url = conf.transport_url
    return messaging.get_notification_transport(conf,
                                                url=url or IN_PROCESS_URL)


class RequestContextSerializer(messaging.Serializer):
    """Carry our :class:`RequestContext` across RPC as a plain dict."""

    def __init__(self, base=None):
        self._base = base or messaging.NoOpSerializer()

    def serialize_entity(self, context, entity):
        return self._base.serialize_entity(context, entity)

    def deserialize_entity(self, context, entity):
        return self._base.deserialize_entity(context, entity)

    def serialize_context(self, context):
        return context.to_dict()

    def deserialize_context(self, context):
        return ns_context.RequestContext.from_dict(context)


def rpc_retry(conf):
    """``[DEFAULT] rpc_retry`` of ``conf`` (its default when ``conf`` does
    not have our options, e.g. a bare transport in a test)."""
    try:
        return conf.rpc_retry
    except (cfg.NoSuchOptError, AttributeError):
        return rpc_conf.DEFAULT_RPC_RETRY


def get_client(transport, target, version_cap=None, retry=None):
    """An RPC client whose casts and calls give up on an unreachable broker
    after ``retry`` reconnections (default ``[DEFAULT] rpc_retry`` of the
    transport's conf), never the unbounded oslo.messaging default."""
    if retry is None:
        retry = rpc_retry(getattr(transport, 'conf', None))
    return messaging.get_rpc_client(
        transport, target, version_cap=version_cap,
        serializer=RequestContextSerializer(), retry=retry)


def ensure_reply_queue(transport, retry):
    """Make sure the transport's reply queue exists before a call is sent,
    giving up after ``retry`` reconnections.

    oslo.messaging's AMQP drivers declare the reply queue on the first call
    of a process, on a connection they retry for ever whatever ``retry``
    says, while holding a lock that ``transport.cleanup()`` also takes; the
    call's own timeout only starts after that. So first open a connection
    of our own with the bounded retry: if the broker does not answer, that
    raises (nothing has been sent); if it does, the reply queue is declared
    on a broker that just answered. Drivers without a reply queue
    (``fake:``), or whose queue exists already, return at once.
    """
    driver = getattr(transport, '_driver', None)
    setup = getattr(driver, '_get_reply_q', None)
    pool = getattr(driver, '_connection_pool', None)
    if setup is None or getattr(driver, '_reply_q', None) is not None:
        return
    if pool is not None:
        pool.create(retry=retry).close()
    setup()


def get_server(transport, target, endpoints):
    # oslo.messaging's default executor is threading (we run no eventlet);
    # it is not passed: the argument is deprecated. The explicit access
    # policy keeps endpoint methods starting with '_' unreachable over RPC.
    return messaging.get_rpc_server(
        transport, target, endpoints, executor='threading',
        serializer=RequestContextSerializer(),
        access_policy=dispatcher.DefaultRPCAccessPolicy)


def get_notifier(conf, publisher_id, transport=None):
    """Return an oslo.messaging Notifier for ``publisher_id``.

    Drivers come from ``[oslo_messaging_notifications] driver``; the
    default (none) is a no-op. Tests choose ``messaging`` and listen on the
    same transport object (pass it in) to observe what was sent.
    """
    if transport is None:
        transport = get_notification_transport(conf)
    register_opts(conf)
    retry = conf[NOTIFICATIONS_GROUP].retry
    if retry is None or retry < 0:
        LOG.warning('[%s] retry = %s: a notification waits for ever for an '
                    'unreachable broker, and so does the action sending it',
                    NOTIFICATIONS_GROUP, retry)
    return messaging.Notifier(transport, publisher_id=publisher_id,
                              serializer=RequestContextSerializer(),
                              retry=retry)
