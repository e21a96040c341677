"""Glance v2 through python-glanceclient, for the API and compute sides.

Images go in and out as flattened dicts (custom properties are top-level
keys, as Glance v2 itself returns them). Every glanceclient and keystoneauth
exception is translated here, so no caller ever imports glanceclient.

Identity (``[glance] auth_mode``): with Keystone (the default) the
caller's token, the service token and the endpoint come from
:mod:`nova_snapshot.service_auth` (keystoneauth's ``[glance]`` options:
catalog lookup, ``timeout``, TLS). For development without Keystone
(``identity_headers``) a Glance that trusts them gets the headers
keystonemiddleware would set; they travel as keystoneauth adapter headers
because glanceclient's own header handling URL-encodes values, and
``member,reader`` would arrive as a single unknown role
``member%2Creader``. Either way every call has the session's timeout.
"""

import io
import json
import os
import stat
import threading
import time

import glanceclient
from glanceclient import exc as glance_exc
from keystoneauth1 import exceptions as ksa_exc
from oslo_log import log as logging
import requests
import warlock

from nova_snapshot import exception
from nova_snapshot import service_auth

LOG = logging.getLogger(__name__)

# Top-level attributes of the Glance v2 image schema that a client may set.
# Anything else in an image dict is a custom property (string-valued).
_SETTABLE = frozenset([
    'id', 'name', 'visibility', 'protected', 'os_hidden', 'owner',
    'container_format', 'disk_format', 'min_ram', 'min_disk', 'tags',
])
# Attributes Glance computes; dropped from create/update requests.
_READ_ONLY = frozenset([
    'status', 'checksum', 'os_hash_algo', 'os_hash_value', 'size',
    'virtual_size', 'created_at', 'updated_at', 'deleted', 'deleted_at',
    'direct_url', 'locations', 'stores', 'self', 'file', 'schema',
])
# How long a Glance schema (image, member) is reused before it is fetched
# again (a Glance upgrade may change it).
SCHEMA_TTL = 600.0
_JSON_PATCH = 'application/openstack-images-v2.1-json-patch'
# Links, not image data: left out of the dicts we return.
_LINKS = ('self', 'file', 'schema')

# Connection problems: the request may be retried if no data went out.
_CONNECT_ERRORS = (glance_exc.CommunicationError, glance_exc.InvalidEndpoint,
                   ksa_exc.ConnectionError)
# ...but not these: Glance connected and then kept silent past [glance]
# timeout (glanceclient reports keystoneauth's ConnectTimeout, raised for
# connect and read timeouts alike, as InvalidEndpoint). The wait the
# operator allowed is spent; a retry would multiply it (4 x 60 s with the
# defaults) and could repeat a write Glance already did.
_NOT_RETRIED = (glance_exc.InvalidEndpoint, ksa_exc.ConnectTimeout)
# Failures while reading a download body that has started.
_STREAM_ERRORS = (requests.exceptions.RequestException,
                  ksa_exc.ConnectionError, OSError)


def identity_headers(context):
    """The headers keystonemiddleware would have set for ``context``."""
    headers = {'X-Identity-Status': 'Confirmed'}
    if context.project_id is not None:
        headers['X-Project-Id'] = context.project_id
    if context.user_id is not None:
        headers['X-User-Id'] = context.user_id
    headers['X-Roles'] = ','.join(context.roles or ())
    return headers


def translate_error(exc, image_id=None):
    """Return our exception for a glanceclient HTTP error."""
    code = getattr(exc, 'code', None)
    reason = str(getattr(exc, 'details', None) or exc)
    if code == 404:
        return exception.ImageNotFound(image_id=image_id)
    if code in (401, 403):
        return exception.ImageNotAuthorized(image_id=image_id)
    if code == 400:
        return exception.ImageBadRequest(image_id=image_id, reason=reason)
    if code == 413:
        return exception.OverQuota(overs='image (%s)' % reason)
    if code in (409, 415):
        # A state or format conflict Glance refused: the request was bad
        # for this image, not the service.
        return exception.ImageBadRequest(image_id=image_id, reason=reason)
    return exception.NovaSnapshotException(
        'Glance answered HTTP %s for image %s: %s' % (code, image_id, reason))


class _SchemaCache:
    """Glance's schemas, shared by the clients of one GlanceAPI.

    python-glanceclient fetches ``/v2/schemas/image`` once per client, and
    a client is per caller (its identity rides on it): without this every
    createImage cost Glance three schema reads on top of the work itself
    (doc/benchmarks.rst). Schemas are the same for every caller.
    """

    def __init__(self, ttl=SCHEMA_TTL):
        self.ttl = ttl
        self._schemas = {}
        self._lock = threading.Lock()

    def wrap(self, fetch):
        """A ``get(name)`` that answers from the cache, else ``fetch``."""
        def get(name):
            now = time.monotonic()
            with self._lock:
                hit = self._schemas.get(name)
            if hit is not None and now - hit[0] < self.ttl:
                return hit[1]
            schema = fetch(name)
            with self._lock:
                self._schemas[name] = (now, schema)
            return schema
        return get


def flatten(image):
    """A plain dict of a glanceclient image, without the schema links."""
    out = dict(image)
    for key in _LINKS:
        out.pop(key, None)
    return out


def _property_value(value):
    # Glance v2 custom properties are strings; Nova str()s scalars and
    # callers JSON-encode structures (block_device_mapping) themselves.
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    return str(value)


def to_glance(values):
    """Split a flat image dict into glanceclient kwargs and removals.

    Returns ``(kwargs, removed)``: read-only attributes are dropped, custom
    properties become strings, and custom properties set to None are
    listed in ``removed`` (Glance has no null property).
    """
    kwargs = {}
    removed = []
    for key, value in values.items():
        if key in _READ_ONLY:
            continue
        if key in _SETTABLE:
            if value is not None:
                if key in ('min_ram', 'min_disk'):
                    value = int(value)
                kwargs[key] = value
            continue
        if value is None:
            removed.append(key)
        else:
            kwargs[key] = _property_value(value)
    return kwargs, removed


class ChunkedReader(object):
    """File-like view of a file object or an iterator of bytes.

    glanceclient streams any object with ``read()`` as a chunked request
    (it rejects bare iterators), calling ``read()`` until it gets b''. Each
    call here returns one chunk of ``chunk_size`` bytes (the last may be
    shorter) whatever size is asked for, so memory stays at about one chunk.
    ``bytes_read`` tells the retry logic whether any data went out. A bytes
    object is accepted too (small payloads such as the empty upload).
    """

    def __init__(self, data, chunk_size):
        self.chunk_size = chunk_size
        self.bytes_read = 0
        if isinstance(data, (bytes, bytearray, memoryview)):
            data = io.BytesIO(data)
        if hasattr(data, 'read'):
            self._file = data
            self._iter = None
        else:
            self._file = None
            self._iter = iter(data)
        self._buffer = bytearray()
        self._done = False

    def _next_from_iter(self):
        while len(self._buffer) < self.chunk_size and not self._done:
            try:
                piece = next(self._iter)
            except StopIteration:
                self._done = True
                break
            self._buffer += piece
        chunk = bytes(self._buffer[:self.chunk_size])
        del self._buffer[:self.chunk_size]
        return chunk

    def read(self, size=-1):
        if self._file is not None:
            chunk = self._file.read(self.chunk_size)
        else:
            chunk = self._next_from_iter()
        self.bytes_read += len(chunk)
        return chunk


def _known_size(data):
    """Bytes left in ``data`` when it is a regular file, else None."""
    try:
        st = os.fstat(data.fileno())
        if stat.S_ISREG(st.st_mode):
            return st.st_size - data.tell()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass
    return None


class GlanceAPI(object):
    """Images in Glance v2, called with the caller's RequestContext."""

    # Seconds between connection retries grow by this step.
    retry_backoff = 0.5

    def __init__(self, conf):
        opts = conf.glance
        self.auth_mode = ('keystone' if opts.auth_mode == 'token'
                          else opts.auth_mode)
        # A fixed endpoint, else the catalog's (per call).
        fixed = opts.endpoint_override or opts.api_endpoint
        self.endpoint = fixed.rstrip('/') if fixed else None
        self.num_retries = conf.glance.num_retries
        self.chunk_size = conf.glance.upload_chunk_size
        self.keystone = service_auth.ServiceClientAuth(conf, 'glance')
        # One session (one connection pool, timeout, TLS) for every caller;
        # identity is per request and lives on the client made in _client().
        self._session = self.keystone.session
        # The last endpoint a call used: image links need one without a
        # context (it is the same catalog entry for everybody).
        self._seen_endpoint = self.endpoint
        self._schemas = _SchemaCache()
        if self.auth_mode == 'identity_headers':
            LOG.warning('[glance] auth_mode = identity_headers: Glance is '
                        'told who is calling by unauthenticated headers. For '
                        'development without Keystone only.')
            if self.endpoint is None:
                raise exception.NovaSnapshotException(
                    '[glance] auth_mode = identity_headers needs '
                    'endpoint_override (there is no catalog without '
                    'Keystone)')

    # -- plumbing -------------------------------------------------------------

    def _client(self, context):
        kwargs = {'session': self._session,
                  'global_request_id': getattr(context, 'global_id', None)}
        if self.auth_mode == 'identity_headers':
            kwargs['endpoint_override'] = self.endpoint
            kwargs['additional_headers'] = identity_headers(context)
        else:
            try:
                auth = self.keystone.auth_for(context)
                endpoint = self.endpoint or self.keystone.endpoint(auth)
            except ksa_exc.CatalogException as exc:
                raise exception.GlanceConnectionFailed(
                    reason='no image endpoint: %s' % exc)
            self._seen_endpoint = endpoint.rstrip('/')
            kwargs['auth'] = auth
            kwargs['endpoint_override'] = endpoint
        client = glanceclient.Client('2', **kwargs)
        # Every controller of the client reads schemas through this one.
        client.schemas.get = self._schemas.wrap(client.schemas.get)
        return client

    def _call(self, context, image_id, func, data_sent=None):
        """Run ``func(client)``, retrying connection failures.

        A retry happens only while ``data_sent()`` is false: re-sending a
        half-streamed upload would store a corrupt image.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                return func(self._client(context))
            except service_auth.NoCredentials as exc:
                LOG.error('%s', exc.format_message())
                raise exception.ImageNotAuthorized(image_id=image_id)
            except _CONNECT_ERRORS as exc:
                sent = data_sent is not None and data_sent()
                timed_out = isinstance(exc, _NOT_RETRIED)
                if attempt > self.num_retries or sent or timed_out:
                    raise exception.GlanceConnectionFailed(
                        reason='%s (attempt %d%s)' % (
                            exc, attempt,
                            ', data already sent' if sent else
                            ', timed out' if timed_out else ''))
                LOG.warning('Glance at %s unreachable (%s); retry %d of %d',
                            self._seen_endpoint, exc, attempt,
                            self.num_retries)
                time.sleep(self.retry_backoff * attempt)
            except glance_exc.HTTPException as exc:
                raise translate_error(exc, image_id)

    # -- metadata -------------------------------------------------------------

    def get(self, context, image_id):
        image = self._call(context, image_id,
                           lambda c: c.images.get(image_id))
        return flatten(image)

    def list(self, context, **filters):
        """Images the caller can see, e.g. ``list(ctx, name='x')``."""
        images = self._call(context, None,
                            lambda c: list(c.images.list(filters=filters)))
        return [flatten(image) for image in images]

    def create(self, context, image_meta):
        """Create a queued image; ``instance_owner`` becomes a member.

        When an admin snapshots another project's server the image is the
        admin's; like Nova, share it with the server's project.
        """
        kwargs, _removed = to_glance(image_meta)
        try:
            image = self._call(context, kwargs.get('id'),
                               lambda c: c.images.create(**kwargs))
        except TypeError as exc:
            # warlock rejected a value against Glance's schema.
            raise exception.ImageBadRequest(image_id=kwargs.get('id'),
                                            reason=str(exc))
        image = flatten(image)
        owner = image_meta.get('instance_owner')
        if owner and owner != context.project_id:
            if image.get('visibility') == 'shared':
                self._call(
                    context, image['id'],
                    lambda c: c.image_members.create(image['id'], owner))
            else:
                LOG.debug('Image %s is %s: not adding member %s',
                          image['id'], image.get('visibility'), owner)
        return image

    def update(self, context, image_id, values, remove_props=()):
        kwargs, removed = to_glance(values)
        kwargs.pop('id', None)
        remove = set(remove_props).union(removed).difference(kwargs)

        def patch(client):
            # What glanceclient's images.update() does, less its second
            # read: Glance answers the PATCH with the updated image.
            image = client.images.model(**client.images.get(image_id))
            for key, value in kwargs.items():
                try:
                    setattr(image, key, value)
                except warlock.InvalidOperation as exc:
                    raise TypeError(str(exc))
            for key in remove.intersection(image.keys()):
                delattr(image, key)
            _resp, body = client.http_client.patch(
                '/v2/images/%s' % image_id,
                headers={'Content-Type': _JSON_PATCH}, data=image.patch)
            return body

        try:
            image = self._call(context, image_id, patch)
        except TypeError as exc:
            raise exception.ImageBadRequest(image_id=image_id, reason=str(exc))
        return flatten(image)

    def delete(self, context, image_id):
        self._call(context, image_id, lambda c: c.images.delete(image_id))

    def generate_image_url(self, image_id):
        """The image's URL as Nova puts it in Location (no /v2): the fixed
        endpoint, else the catalog's as the last call found it, else as
        the service's own credentials find it."""
        endpoint = self._seen_endpoint
        if endpoint is None:
            endpoint = self.keystone.endpoint(
                self.keystone.auth_for(None)).rstrip('/')
            self._seen_endpoint = endpoint
        return '%s/images/%s' % (endpoint, image_id)

    # -- data -----------------------------------------------------------------

    def upload(self, context, image_id, data, size=None):
        """Stream ``data`` (file object or iterator of bytes) into the image.

        Sent in ``[glance] upload_chunk_size`` chunks; never held in memory.
        """
        if size is None:
            size = _known_size(data)
        reader = ChunkedReader(data, self.chunk_size)
        image_size = int(size) if size is not None else None
        try:
            self._call(context, image_id,
                       lambda c: c.images.upload(image_id, reader,
                                                 image_size=image_size),
                       data_sent=lambda: reader.bytes_read > 0)
        except exception.GlanceConnectionFailed:
            raise
        except (exception.ImageNotFound, exception.ImageNotAuthorized,
                exception.ImageBadRequest, exception.OverQuota):
            raise
        except exception.NovaSnapshotException as exc:
            raise exception.ImageUploadFailed(image_id=image_id,
                                              reason=exc.format_message())
        LOG.debug('Uploaded %d bytes to image %s', reader.bytes_read, image_id)
        return reader.bytes_read

    def download(self, context, image_id, dest_path):
        """Stream the image's data into ``dest_path``; return bytes written.

        glanceclient checks the data against the image's hash while it
        streams. A partial file is removed on failure.
        """
        body = self._call(context, image_id,
                          lambda c: c.images.data(image_id))
        if body is None or getattr(body, 'wrapped', body) is None:
            raise exception.ImageUnacceptable(image_id=image_id,
                                              reason='the image has no data')
        written = 0
        try:
            with open(dest_path, 'wb') as f:
                chunks = iter(body)
                while True:
                    try:
                        chunk = next(chunks)
                    except StopIteration:
                        break
                    except _STREAM_ERRORS as exc:
                        raise exception.GlanceConnectionFailed(
                            reason='download of image %s failed after %d '
                                   'bytes: %s' % (image_id, written, exc))
                    f.write(chunk)
                    written += len(chunk)
        except BaseException:
            try:
                os.unlink(dest_path)
            except OSError:
                pass
            raise
        return written

    def create_active_empty(self, context, image_meta):
        """Create an image and make it active with zero bytes of data.

        Nova's snapshot of a volume-backed server is such an image (its
        block_device_mapping property points at volume snapshots). raw/bare
        is the one format pair every Glance accepts with empty data.
        """
        meta = dict(image_meta)
        meta.setdefault('disk_format', 'raw')
        meta.setdefault('container_format', 'bare')
        image = self.create(context, meta)
        try:
            self.upload(context, image['id'], io.BytesIO(b''), size=0)
        except Exception:
            try:
                self.delete(context, image['id'])
            except exception.NovaSnapshotException:
                LOG.warning('Could not delete image %s after a failed '
                            'empty upload', image['id'])
            raise
        return self.get(context, image['id'])

    # -- the compute images proxy (Nova's /v2.1/images, below 2.36) -----------

    def get_all(self, context, filters=None, limit=None, marker=None,
                page_size=None):
        """One listing as Nova's proxy asks Glance for it.

        ``filters`` are Glance v2 list filters; ``limit`` caps the total
        (glanceclient follows Glance's next links until then) and
        ``page_size`` the size of each Glance page. A bad filter or an
        unknown marker is Glance's 400 (``ImageBadRequest``).
        """
        kwargs = {'filters': dict(filters or {})}
        for key, value in (('limit', limit), ('marker', marker),
                           ('page_size', page_size)):
            if value is not None:
                kwargs[key] = value
        images = self._call(context, None,
                            lambda c: list(c.images.list(**kwargs)))
        return [flatten(image) for image in images]


def custom_properties(image):
    """The custom properties of a flattened image (Nova's ``properties``):
    every key that is not an attribute of Glance's base image schema."""
    base = _SETTABLE | _READ_ONLY
    return {key: value for key, value in image.items() if key not in base}
