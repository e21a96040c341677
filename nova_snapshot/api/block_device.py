"""``block_device_mapping_v2`` on server create: the request's shape here,
the rules in the shared normaliser.

The schema (``schemas/block_device_mapping.py``) checks each key alone;
:func:`nova_snapshot.compute.block_device.normalise_request` applies the
rules that tie keys together and refuses what the libvirt driver cannot
build (``disk_bus``, ``device_type``, device names), the same function the
compute side's checks come from, so the API cannot accept a mapping the
host would refuse at spawn. This module only adds the request-level rules
(v1 against v2, ``imageRef``) and turns ``InvalidBDM`` into Nova's 400.

Deliberate differences from Nova, all stricter or simpler:

* ``destination_type: local`` is only the image root disk (Nova's
  ``image -> local`` with ``boot_index`` 0 next to ``imageRef``); we have no
  ephemeral or swap disks, so other local mappings are refused.
* ``connection_info`` (accepted by Nova's schema) is dropped: where a disk
  lives is for Cinder to say, never the client.
* ``disk_bus``, ``device_type`` and device names must be ones the libvirt
  driver can build (``compute.block_device.DISK_BUSES`` and friends).
* With ``imageRef`` and no boot index 0 the image is the root disk, so data
  volumes need no image mapping (Nova wants the client to add one).
"""

from nova_snapshot.api import faults
from nova_snapshot.compute import block_device
from nova_snapshot import exception

# Kept for callers that read them here.
KEYS = block_device.V2_KEYS
DISK_BUSES = block_device.DISK_BUSES
DEVICE_TYPES = block_device.DEVICE_TYPES


def from_request(server):
    """Validate the mappings of a create body (``server`` object, already
    schema-checked); return (image_ref, normalised list).

    :raises faults.APIFault: 400 with Nova's message.
    """
    legacy = server.get('block_device_mapping')
    v2 = server.get('block_device_mapping_v2')
    if legacy and v2:
        raise faults.APIFault(400, 'Using different block_device_mapping '
                                   'syntaxes is not allowed in the same '
                                   'request.')
    if legacy:
        # Our choice: no conversion of the pre-2013 format; every client
        # in use speaks v2.
        raise faults.APIFault(400, 'block_device_mapping (the legacy v1 '
                                   'format) is not supported; use '
                                   'block_device_mapping_v2.')
    image_ref = server.get('imageRef') or ''
    if not v2:
        if not image_ref:
            raise faults.APIFault(400, 'Missing imageRef attribute')
        return image_ref, []
    try:
        bdms = block_device.normalise_request(
            v2, image_ref, image_uuid_specified='imageRef' in server
            and server['imageRef'] is not None)
    except exception.InvalidBDM as exc:
        raise faults.APIFault(400, exc.format_message())
    return image_ref, bdms


def is_volume_backed_request(bdms):
    """True when the root disk of the new server is a volume."""
    return any(b['boot_index'] == 0 and b['destination_type'] == 'volume'
               for b in bdms)
