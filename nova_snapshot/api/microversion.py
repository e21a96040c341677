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
from nova_snapshot.api import validation

SERVICE_TYPE = 'compute'
HEADER = 'OpenStack-API-Version'
LEGACY_HEADER = 'X-OpenStack-Nova-API-Version'
ENVIRON_KEY = 'nova_snapshot.microversion'

# Every minor version from 2.1 to the maximum is served (clients negotiate
# inside the window). ``CHANGES`` holds the versions that change what this
# service sends or accepts on a route it serves; ``NOT_APPLICABLE`` says,
# for every later version that does not, why (a Nova API we do not serve).
# Adding a version: append it to one of the two with one line, branch with
# ``microversion.get(req).matches(...)`` and add a gabbi test
# (tests/unit/api/test_microversion.py checks that 2.46 to the maximum are
# all accounted for).
CHANGES = {
    '2.1': 'The v2.1 API as first released (our baseline).',
    '2.2': 'os-keypairs: "type" (ssh, x509) on create and in every '
           'keypair body; create answers 201 (200 before), delete 204 '
           '(202 before).',
    '2.3': 'Admins see more OS-EXT-SRV-ATTR fields in the server body; '
           'volumes_attached items carry delete_on_termination.',
    '2.9': '"locked" in the server body.',
    '2.10': 'os-keypairs: admins name another user with "user_id" (create '
            'body; list, show and delete query).',
    '2.16': 'Nova adds host_status for admins (not reported here).',
    '2.19': '"description" in the server body; create, server update '
            '(PUT /servers/{id}) and rebuild take "description" (null '
            'removes it).',
    '2.20': 'Volumes attach to and detach from SHELVED and '
            'SHELVED_OFFLOADED servers (409 before).',
    '2.21': 'os-instance-actions (list and show) of a deleted server '
            '(of the caller\'s project; 404 before 2.21).',
    '2.26': '"tags" in the server body.',
    '2.32': '"tag" in block_device_mapping_v2 items (removed in 2.33).',
    '2.35': 'os-keypairs list pages by name with limit and marker and has '
            '"keypairs_links".',
    '2.36': 'The compute images proxy (/images) answers 404.',
    '2.37': '"networks" is required when creating a server.',
    '2.39': 'createImage no longer checks an image metadata quota; the '
            'image metadata proxy (/images/{id}/metadata) answers 404.',
    '2.42': '"tag" in block_device_mapping_v2 items again.',
    '2.45': 'createImage (and createBackup) return {"image_id": ...} and '
            'no Location header.',
    '2.47': 'The server body (show, detail, rebuild) embeds the flavor '
            '(vcpus, ram, disk, ephemeral, swap, original_name; '
            'extra_specs with the flavor-extra-specs policy) instead of a '
            'link.',
    '2.49': 'POST os-volume_attachments takes "tag".',
    '2.51': 'Instance action events are shown to every reader of the '
            'action; "traceback" only with the events policy. '
            'os-server-external-events takes "volume-extended".',
    '2.53': 'os-services: ids are UUIDs; PUT /os-services/{uuid} with '
            'status, disabled_reason and forced_down; DELETE by UUID; the '
            'PUT /os-services/{action} forms answer 404.',
    '2.54': 'rebuild takes "key_name" (a keypair of the caller; null '
            'removes it) and shows it (api/handlers/rebuild).',
    '2.55': 'Flavors carry "description".',
    '2.57': 'rebuild takes "user_data" and shows it; "personality" is '
            'gone from rebuild (and was never taken on create here).',
    '2.58': 'Instance actions: "updated_at"; the list pages with limit '
            'and marker, filters with changes-since and has "links".',
    '2.61': 'Flavors carry "extra_specs" (with the extra-specs policy).',
    '2.62': 'Instance action events carry "hostId", and "host" with the '
            'events policy.',
    '2.63': '"trusted_image_certificates" (null: none is ever set here) '
            'in the server body (show, detail, rebuild).',
    '2.66': 'changes-before filters the server list and the instance '
            'action list.',
    '2.67': 'block_device_mapping_v2 items take "volume_type" (the type '
            'of a volume the create makes).',
    '2.70': 'Volume attachments show their "tag".',
    '2.71': '"server_groups" ([] here) in the server show and rebuild '
            'bodies (not in detail).',
    '2.73': '"locked_reason" in the server body; lock takes '
            '{"locked_reason"}; the server list filters and sorts by '
            '"locked".',
    '2.74': 'Create takes "host" and "hypervisor_hostname" (admins; an '
            'unknown one is a 400).',
    '2.75': 'Unknown server list query parameters are a 400 (and those '
            'of os-keypairs); the rebuild '
            'and server update bodies are the full show body; flavor '
            '"swap" is 0, not "".',
    '2.76': 'os-server-external-events takes "power-update" (logged, not '
            'applied: compute/external_events.py).',
    '2.77': 'unshelve of an offloaded server takes "availability_zone" '
            '(api/handlers/shelve).',
    '2.79': 'POST os-volume_attachments takes "delete_on_termination"; '
            'attachments show it.',
    '2.82': 'os-server-external-events takes "accelerator-request-bound" '
            '(logged: no accelerators here).',
    '2.83': 'Non-admins may filter the server list by availability_zone, '
            'config_drive, key_name, created_at, launched_at, '
            'terminated_at, power_state, task_state, vm_state, progress '
            'and user_id.',
    '2.84': 'Instance action events carry "details".',
    '2.85': 'PUT os-volume_attachments/{volume_id} updates '
            '"delete_on_termination"; another volumeId (and every PUT '
            'before) is the admin swap, refused with a 409 (no swap '
            'here).',
    '2.89': 'Volume attachments show "attachment_id" and "bdm_uuid" and '
            'no longer "id".',
    '2.90': 'Create takes "hostname" (default: the name made a '
            'hostname); OS-EXT-SRV-ATTR:hostname is in every server body, '
            'whatever the policy; non-admins may pass "hostname" to the '
            'server list (not applied, as for admins before). Server '
            'update and rebuild take "hostname" (a rename keeps the one '
            'the server had).',
    '2.91': 'unshelve takes "host" and "availability_zone": null '
            '(api/handlers/shelve).',
    '2.92': 'os-keypairs create requires "public_key" (no generation) and '
            'names may have "@" and ".".',
    '2.93': 'rebuild of a volume-backed server re-images its root volume '
            '(Cinder os-reimage, volume API 3.68) with any image; before, '
            'another image is a 400 (compute/rebuild.py). '
            'os-server-external-events takes "volume-reimaged".',
    '2.94': 'The create, update and rebuild "hostname" may be an FQDN (1 '
            'to 255 characters).',
    '2.96': '"pinned_availability_zone" (the zone asked for at create, or '
            'null) in the server body (show, detail, rebuild).',
    '2.98': 'The embedded image of the server body carries the boot '
            'image\'s standard "properties".',
    '2.100': '"scheduler_hints" ({} here: none are taken) in the server '
             'body (show, detail, rebuild).',
    '2.101': 'POST os-volume_attachments answers 202 with no body.',
    '2.102': 'Flavors lose "rxtx_factor" and "OS-FLV-DISABLED:disabled"; '
             'the flavor list filters by "name"; routes without query '
             'parameters refuse any (400).',
    '2.104': 'Server update takes "pinned_availability_zone": null unpins, '
             'the server\'s own zone pins an unpinned server (409 for '
             'another zone, or to re-pin a pinned one elsewhere).',
}

NOT_APPLICABLE = {
    '2.46': 'X-OpenStack-Request-ID: every response here carries it at '
            'every version already.',
    '2.48': 'Server diagnostics: not served.',
    '2.50': 'os-quota-class-sets: not served.',
    '2.52': 'Server tags: there is no tags store or tags API here, so '
            '"tags" on create stays an unknown key (400).',
    '2.56': 'Cold migration: not served.',
    '2.59': 'os-migrations: not served.',
    '2.60': 'Multiattach volumes: refused at every version.',
    '2.64': 'Server groups: not served.',
    '2.65': 'Live migration abort: not served.',
    '2.68': 'Forced live migration and evacuate: not served.',
    '2.69': 'Partial results on infrastructure failure: there are no '
            'cells; a missing database answers 503 whole.',
    '2.72': 'Neutron ports with resource requests: no networking here.',
    '2.78': 'Server NUMA topology: not served.',
    '2.80': 'os-migrations: not served.',
    '2.81': 'Aggregate image caching: not served.',
    '2.86': 'Flavor extra spec validation: flavors are read-only here.',
    '2.87': 'Rescue: not served.',
    '2.88': 'os-hypervisors: not served.',
    '2.95': 'Evacuate: not served.',
    '2.97': 'Server shares: not served.',
    '2.99': 'SPICE direct consoles: not served.',
    '2.103': 'os-volumes_boot: not served.',
}
MAX_MINOR = 104
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


# From 2.102 a route that takes no query parameters refuses any.
NO_QUERY_VERSION = (2, 102)
_NO_QUERY = {'type': 'object', 'properties': {},
             'additionalProperties': False}


def check_no_query(req):
    """400 for a query parameter on a route that takes none, from 2.102
    (before it, Nova ignores them)."""
    if get(req).matches(NO_QUERY_VERSION) and req.GET:
        validation.validate_query(req.GET.dict_of_lists(), _NO_QUERY)
