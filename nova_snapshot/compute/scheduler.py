"""Where a new server goes: filters, a weigher, and an atomic claim.

The API process schedules (there is no separate scheduler service): it
reads every compute node with its service's state in one query, keeps the
hosts that are enabled, up and have room for the flavor (Nova's
ComputeFilter and its RAM/disk/vCPU checks, with allocation ratios and
reservations as Nova's placement counts them), orders them by free RAM
(Nova's RAMWeigher: spread by default, pack with a negative
``[filter_scheduler] ram_weight_multiplier``) and then claims on the best
one. The read is only advice: the claim itself is a compare-and-swap in
SQL (``Database.instance_create_claimed``), so when concurrent requests
raced for the same room the loser moves on to the next host, and when
none is left the server gets Nova's "No valid host was found".

A forced host (an admin's ``availability_zone`` = ``zone:host``) skips
the capacity filters and the weigher as in Nova, but, unlike Nova, never
lands on a host that is down or disabled: a server cast to a host that
stopped reporting would sit in BUILD until it came back. The claim is made
all the same (Nova's placement allocation), so a full host still refuses.
"""

import datetime
import logging
import random

from nova_snapshot import exception

LOG = logging.getLogger(__name__)

TOPIC = 'nova-snapshot-compute'
NO_VALID_HOST = 'There are not enough hosts available.'


def _as_aware(value):
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    if value.tzinfo is None:
        # The database stores naive UTC timestamps.
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value


def last_heartbeat(service):
    """The time of a service's last report (Nova: last_seen_up, else
    updated_at, else created_at)."""
    return _as_aware(service.get('last_seen_up') or service.get('updated_at')
                     or service.get('created_at'))


def service_is_up(service, down_time, now=None):
    """Nova's DB servicegroup rule: up when not forced down and the last
    heartbeat is at most ``down_time`` (``[DEFAULT] service_down_time``)
    seconds old."""
    if service.get('forced_down'):
        return False
    last = last_heartbeat(service)
    if last is None:
        return False
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return abs((now - last).total_seconds()) <= down_time


def parse_availability_zone(value):
    """Nova's ``zone``, ``zone:host``, ``zone::node``, ``zone:host:node``.

    :returns: (zone or None, host or None, node or None)
    :raises: Invalid for more colons than that.
    """
    if not value:
        return None, None, None
    host = node = None
    zone = value
    colons = value.count(':')
    if colons == 1:
        zone, host = value.split(':')
    elif colons == 2:
        if '::' in value:
            zone, node = value.split('::')
        else:
            zone, host, node = value.split(':')
    elif colons > 2:
        raise exception.Invalid(
            reason='Unable to parse availability_zone')
    return zone or None, host or None, node or None


def usage_for(flavor, volume_backed):
    """What a server of ``flavor`` holds on its host (Nova's
    resources_from_flavor: no local root disk when booted from a volume).
    """
    swap_gb = -(-int(flavor.get('swap') or 0) // 1024)
    disk = (0 if volume_backed else int(flavor.get('root_gb') or 0))
    return {'memory_mb': int(flavor['memory_mb']),
            'vcpus': int(flavor.get('vcpus') or 0),
            'disk_gb': disk + int(flavor.get('ephemeral_gb') or 0) + swap_gb}


def _capacity(node, total, reserved, ratio):
    return (node[total] - node[reserved]) * node[ratio]


def free_resources(node):
    """What a node can still take (after ratios and reservations)."""
    return {
        'memory_mb': _capacity(node, 'memory_mb', 'memory_mb_reserved',
                               'ram_allocation_ratio')
        - node['memory_mb_used'],
        'disk_gb': _capacity(node, 'local_gb', 'local_gb_reserved',
                             'disk_allocation_ratio')
        - node['local_gb_used'],
        'vcpus': _capacity(node, 'vcpus', 'vcpus_reserved',
                           'cpu_allocation_ratio')
        - node['vcpus_used'],
    }


# Filters: each returns None when the host passes, else why not.

def compute_filter(conf, node, usage, now):
    if node['disabled']:
        return 'disabled%s' % (': %s' % node['disabled_reason']
                               if node.get('disabled_reason') else '')
    if not service_is_up(node, conf.service_down_time, now):
        return 'down (no heartbeat for more than %d s)' % (
            conf.service_down_time)
    return None


def _resource_filter(key, unit):
    def check(conf, node, usage, now):
        wanted = usage.get(key) or 0
        free = free_resources(node)[key]
        if wanted and wanted > free:
            return 'not enough %s (%s %s free, %s wanted)' % (
                key.split('_')[0], int(free), unit, wanted)
        return None
    check.__name__ = '%s_filter' % key
    return check


ram_filter = _resource_filter('memory_mb', 'MiB')
disk_filter = _resource_filter('disk_gb', 'GiB')
core_filter = _resource_filter('vcpus', 'vCPUs')

FILTERS = (compute_filter, ram_filter, disk_filter, core_filter)


def ram_weight(conf, node):
    """Nova's RAMWeigher: free RAM times the multiplier (positive spreads,
    negative packs)."""
    return conf.filter_scheduler.ram_weight_multiplier * \
        free_resources(node)['memory_mb']


def filter_hosts(conf, nodes, usage, now=None):
    """(hosts that pass every filter, {host: why not} for the others)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    passed, rejected = [], {}
    for node in nodes:
        for check in FILTERS:
            reason = check(conf, node, usage, now)
            if reason is not None:
                rejected[node['host']] = reason
                break
        else:
            passed.append(node)
    return passed, rejected


def order_hosts(conf, nodes, rng=random):
    """Best first; the first place goes to a random one of the best
    ``host_subset_size`` (Nova's host_subset_size), the rest stay in
    weight order as fallbacks for a lost claim."""
    ordered = sorted(nodes, key=lambda n: (-ram_weight(conf, n), n['host']))
    subset = min(conf.filter_scheduler.host_subset_size, len(ordered))
    if subset > 1:
        first = ordered.pop(rng.randrange(subset))
        ordered.insert(0, first)
    return ordered


def _forced_candidates(nodes, host, node_name, down_time):
    matched = [n for n in nodes
               if (host is None or n['host'] == host) and
               (node_name is None or
                (n.get('hypervisor_hostname') or n['host']) == node_name)]
    if not matched:
        raise exception.NoValidHost(
            reason='No compute host matches the requested %s.' % ', '.join(
                part for part in (
                    host and 'host %s' % host,
                    node_name and 'node %s' % node_name) if part))
    enabled = [n for n in matched if not n['disabled']]
    if not enabled:
        raise exception.NoValidHost(
            reason='The requested host is disabled.')
    now = datetime.datetime.now(datetime.timezone.utc)
    live = [n for n in enabled if service_is_up(n, down_time, now)]
    if not live:
        raise exception.NoValidHost(
            reason='The requested host is down (no heartbeat in the last '
                   '%d seconds).' % down_time)
    return live


def _schedule(conf, db, usage, claim, force_host=None, force_node=None):
    """Claim ``usage`` on the first host that takes it, in the filters'
    and weighers' order (or on the forced host): ``claim(host)`` is the
    claim's compare-and-swap, returning the instance or None when it lost
    (no room left, or the host was disabled meanwhile).

    :raises: NoValidHost (``reason`` says what each host lacked).
    """
    nodes = db.compute_node_get_all(TOPIC)
    if force_host or force_node:
        candidates = _forced_candidates(nodes, force_host, force_node,
                                        conf.service_down_time)
        rejected = {}
    else:
        candidates, rejected = filter_hosts(conf, nodes, usage)
        candidates = order_hosts(conf, candidates)
    for node in candidates:
        instance = claim(node['host'])
        if instance is not None:
            LOG.info('Scheduled instance %s to %s', instance['uuid'],
                     node['host'])
            return instance
        # Lost to a concurrent claim (or disabled meanwhile): next host.
        rejected[node['host']] = 'claim refused (no room left, or disabled)'
    if not nodes:
        why = 'No compute service has reported its capacity.'
    else:
        why = '; '.join('%s: %s' % item for item in sorted(rejected.items()))
    raise exception.NoValidHost(reason=why)


def schedule_and_create(conf, db, values, usage, force_host=None,
                        force_node=None):
    """Pick a host and create the instance there with its claim.

    :param values: the instance row (without ``host``).
    :param usage: from :func:`usage_for`.
    :returns: the instance dict (``host`` set, ``claimed_*`` filled).
    :raises: NoValidHost (``reason`` says what each host lacked).
    """
    return _schedule(
        conf, db, usage,
        lambda host: db.instance_create_claimed(values, host, usage, TOPIC),
        force_host, force_node)


def schedule_existing(conf, db, instance_uuid, usage, expected_task_state,
                      force_host=None, values=None):
    """Pick a host for a live instance without one (unshelving a
    shelved-offloaded server) and claim ``usage`` there, as
    :func:`schedule_and_create` does for a new one.

    :param values: further instance columns written with ``host``.
    :returns: the updated instance dict (``host`` set, ``claimed_*``).
    :raises: NoValidHost; UnexpectedTaskStateError when the instance is
        no longer in ``expected_task_state`` without a host.
    """
    return _schedule(
        conf, db, usage,
        lambda host: db.instance_claim_existing(
            instance_uuid, host, usage, TOPIC, expected_task_state,
            values=values),
        force_host)
