"""How long RPC waits for the message broker before it gives up.

oslo.messaging retries a broker it cannot reach for ever by default: with
RabbitMQ down, a cast holds the API request (and the server's task state)
and a notification holds the snapshot that sends it, with no end. These
options bound every cast, call and notification; when they run out the API
answers 503 and undoes what it had started (nova_snapshot.compute.rpcapi).

The waits add up from oslo.messaging's ``[oslo_messaging_rabbit]`` pacing
(``rabbit_retry_interval`` 1 s, growing by ``rabbit_retry_backoff`` 2 s, at
most ``rabbit_interval_max``) plus, per attempt, the time a connection takes
to fail: at once when refused, about 5 s (kombu's connect timeout) when
something accepts the TCP connection and never speaks AMQP.
"""

from oslo_config import cfg

# Reconnections: 1 + 3 + 5 s of pauses, so a broker restart or a failover
# of up to ~9 s still delivers; a broker that stays away answers 503 after
# ~9 s (refused) or ~29 s (accepting and silent).
DEFAULT_RPC_RETRY = 3
# Notifications are best effort and are sent from inside the work they
# report (a snapshot waits for its own "end" notification): 2 reconnections,
# ~4 s refused, ~19 s silent, then the notification is dropped and logged.
DEFAULT_NOTIFICATION_RETRY = 2

OPTS = [
    cfg.IntOpt('rpc_retry', default=DEFAULT_RPC_RETRY, min=0,
               help='Times a cast or call to a compute service reconnects '
                    'to an unreachable message broker before it fails '
                    '(the API then answers 503 and reverts the server\'s '
                    'task state). Also bounds the broker check before the '
                    'first call of a process declares its reply queue. 0 '
                    'tries once. oslo.messaging\'s own default retries for '
                    'ever, which holds the request and the task state while '
                    'the broker is down.'),
]

NOTIFICATIONS_GROUP = 'oslo_messaging_notifications'


def register_opts(conf):
    conf.register_opts(OPTS)


def list_opts():
    return {'DEFAULT': OPTS}
