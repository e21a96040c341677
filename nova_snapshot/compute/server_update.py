"""Server update (Nova's ``PUT /servers/{server_id}``): the fields a user
may change on a server without an action.

What it writes, in one compare-and-swap on the instance row
(``Database.instance_update_checked``), so a refused request changes
nothing and a concurrent action is never overwritten by a stale read:

* columns: ``name``, ``description`` (2.19; None removes it),
  ``access_ip_v4``/``access_ip_v6`` and ``auto_disk_config``;
* system metadata: the ``hostname`` (2.90; 2.94 an FQDN), and 2.104's
  pinned availability zone (Nova keeps it in the request spec; here it is
  the ``pinned_availability_zone`` key create writes).

As in Nova, an update takes no task state and checks neither the server's
state nor its lock (``ComputeAPI.update_instance`` has no
``check_instance_lock``): a locked or busy server can still be renamed.
A rename keeps the hostname the server had: one derived from the old name
is written down first (Nova sets the hostname once, at create).

Pinning (2.104), Nova's rules: null unpins (a no-op when not pinned); a
zone pins an unpinned server, but only to the zone it is in (409
otherwise); a pinned server may be "pinned" again to the same zone (a
no-op) but not to another one without unpinning first (409).
"""

import re

from nova_snapshot import exception

# The default argument of ``request``: leave the pin as it is.
UNSET = object()


class PinnedZoneChangeRefused(exception.Conflict):
    msg_fmt = ('Cannot change pinned availability zone directly. Unpin '
               'first by setting pinned_availability_zone to null.')


class PinnedZoneNotCurrent(exception.Conflict):
    msg_fmt = ("Server can only be pinned to its current availability zone "
               "'%(current_az)s', but '%(requested_az)s' was requested.")


def default_hostname(name, uuid):
    """Nova's hostname for a server created without one: its name made a
    valid hostname (lower case, [a-z0-9-], at most 63 characters), or
    ``server-<uuid>`` when nothing of the name is left."""
    hostname = re.sub(r'[^a-z0-9-]+', '-', (name or '').lower())
    hostname = hostname.strip('-.')[:63].strip('-')
    return hostname or 'server-%s' % uuid


def request(api, instance, values, hostname=None, pinned_az=UNSET):
    """Apply an update (``api``: the ComputeAPI) and return the instance.

    :param values: instance columns to set (``name``, ``description``,
        ``access_ip_v4``, ``access_ip_v6``, ``auto_disk_config``).
    :param hostname: the new hostname, or None to keep it.
    :param pinned_az: a zone to pin the server to, None to unpin, or
        UNSET to leave the pin alone.
    :raises: InstanceNotFound (deleted meanwhile), PinnedZoneChangeRefused
        and PinnedZoneNotCurrent (409; nothing written).
    """
    from nova_snapshot.compute import api as compute_api
    zone = api.conf.default_availability_zone
    seen = {}

    def check(current):
        seen['name'] = current.get('name')
        if pinned_az is UNSET or pinned_az is None:
            return
        pinned = current['system_metadata'].get(compute_api.PINNED_AZ_KEY)
        if pinned is not None and pinned != pinned_az:
            raise PinnedZoneChangeRefused()
        if pinned is None and pinned_az != zone:
            # Every host here is in the one zone.
            raise PinnedZoneNotCurrent(current_az=zone,
                                       requested_az=pinned_az)

    system_metadata = {}
    if hostname is not None:
        system_metadata[compute_api.HOSTNAME_KEY] = hostname
    elif 'name' in values:
        system_metadata[compute_api.HOSTNAME_KEY] = (
            lambda kept: kept or default_hostname(seen['name'],
                                                  instance['uuid']))
    if pinned_az is not UNSET:
        system_metadata[compute_api.PINNED_AZ_KEY] = pinned_az
    if not values and not system_metadata:
        return instance  # nothing to change (Nova saves nothing either)
    return api.db.instance_update_checked(
        instance['uuid'], values, check=check,
        system_metadata=system_metadata)
