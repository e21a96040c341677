"""Where a new server goes.

There is no placement service: either the operator names the host, or the
one compute service that is alive gets it. Several live services without
a configured host is an error rather than a guess.
"""

import datetime

from nova_snapshot import exception

TOPIC = 'nova-snapshot-compute'
# A service that has not reported for this long is considered down
# (its heartbeat runs every 10 s, see nova_snapshot.service).
SERVICE_DOWN_SECONDS = 60


def _as_aware(value):
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    if value.tzinfo is None:
        # The database stores naive UTC timestamps.
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value


def service_is_up(service, now=None):
    now = now or datetime.datetime.now(datetime.timezone.utc)
    last = _as_aware(service.get('last_seen_up') or service.get('updated_at')
                     or service.get('created_at'))
    if last is None:
        return False
    return (now - last).total_seconds() <= SERVICE_DOWN_SECONDS


def live_hosts(db):
    return sorted({s['host'] for s in db.service_get_all(TOPIC)
                   if service_is_up(s)})


def select_host(conf, db):
    """Return the host name for a new instance."""
    if conf.compute.default_schedule_host:
        return conf.compute.default_schedule_host
    hosts = live_hosts(db)
    if not hosts:
        raise exception.NoComputeHost(
            reason='no nova-snapshot-compute service reported in the last '
                   '%d seconds' % SERVICE_DOWN_SECONDS)
    if len(hosts) > 1:
        raise exception.NoComputeHost(
            reason='several compute services are up (%s); set [compute] '
                   'default_schedule_host' % ', '.join(hosts))
    return hosts[0]
