"""Several servers from one create request (Nova's os-multiple-create).

``min_count``/``max_count`` on ``POST /servers``. Nova's rules, and what
stands in here for what this service does not have:

* Counts: ``min_count`` defaults to 1 and ``max_count`` to ``min_count``
  (the API refuses ``min_count > max_count``). Nova lowers ``max_count``
  to what the project's instances quota allows and refuses (403
  TooManyInstances) a ``min_count`` above that; there is no instances
  quota here, so the per-request bound ``[api] max_servers_per_request``
  plays that part (:func:`counts`).
* Names: with more than one server each gets ``-<n>`` after the
  requested name, n from 1 (Nova's ``_populate_instance_names``; the old
  ``[DEFAULT] multi_instance_display_name_template`` default
  ``%(name)s-%(count)d`` gave the same and is gone from Nova). One server
  keeps the name as asked. The default hostname is made from that name.
* Every server of the request shares one ``reservation_id`` (Nova's
  ``r-`` and 8 characters of [0-9a-z]) and has its 0-based
  ``launch_index``.
* Placement: each server is claimed on a host as a single one is (one
  compare-and-swap per claim, so concurrent requests never overcommit).
  Capacity plays the quota's part here: the request keeps as many servers
  as the hosts take, up to ``max_count``. When fewer than ``min_count``
  fit, the answer is Nova's for a request its scheduler cannot place in
  full: every server of the request (``max_count`` of them) is created in
  ERROR with the fault "No valid host was found. There are not enough
  hosts available.", and no host holds anything for them.
* Racing requests: placement is one claim at a time, so several requests
  of ``min_count`` > 1 racing for the last room can each hold part of
  what they need, all fall short and all give it back, and none is
  placed although the room fits one of them (Nova's scheduler has the
  same window). A request that falls short therefore gives its claims
  back, waits a random moment (which breaks the tie) and tries again,
  :data:`PLACEMENT_ATTEMPTS` times in all, before its servers go to
  ERROR.
* Volumes: Nova refuses more than one server when any block device
  mapping (the request's or the image's) names an existing volume
  (``source_type`` volume): one volume cannot be every server's disk
  (400 "Cannot attach one or more volumes to multiple instances").
  Images, snapshots and blank volumes are fine: each server gets its own.
* All or nothing before the builds are sent: a failure while the servers
  are stored (the database, a bug) removes every row the request made and
  gives every claim back (``Database.instance_discard``) before the error
  goes out. Builds are cast only once every server is stored; a cast that
  fails fails that server and the ones not yet sent as a single create's
  does (ERROR, fault, claim released), and deletes the ones already sent,
  so no server of a failed request is left building.
"""

import logging
import random
import secrets
import string
import time
import uuid as uuidlib

from oslo_utils import excutils

from nova_snapshot.compute import vm_states
from nova_snapshot import exception

LOG = logging.getLogger(__name__)

VOLUMES_NOT_SHARED = ('Cannot attach one or more volumes to multiple '
                      'instances')
_RESERVATION_CHARACTERS = string.digits + string.ascii_lowercase

#: Placements of a request of ``min_count`` > 1 before it is failed, and
#: the upper bound of the random wait (seconds) before each retry, times
#: the attempt number. At most about 0.75 s added to a failing request.
PLACEMENT_ATTEMPTS = 3
RETRY_JITTER = 0.25


def reservation_id():
    """Nova's ``utils.generate_uid('r')``: ``r-`` and 8 characters."""
    return 'r-' + ''.join(secrets.choice(_RESERVATION_CHARACTERS)
                          for _ in range(8))


def counts(min_count, max_count, limit):
    """(min_count, max_count) after Nova's defaults and the per-request
    bound ``limit``.

    :raises: Invalid when min_count > max_count; TooManyInstances when
        min_count is above ``limit``.
    """
    min_count = int(min_count or 1)
    max_count = int(max_count or min_count)
    if min_count > max_count:
        raise exception.Invalid('min_count must be <= max_count')
    if max_count > limit:
        if min_count > limit:
            requested = (str(min_count) if min_count == max_count
                         else '%d-%d' % (min_count, max_count))
            raise exception.TooManyInstances(req=requested, allowed=limit)
        LOG.info('max_count lowered from %d to %d ([api] '
                 'max_servers_per_request)', max_count, limit)
        max_count = limit
    return min_count, max_count


def check_volumes(bdms, min_count, max_count):
    """Nova's refusal of one existing volume for several servers."""
    if min_count > 1 or max_count > 1:
        if any(bdm.get('source_type') == 'volume' for bdm in bdms):
            raise exception.Invalid(VOLUMES_NOT_SHARED)


def display_name(name, index, count):
    """The name of server ``index`` (0-based) of ``count``."""
    return '%s-%d' % (name, index + 1) if count > 1 else name


def _values(values, index, count, reservation):
    return dict(values, uuid=str(uuidlib.uuid4()),
                name=display_name(values['name'], index, count),
                reservation_id=reservation, launch_index=index)


def create(api, context, values, bdms, usage, min_count, max_count,
           forced_host=None, forced_node=None):
    """Store the request's servers, each with its claim, BDMs and create
    action; returns them (at least ``min_count`` placed, or ``max_count``
    in ERROR). Nothing is cast.

    :param api: the ComputeAPI (``_place``, ``_store_unplaced``,
        ``_record_create``).
    :param values: the instance row of one server (``name`` as asked).
    """
    reservation = reservation_id()
    made = []
    try:
        attempts = PLACEMENT_ATTEMPTS if min_count > 1 else 1
        for attempt in range(1, attempts + 1):
            reason = _place_all(api, made, values, usage, max_count,
                                reservation, forced_host, forced_node)
            if len(made) >= min_count:
                break
            # Short of min_count: nothing of this try is kept.
            _discard(api.db, made)
            made = []
            if attempt < attempts:
                _pause_before_retry(attempt)
        for instance in made:
            api._record_create(context, instance, bdms)
        if not made:
            # Nova: the request cannot be placed in full; every server of
            # it goes to ERROR and no host keeps a claim.
            for index in range(max_count):
                instance = api._store_unplaced(
                    _values(values, index, max_count, reservation))
                made.append(instance)
                api._record_create(context, instance, bdms,
                                   no_valid_host=reason)
        elif len(made) == 1 and max_count > 1:
            # One server: it keeps the name as asked (Nova names by the
            # number of servers made, not asked for).
            made[0] = api.db.instance_update(made[0]['uuid'],
                                             {'name': values['name']})
    except Exception:
        with excutils.save_and_reraise_exception():
            _discard(api.db, made)
    return made


def _pause_before_retry(attempt):
    time.sleep(random.uniform(0, RETRY_JITTER * attempt))


def _place_all(api, made, values, usage, max_count, reservation,
               forced_host, forced_node):
    """Place up to ``max_count`` servers one claim at a time, appending
    each placed row (nothing else of it stored) to ``made`` as it is
    placed, so that the caller can discard them whatever is raised;
    returns why a server found no host, None when all did."""
    for index in range(max_count):
        try:
            made.append(api._place(
                _values(values, index, max_count, reservation), usage,
                forced_host, forced_node))
        except exception.NoValidHost as exc:
            reason = exc.kwargs.get('reason') or ''
            LOG.warning('No valid host for server %d of %d of %s: %s',
                        index + 1, max_count, reservation, reason)
            return reason
    return None


def _discard(db, instances):
    for instance in instances:
        try:
            db.instance_discard(instance['uuid'])
        except Exception:
            # Left in ``scheduling`` without a build: the reconciler's
            # stale-scheduling repair fails it and releases its claim.
            LOG.warning('Could not remove server %s of a failed create',
                        instance['uuid'], exc_info=True)


def send_builds(api, context, instances, image_ref):
    """Cast every placed server's build; on a failed cast, fail the rest
    and delete the ones sent (see the module docstring)."""
    to_build = [instance for instance in instances
                if instance['host'] and
                instance['vm_state'] == vm_states.BUILDING]
    for position, instance in enumerate(to_build):
        try:
            api.rpcapi.build_instance(context, instance, image_ref)
        except Exception as exc:
            with excutils.save_and_reraise_exception():
                for unsent in to_build[position:]:
                    api._fail_unsent_build(unsent, exc)
                for sent in to_build[:position]:
                    _delete_quietly(api, context, sent)


def _delete_quietly(api, context, instance):
    try:
        api.delete(context, api.db.instance_get(instance['uuid']))
    except Exception:
        LOG.warning('Could not delete server %s of a failed create',
                    instance['uuid'], exc_info=True)
