"""Internal exceptions.

Each carries an HTTP-ish ``code`` so the API layer can map it to Nova's fault
format without a table per handler; messages are built from ``msg_fmt``.
"""


class NovaSnapshotException(Exception):
    msg_fmt = 'An unknown error occurred.'
    code = 500

    def __init__(self, message=None, **kwargs):
        self.kwargs = kwargs
        if message is None:
            try:
                message = self.msg_fmt % kwargs
            except (KeyError, TypeError):
                message = self.msg_fmt
        self.message = message
        super().__init__(message)

    def format_message(self):
        return self.message


# 400
class Invalid(NovaSnapshotException):
    msg_fmt = 'Bad request: %(reason)s'
    code = 400


class MarkerNotFound(Invalid):
    msg_fmt = 'Marker %(marker)s could not be found.'


class InvalidSortKey(Invalid):
    msg_fmt = 'Cannot sort by %(key)s %(direction)s.'


class ValidationError(Invalid):
    msg_fmt = '%(detail)s'


class InvalidName(Invalid):
    msg_fmt = 'An invalid name was given: %(reason)s'


class ImageBadRequest(Invalid):
    msg_fmt = 'Request of image %(image_id)s was rejected: %(reason)s'


class FlavorNotFoundBadRequest(Invalid):
    msg_fmt = 'Flavor %(flavor_id)s could not be found.'


class ImageNotFoundBadRequest(Invalid):
    msg_fmt = 'Image %(image_id)s could not be found.'


class ImageUnacceptable(Invalid):
    msg_fmt = 'Image %(image_id)s is unacceptable: %(reason)s'


class FlavorMemoryTooSmall(Invalid):
    msg_fmt = "Flavor's memory is too small for requested image."


class FlavorDiskTooSmall(Invalid):
    msg_fmt = "The created instance's disk would be too small."


class FlavorDiskSmallerThanImage(FlavorDiskTooSmall):
    msg_fmt = ("Flavor's disk is too small for requested image. Flavor disk "
               "is %(flavor_size)i bytes, image is %(image_size)i bytes.")


class FlavorDiskSmallerThanMinDisk(FlavorDiskTooSmall):
    msg_fmt = ("Flavor's disk is smaller than the minimum size specified in "
               "image metadata. Flavor disk is %(flavor_size)i bytes, "
               "minimum size is %(image_min_disk)i bytes.")


class VolumeBackedSnapshotNotSupported(Invalid):
    msg_fmt = ('Snapshots of volume-backed servers are not supported by this '
               'deployment yet (server %(instance_uuid)s).')


# 403
class Forbidden(NovaSnapshotException):
    msg_fmt = 'Forbidden.'
    code = 403


class PolicyNotAuthorized(Forbidden):
    msg_fmt = "Policy doesn't allow %(action)s to be performed."


class ImageNotAuthorized(Forbidden):
    msg_fmt = 'Not authorized for image %(image_id)s.'


class OverQuota(Forbidden):
    msg_fmt = 'Quota exceeded for resources: %(overs)s'


class TooManyInstances(OverQuota):
    # Nova's name and first words; the bound here is per request
    # ([api] max_servers_per_request), not a project's usage.
    msg_fmt = ('Quota exceeded for instances: Requested %(req)s, but one '
               'request creates at most %(allowed)s servers')


class AmbiguousHostnameForMultipleInstances(Invalid):
    msg_fmt = 'Unable to allocate a single hostname to multiple instances'


# 404
class NotFound(NovaSnapshotException):
    msg_fmt = 'Resource could not be found.'
    code = 404


class InstanceNotFound(NotFound):
    msg_fmt = 'Instance %(instance_id)s could not be found.'


class FlavorNotFound(NotFound):
    msg_fmt = 'Flavor %(flavor_id)s could not be found.'


class ImageNotFound(NotFound):
    msg_fmt = 'Image %(image_id)s could not be found.'


class ComputeHostNotFound(NotFound):
    msg_fmt = 'Compute host %(host)s could not be found.'


class InstanceActionNotFound(NotFound):
    msg_fmt = ('Action for request_id %(request_id)s on instance '
               '%(instance_uuid)s not found')


class InstanceActionEventNotFound(NotFound):
    msg_fmt = 'Event %(event)s not found for action id %(action_id)s'


# 409
class Conflict(NovaSnapshotException):
    msg_fmt = 'Conflict: %(reason)s'
    code = 409


class InstanceInvalidState(Conflict):
    msg_fmt = ('Instance %(instance_uuid)s in %(attr)s %(state)s. Cannot '
               '%(method)s while the instance is in this state.')


class InstanceIsLocked(Conflict):
    # Not an InstanceInvalidState: handlers turn those into their own
    # "Cannot '<action>' instance ..." message; this one is Nova's as is.
    msg_fmt = 'Instance %(instance_uuid)s is locked'


class UnexpectedTaskStateError(Conflict):
    msg_fmt = ('Conflict updating instance %(instance_uuid)s. Expected: '
               '%(expected)s. Actual: %(actual)s')


class UnexpectedDeletingTaskStateError(UnexpectedTaskStateError):
    pass


class InstanceQuiesceFailed(Conflict):
    msg_fmt = 'Failed to quiesce instance: %(reason)s'


# compute / virt internals (500 if they ever reach the API)
class InstanceNotRunning(NovaSnapshotException):
    msg_fmt = 'Instance %(instance_id)s is not running.'


class HypervisorError(NovaSnapshotException):
    msg_fmt = 'Hypervisor error: %(reason)s'


class QemuImgFailed(NovaSnapshotException):
    msg_fmt = 'qemu-img %(command)s failed: %(reason)s'


class SnapshotCaptureFailed(NovaSnapshotException):
    msg_fmt = 'Capturing the disk of instance %(instance_uuid)s failed: %(reason)s'


class ImageUploadFailed(NovaSnapshotException):
    msg_fmt = 'Uploading image %(image_id)s failed: %(reason)s'


class ServiceUnavailable(NovaSnapshotException):
    """A service this one depends on did not answer in time, or at all: the
    API answers 503 serviceUnavailable (the client may retry)."""
    msg_fmt = 'A service is unavailable: %(reason)s'
    code = 503


class GlanceConnectionFailed(ServiceUnavailable):
    msg_fmt = 'Connection to Glance failed: %(reason)s'


class NoComputeHost(NovaSnapshotException):
    msg_fmt = 'No compute host is available: %(reason)s'
    code = 500


class ComputeServiceUnavailable(ServiceUnavailable):
    msg_fmt = ('The compute service of host %(host)s is unreachable: '
               '%(reason)s')


class HypervisorUnavailable(HypervisorError, ServiceUnavailable):
    """The hypervisor of this host cannot be reached (libvirtd restarting
    or down): nothing was decided about the instance, and the same call
    may work a moment later. A 503 if it reaches the API."""
    msg_fmt = 'The hypervisor is unavailable: %(reason)s'
    code = 503


class DriverLoadError(NovaSnapshotException):
    msg_fmt = 'Compute driver %(driver)s could not be loaded: %(reason)s'


# volume-backed servers (Cinder)
class VolumeNotFound(NotFound):
    msg_fmt = 'Volume %(volume_id)s could not be found.'


class SnapshotNotFound(NotFound):
    msg_fmt = 'Snapshot %(snapshot_id)s could not be found.'


class VolumeAttachmentNotFound(NotFound):
    msg_fmt = ('Volume %(volume_id)s is not attached to instance '
               '%(instance_uuid)s.')


class InvalidVolume(Invalid):
    msg_fmt = 'Invalid volume: %(reason)s'


class InvalidBDM(Invalid):
    msg_fmt = 'Block Device Mapping is Invalid: %(reason)s'


class InvalidBDMVolumeNotBootable(InvalidBDM):
    msg_fmt = 'Block Device %(id)s is not bootable.'


class InstanceQuiesceNotSupported(Invalid):
    msg_fmt = ('Quiescing is not supported in instance %(instance_id)s: '
               '%(reason)s')


class VolumeError(NovaSnapshotException):
    msg_fmt = 'Volume operation failed: %(reason)s'


class CinderConnectionFailed(VolumeError, ServiceUnavailable):
    """Cinder unreachable or silent past [cinder] timeout; still a
    VolumeError for the compute side's clean-up paths."""
    msg_fmt = 'Connection to Cinder failed: %(reason)s'
    code = 503


class VolumeSnapshotFailed(NovaSnapshotException):
    msg_fmt = ('Snapshot of the volumes of instance %(instance_uuid)s '
               'failed: %(reason)s')


# Volumes in the virt driver (libvirt side).
class VolumeDriverNotFound(Invalid):
    msg_fmt = 'Could not find a handler for %(driver_type)s volume.'


class InvalidConnectionInfo(Invalid):
    msg_fmt = 'Invalid volume connection info: %(reason)s'


class InvalidDevicePath(Invalid):
    msg_fmt = ('The supplied device path (%(path)s) is invalid.')


class VolumeSecretMissing(NovaSnapshotException):
    msg_fmt = ('The libvirt secret %(secret_uuid)s for the cephx user '
               '%(user)s is not defined on this host.')


class DeviceDetachFailed(NovaSnapshotException):
    msg_fmt = 'Device detach failed for %(device)s: %(reason)s'


# Scheduling and os-services.
class NoValidHost(NovaSnapshotException):
    msg_fmt = 'No valid host was found. %(reason)s'
    code = 500


class AvailabilityZoneNotAvailable(Invalid):
    msg_fmt = 'The requested availability zone is not available'


class ServiceNotFound(NotFound):
    msg_fmt = 'Service %(service_id)s could not be found.'


class HostBinaryNotFound(NotFound):
    msg_fmt = 'Compute host %(host)s with binary %(binary)s could not be found.'


class ServiceHasInstances(Conflict):
    msg_fmt = ('Unable to delete compute service that is hosting instances. '
               'Migrate or delete the instances first.')


# Keypairs (os-keypairs; Nova's messages)
class InvalidKeypair(Invalid):
    msg_fmt = 'Keypair data is invalid: %(reason)s'


class KeypairNotFound(NotFound):
    msg_fmt = 'Keypair %(name)s not found for user %(user_id)s'


class KeyPairExists(Conflict):
    msg_fmt = "Key pair '%(key_name)s' already exists."


class KeypairLimitExceeded(OverQuota):
    msg_fmt = 'Quota exceeded, too many key pairs.'
