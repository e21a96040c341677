"""oslo.messaging plumbing: transports, the context serializer, clients,
servers and notifiers.

Everything takes the ``ConfigOpts`` it should read; nothing here keeps a
module-level transport, so a test can run several isolated services (and
several in-memory brokers) in one process.
"""

import importlib

from oslo_config import cfg
import oslo_messaging as messaging
from oslo_messaging import opts as messaging_opts
from oslo_messaging.rpc import dispatcher

from nova_snapshot import context as ns_context

# oslo.messaging's in-memory driver, used when no transport_url is
# configured so an all-in-one process (unit tests, a one-host demo) works
# without a broker. Each transport object is its own broker: clients and
# servers only see each other when they share the same transport instance.
IN_PROCESS_URL = 'fake:/'

NOTIFICATIONS_GROUP = 'oslo_messaging_notifications'
# Exceptions from these modules are re-raised as themselves on the caller
# side of an RPC call (e.g. InstanceNotFound from get_console_output).
ALLOWED_EXMODS = ['nova_snapshot.exception']


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


def get_client(transport, target, version_cap=None):
    return messaging.get_rpc_client(
        transport, target, version_cap=version_cap,
        serializer=RequestContextSerializer())


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
    return messaging.Notifier(transport, publisher_id=publisher_id,
                              serializer=RequestContextSerializer())
