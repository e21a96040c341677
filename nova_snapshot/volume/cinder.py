"""Cinder v3 through python-cinderclient, for the API and compute sides.

Volumes, snapshots and attachments go out as plain dicts with Nova's
aliases added (``display_name``, ``volume_size``, ``attach_status``, a
boolean ``bootable``), and every cinderclient and keystoneauth exception is
translated here, so no caller ever imports cinderclient.

Identity (``[cinder] auth_mode``): with Keystone (the default) the caller's
token, the service token and the endpoint come from
:mod:`nova_snapshot.service_auth` (keystoneauth's ``[cinder]`` options), so
Cinder checks the caller's project: another project's volume is a 404. A
context without a token (start-up clean-up) acts as this service's own
identity, an admin: its listings then span every project.

For development without Keystone (``noauth``) the request goes to a Cinder
with ``auth_strategy = noauth`` as ``user:project`` of the context, and
Cinder builds an admin context for that project (so reads by id cross
projects). The project id must be hex (Cinder's ``project_id_regex``), else
every URL is a 404. Such requests also say ``X-Service-Roles: service``,
which is what Nova's service token amounts to: without it Cinder asks Nova
whether a server still uses an attachment before deleting it, and with no
Nova in its catalog answers 500.
"""

import re
import time

from cinderclient import client as cinder_client
from cinderclient import exceptions as cinder_exc
from keystoneauth1 import exceptions as ksa_exc
from keystoneauth1 import plugin as ksa_plugin
from oslo_log import log as logging
from oslo_utils import strutils

from nova_snapshot import exception
from nova_snapshot import service_auth

LOG = logging.getLogger(__name__)

# Cinder's default project_id_regex.
_HEX_PROJECT = re.compile(r'^[0-9a-f\-]+$')
# The volume API version of the os-reimage action.
REIMAGE_MICROVERSION = '3.68'
# Statuses a wait gives up on unless the caller asked for them.
_ERROR_STATUSES = frozenset(['error', 'error_deleting', 'error_restoring',
                             'error_extending', 'error_managing'])


class _NoAuthPlugin(ksa_plugin.BaseAuthPlugin):
    """keystoneauth plugin for a Cinder with ``auth_strategy = noauth``.

    The project is part of the endpoint URL (Cinder checks that it matches
    the token's project).
    """

    def __init__(self, endpoint, user_id, project_id, roles=()):
        super().__init__()
        self._endpoint = endpoint
        self._user_id = user_id
        self._project_id = project_id
        self._roles = ','.join(roles or ())

    def get_headers(self, session, **kwargs):
        headers = {'X-Auth-Token': '%s:%s' % (self._user_id,
                                              self._project_id),
                   'X-User-Id': self._user_id,
                   'X-Project-Id': self._project_id,
                   'X-Service-Roles': 'service'}
        if self._roles:
            headers['X-Roles'] = self._roles
        return headers

    def get_endpoint(self, session, **kwargs):
        return '%s/%s' % (self._endpoint, self._project_id)

    def get_user_id(self, session, **kwargs):
        return self._user_id

    def get_project_id(self, session, **kwargs):
        return self._project_id

    def invalidate(self):
        return False


def _reason(exc):
    message = getattr(exc, 'message', None) or str(exc)
    code = getattr(exc, 'code', None)
    return '%s (HTTP %s)' % (message, code) if code else str(message)


def translate_error(exc, volume_id=None, snapshot_id=None,
                    attachment_id=None):
    """Return our exception for a cinderclient/keystoneauth error."""
    if isinstance(exc, cinder_exc.NotFound):
        if snapshot_id is not None:
            return exception.SnapshotNotFound(snapshot_id=snapshot_id)
        if attachment_id is not None:
            return exception.VolumeAttachmentNotFound(
                'Volume attachment %s could not be found.' % attachment_id,
                volume_id=volume_id, instance_uuid=None)
        return exception.VolumeNotFound(volume_id=volume_id)
    if isinstance(exc, cinder_exc.OverLimit):
        return exception.OverQuota(overs='volumes (%s)' % _reason(exc))
    if isinstance(exc, cinder_exc.BadRequest):
        return exception.InvalidVolume(reason=_reason(exc))
    if isinstance(exc, (ksa_exc.ConnectionError, cinder_exc.ConnectionError)):
        # Refused, or silent past [cinder] timeout (keystoneauth's
        # ConnectTimeout covers the read timeout too): a 503 at the API.
        return exception.CinderConnectionFailed(
            reason='Cinder is unreachable: %s' % exc)
    return exception.VolumeError(reason=_reason(exc))


def _bool(value):
    if isinstance(value, bool):
        return value
    return strutils.bool_from_string(value)


def volume_dict(volume):
    """A plain dict of a cinderclient volume, with Nova's aliases."""
    out = volume.to_dict() if hasattr(volume, 'to_dict') else dict(volume)
    out.setdefault('display_name', out.get('name'))
    out.setdefault('display_description', out.get('description'))
    out['attach_status'] = 'attached' if out.get('attachments') else 'detached'
    if 'bootable' in out:
        out['bootable'] = _bool(out['bootable'])
    if 'multiattach' in out:
        out['multiattach'] = _bool(out['multiattach'])
    return out


def snapshot_dict(snapshot):
    """A plain dict of a cinderclient snapshot, with Nova's aliases."""
    out = (snapshot.to_dict() if hasattr(snapshot, 'to_dict')
           else dict(snapshot))
    out.setdefault('volume_size', out.get('size'))
    out.setdefault('display_name', out.get('name'))
    out.setdefault('display_description', out.get('description'))
    return out


def translate_connection_info(connection_info):
    """Nova's shape of an attachment's connection info.

    The attachments API returns it flat (``driver_volume_type`` beside
    ``name``, ``hosts``...); Nova, and this project's virt drivers, use
    ``{'driver_volume_type': ..., 'data': {...}}``. Empty stays ``{}``
    (an attachment without a connector has no connection yet).
    """
    if not connection_info:
        return {}
    info = dict(connection_info)
    if isinstance(info.get('data'), dict):
        return info
    driver_type = info.pop('driver_volume_type', None)
    return {'driver_volume_type': driver_type, 'data': info}


def attachment_dict(attachment):
    if hasattr(attachment, 'to_dict'):
        attachment = attachment.to_dict()
    out = dict(attachment)
    out['connection_info'] = translate_connection_info(
        out.get('connection_info'))
    return out


class CinderAPI(object):
    """Volumes, snapshots and attachments in Cinder v3, per request context.

    Waits poll every ``[cinder] poll_interval`` seconds; their timeouts are
    given by the caller or, when None, scaled by size
    (:meth:`volume_wait_timeout`).
    """

    def __init__(self, conf):
        opts = conf.cinder
        self.auth_mode = ('keystone' if opts.auth_mode == 'token'
                          else opts.auth_mode)
        # The deprecated api_endpoint has no project id (appended per
        # call); endpoint_override may name it as %(project_id)s.
        self.endpoint = (opts.api_endpoint.rstrip('/')
                         if opts.api_endpoint else None)
        self.endpoint_override = opts.endpoint_override
        self.keystone = service_auth.ServiceClientAuth(conf, 'cinder')
        if self.auth_mode == 'noauth':
            LOG.warning('[cinder] auth_mode = noauth: Cinder is told who is '
                        'calling without Keystone and treats every caller '
                        'as an admin of its project. For development only.')
            if not self.endpoint:
                raise exception.NovaSnapshotException(
                    '[cinder] auth_mode = noauth needs api_endpoint (there '
                    'is no catalog without Keystone)')
        self.microversion = opts.api_microversion
        self.timeout_per_gib = opts.volume_wait_timeout_per_gib
        self.min_wait_timeout = opts.min_wait_timeout
        self.poll_interval = opts.poll_interval
        # One session (one connection pool, timeout, TLS) for every caller;
        # identity is per request, on the client made in _client().
        self._session = self.keystone.session
        # Seams for the unit tests' clocks.
        self._sleep = time.sleep
        self._monotonic = time.monotonic

    # -- plumbing -------------------------------------------------------------

    def _keystone_auth(self, context):
        """(auth plugin, endpoint URL) of a Keystone-mode call."""
        try:
            auth = self.keystone.auth_for(context)
        except service_auth.NoCredentials as exc:
            raise exception.VolumeError(reason=exc.format_message())
        if self.endpoint_override or not self.endpoint:
            return auth, self.keystone.endpoint(auth)
        project = (context.project_id
                   if not self.keystone.acts_as_service(context)
                   else auth.get_project_id(self._session))
        return auth, '%s/%s' % (self.endpoint, project)

    def _auth(self, context):
        project = context.project_id
        if not project or not _HEX_PROJECT.match(project):
            raise exception.VolumeError(
                reason='Cinder without Keystone needs a hex project id in '
                       'the request context, got %r' % (project,))
        return _NoAuthPlugin(self.endpoint, context.user_id or 'nova-snapshot',
                             project, roles=context.roles)

    def _client(self, context, microversion=None):
        kwargs = {}
        if self.auth_mode == 'noauth':
            auth = self._auth(context)
        else:
            auth, kwargs['os_endpoint'] = self._keystone_auth(context)
        return cinder_client.Client(
            microversion or self.microversion, session=self._session,
            auth=auth,
            global_request_id=getattr(context, 'global_id', None), **kwargs)

    def _call(self, context, func, microversion=None, **ids):
        """Run ``func(client)``; translate what goes wrong."""
        try:
            return func(self._client(context, microversion))
        except (cinder_exc.ClientException, cinder_exc.ConnectionError,
                ksa_exc.ClientException) as exc:
            raise translate_error(exc, **ids)

    def volume_wait_timeout(self, size_gib):
        """Seconds a volume of ``size_gib`` may take to become ready."""
        return max(self.min_wait_timeout,
                   self.timeout_per_gib * float(size_gib or 1))

    def _wait(self, what, get, item_id, timeout, statuses):
        """Poll ``get()`` until its status is in ``statuses``.

        An error status ends the wait with VolumeError unless the caller
        listed it in ``statuses``; so does the timeout.
        """
        statuses = tuple(statuses)
        deadline = self._monotonic() + timeout
        while True:
            item = get()
            status = item.get('status')
            if status in statuses:
                return item
            if status in _ERROR_STATUSES:
                raise exception.VolumeError(
                    reason='%s %s went to status %s' % (what, item_id, status))
            if self._monotonic() >= deadline:
                raise exception.VolumeError(
                    reason='%s %s still %s after %.1f s (waiting for %s)' % (
                        what, item_id, status, timeout, '/'.join(statuses)))
            self._sleep(self.poll_interval)

    def _wait_gone(self, what, get, not_found, item_id, timeout):
        """Poll ``get()`` until it raises ``not_found``; an error status or
        the timeout (default ``min_wait_timeout``) ends it with VolumeError.
        """
        def gone_or_status():
            try:
                return get()
            except not_found:
                return {'status': '_gone'}
        self._wait(what, gone_or_status, item_id,
                   timeout if timeout is not None else self.min_wait_timeout,
                   ('_gone',))

    # -- volumes --------------------------------------------------------------

    def get(self, context, volume_id):
        volume = self._call(context, lambda c: c.volumes.get(volume_id),
                            volume_id=volume_id)
        return volume_dict(volume)

    def create(self, context, size, name, snapshot_id=None, image_id=None,
               volume_type=None, description=None, availability_zone=None,
               metadata=None):
        """Ask for a volume; returns at once (status ``creating``)."""
        kwargs = {'name': name, 'description': description,
                  'snapshot_id': snapshot_id, 'imageRef': image_id,
                  'volume_type': volume_type,
                  'availability_zone': availability_zone,
                  'metadata': metadata}
        ids = {}
        if snapshot_id is not None:
            # A 404 here is about the snapshot, not the volume to be.
            ids['snapshot_id'] = snapshot_id
        volume = self._call(context,
                            lambda c: c.volumes.create(int(size), **kwargs),
                            **ids)
        return volume_dict(volume)

    def delete(self, context, volume_id, cascade=False):
        """Ask for the volume's deletion (``cascade`` also deletes its
        snapshots); returns at once."""
        self._call(context,
                   lambda c: c.volumes.delete(volume_id, cascade=cascade),
                   volume_id=volume_id)

    def wait_for_volume(self, context, volume_id, timeout=None,
                        statuses=('available',)):
        """Return the volume once its status is one of ``statuses``.

        ``timeout`` None scales with the volume's size.
        """
        if timeout is None:
            timeout = self.volume_wait_timeout(
                self.get(context, volume_id).get('size'))
        return self._wait('volume', lambda: self.get(context, volume_id),
                          volume_id, timeout, statuses)

    def wait_for_volume_deleted(self, context, volume_id, timeout=None):
        """Return once the volume is gone (VolumeError on error/timeout)."""
        self._wait_gone('volume', lambda: self.get(context, volume_id),
                        exception.VolumeNotFound, volume_id, timeout)

    def reimage(self, context, volume_id, image_id, reimage_reserved=False):
        """Ask Cinder to write ``image_id`` over the volume (the
        ``os-reimage`` action, volume API 3.68); returns at once, the volume
        in ``downloading``. Cinder accepts a volume that is ``available`` or
        ``error``, and ``reserved`` (an attachment without a connection)
        only with ``reimage_reserved``; when done the volume is back in its
        previous status, on failure in ``error``. A refusal (another status,
        an image larger than the volume) is InvalidVolume."""
        self._call(context,
                   lambda c: c.volumes.reimage(volume_id, image_id,
                                               reimage_reserved),
                   microversion=REIMAGE_MICROVERSION, volume_id=volume_id)

    # -- attachments ----------------------------------------------------------

    def attachment_create(self, context, volume_id, instance_uuid,
                          connector=None, mountpoint=None):
        """Reserve the volume for the instance (no connector yet), or
        attach it at once with one. Returns ``{'id', 'connection_info',
        'status', ...}``."""
        if connector is not None and mountpoint:
            connector = dict(connector, mountpoint=mountpoint)
        attachment = self._call(
            context,
            lambda c: c.attachments.create(volume_id, connector,
                                           instance_uuid),
            volume_id=volume_id)
        return attachment_dict(attachment)

    def attachment_update(self, context, attachment_id, connector,
                          mountpoint=None):
        """Give the attachment this host's connector; returns the
        connection info (Nova's shape)."""
        connector = dict(connector)
        if mountpoint:
            connector['mountpoint'] = mountpoint
        attachment = self._call(
            context, lambda c: c.attachments.update(attachment_id, connector),
            attachment_id=attachment_id)
        return attachment_dict(attachment)['connection_info']

    def attachment_complete(self, context, attachment_id):
        """Mark the attachment attached (the volume becomes ``in-use``)."""
        self._call(context, lambda c: c.attachments.complete(attachment_id),
                   attachment_id=attachment_id)

    def attachment_delete(self, context, attachment_id):
        self._call(context, lambda c: c.attachments.delete(attachment_id),
                   attachment_id=attachment_id)

    # -- snapshots ------------------------------------------------------------

    def create_snapshot_force(self, context, volume_id, name,
                              description=None, metadata=None):
        """Snapshot the volume even when it is in use; returns at once.

        ``force=True`` is required below microversion 3.66 for in-use
        volumes and silently accepted from 3.66 on.
        """
        snapshot = self._call(
            context,
            lambda c: c.volume_snapshots.create(volume_id, force=True,
                                                name=name,
                                                description=description,
                                                metadata=metadata),
            volume_id=volume_id)
        return snapshot_dict(snapshot)

    def list_snapshots(self, context, volume_id=None, metadata=None):
        """Snapshots visible to the context's project, of one volume and/or
        carrying every ``metadata`` key/value (Cinder filters both; metadata
        from microversion 3.22)."""
        search_opts = {}
        if (self.auth_mode != 'noauth' and
                self.keystone.acts_as_service(context)):
            # The service's identity is not in the request's project; the
            # metadata filter (instance and request) already narrows it.
            search_opts['all_tenants'] = 1
        if volume_id is not None:
            search_opts['volume_id'] = volume_id
        if metadata:
            search_opts['metadata'] = dict(metadata)
        snapshots = self._call(
            context,
            lambda c: c.volume_snapshots.list(search_opts=search_opts),
            volume_id=volume_id)
        return [snapshot_dict(snapshot) for snapshot in snapshots]

    def get_snapshot(self, context, snapshot_id):
        snapshot = self._call(
            context, lambda c: c.volume_snapshots.get(snapshot_id),
            snapshot_id=snapshot_id)
        return snapshot_dict(snapshot)

    def delete_snapshot(self, context, snapshot_id):
        self._call(context,
                   lambda c: c.volume_snapshots.delete(snapshot_id),
                   snapshot_id=snapshot_id)

    def reset_snapshot_status(self, context, snapshot_id, status='error'):
        """Admin only: set a snapshot's status (one stuck in 'creating',
        whose create request died before cinder-volume saw it, can only be
        deleted after this)."""
        self._call(context,
                   lambda c: c.volume_snapshots.reset_state(snapshot_id,
                                                            status),
                   snapshot_id=snapshot_id)

    def wait_for_snapshot(self, context, snapshot_id, timeout=None,
                          statuses=('available',)):
        """Return the snapshot once its status is one of ``statuses``.

        Pass ``('available', 'error')`` to learn when it has left
        ``creating`` without an exception for ``error``. ``timeout`` None
        scales with the snapshot's size.
        """
        if timeout is None:
            timeout = self.volume_wait_timeout(
                self.get_snapshot(context, snapshot_id).get('size'))
        return self._wait('snapshot',
                          lambda: self.get_snapshot(context, snapshot_id),
                          snapshot_id, timeout, statuses)

    def wait_for_snapshot_deleted(self, context, snapshot_id, timeout=None):
        """Return once the snapshot is gone (VolumeError on error/timeout)."""
        self._wait_gone('snapshot',
                        lambda: self.get_snapshot(context, snapshot_id),
                        exception.SnapshotNotFound, snapshot_id, timeout)

    # -- limits ---------------------------------------------------------------

    def get_absolute_limits(self, context):
        """Cinder's ``absolute`` limits for the context's project, e.g.
        ``maxTotalSnapshots`` (-1 = unlimited) and ``totalSnapshotsUsed``."""
        limits = self._call(context, lambda c: c.limits.get())
        return {limit.name: limit.value for limit in limits.absolute}
