"""Compute API microversions: the ledger, the parser and the middleware.

Clients ask for a version with ``OpenStack-API-Version: compute X.Y`` or the
legacy ``X-OpenStack-Nova-API-Version: X.Y`` (``latest`` means the maximum).
Without either header a request gets the minimum, 2.1, as in Nova. A
malformed version string is a 400 and a well-formed one outside the window a
406, both with Nova's fault body. Every response names the version that
served it in both headers, plus ``Vary`` so caches keep versions apart.
"""

import re

import webob.dec

from nova_snapshot.api import faults

SERVICE_TYPE = 'compute'
HEADER = 'OpenStack-API-Version'
LEGACY_HEADER = 'X-OpenStack-Nova-API-Version'
ENVIRON_KEY = 'nova_snapshot.microversion'

# Every minor version from 2.1 to the maximum is served (clients negotiate
# inside the window). Only the versions below change what this service
# sends or accepts; the others change Nova APIs we do not have. Adding a
# version: append it here with one line saying what changes, branch with
# ``microversion.get(req).matches(...)`` and add a gabbi test.
CHANGES = {
    '2.1': 'The v2.1 API as first released (our baseline).',
    '2.3': 'Admins see more OS-EXT-SRV-ATTR fields in the server body; '
           'volumes_attached items carry delete_on_termination.',
    '2.9': '"locked" in the server body.',
    '2.16': 'Nova adds host_status for admins (not reported here).',
    '2.19': '"description" in the server body.',
    '2.26': '"tags" in the server body.',
    '2.32': '"tag" in block_device_mapping_v2 items (removed in 2.33).',
    '2.36': 'The compute images proxy (/images) answers 404.',
    '2.37': '"networks" is required when creating a server.',
    '2.39': 'createImage no longer checks an image metadata quota; the '
            'image metadata proxy (/images/{id}/metadata) answers 404.',
    '2.42': '"tag" in block_device_mapping_v2 items again.',
    '2.45': 'createImage returns {"image_id": ...} and no Location header.',
}
MAX_MINOR = 45
VERSIONS = ['2.%d' % minor for minor in range(1, MAX_MINOR + 1)]

_VERSION_RE = re.compile(r'^([1-9]\d*)\.([1-9]\d*|0)$')


class APIVersion(tuple):
    """A (major, minor) pair that prints as "X.Y"."""

    def __new__(cls, major, minor):
        return super().__new__(cls, (int(major), int(minor)))

    @classmethod
    def parse(cls, text):
        match = _VERSION_RE.match(text.strip())
        if match is None:
            raise ValueError(text)
        return cls(match.group(1), match.group(2))

    def __str__(self):
        return '%d.%d' % self

    def matches(self, min_version=None, max_version=None):
        """True if this version lies in [min_version, max_version]."""
        if min_version is not None and self < _as_version(min_version):
            return False
        if max_version is not None and self > _as_version(max_version):
            return False
        return True


def _as_version(value):
    if isinstance(value, APIVersion):
        return value
    if isinstance(value, str):
        return APIVersion.parse(value)
    return APIVersion(*value)


MIN_VERSION = APIVersion.parse(VERSIONS[0])
MAX_VERSION = APIVersion.parse(VERSIONS[-1])


def _requested_version_string(headers):
    """Return the version text the client asked for, or None."""
    value = headers.get(HEADER)
    if value:
        # The header may carry several services: "compute 2.45, image 2.1".
        for item in value.split(','):
            parts = item.strip().split(None, 1)
            if len(parts) == 2 and parts[0].lower() == SERVICE_TYPE:
                return parts[1].strip()
    value = headers.get(LEGACY_HEADER)
    if value:
        return value.strip()
    return None


def extract_version(headers):
    """Return the APIVersion a request asks for.

    :raises faults.APIFault: 400 for a malformed version, 406 for one outside
        the supported window (Nova's codes and messages).
    """
    text = _requested_version_string(headers)
    if text is None:
        return MIN_VERSION
    if text.lower() == 'latest':
        return MAX_VERSION
    try:
        version = APIVersion.parse(text)
    except ValueError:
        raise faults.APIFault(
            400, 'API Version String %s is of invalid format. Must be of '
                 'format MajorNum.MinorNum.' % text)
    if not version.matches(MIN_VERSION, MAX_VERSION):
        raise faults.APIFault(
            406, 'Version %s is not supported by the API. Minimum is %s and '
                 'maximum is %s.' % (text, MIN_VERSION, MAX_VERSION))
    return version


def add_headers(response, version):
    response.headers[HEADER] = '%s %s' % (SERVICE_TYPE, version)
    response.headers[LEGACY_HEADER] = str(version)
    vary = [v.strip() for v in response.headers.get('Vary', '').split(',')
            if v.strip()]
    for name in (HEADER, LEGACY_HEADER):
        if name not in vary:
            vary.append(name)
    response.headers['Vary'] = ', '.join(vary)


class MicroversionMiddleware:
    """Parse the requested version into the environ; echo it on responses."""

    def __init__(self, application):
        self.application = application

    @webob.dec.wsgify
    def __call__(self, req):
        try:
            version = extract_version(req.headers)
        except faults.APIFault as fault:
            # The headers name the versions we do serve, as Nova does.
            response = fault.response()
            add_headers(response, MIN_VERSION)
            return response
        req.environ[ENVIRON_KEY] = version
        response = req.get_response(self.application)
        add_headers(response, version)
        return response


def get(req):
    """The APIVersion a handler is serving."""
    return req.environ.get(ENVIRON_KEY, MIN_VERSION)
