"""Transitional states of an instance (Nova's values)."""

SCHEDULING = 'scheduling'
SPAWNING = 'spawning'
DELETING = 'deleting'
POWERING_OFF = 'powering-off'
POWERING_ON = 'powering-on'
PAUSING = 'pausing'
UNPAUSING = 'unpausing'
SUSPENDING = 'suspending'
RESUMING = 'resuming'

SHELVING = 'shelving'
SHELVING_IMAGE_PENDING_UPLOAD = 'shelving_image_pending_upload'
SHELVING_IMAGE_UPLOADING = 'shelving_image_uploading'
SHELVING_OFFLOADING = 'shelving_offloading'
UNSHELVING = 'unshelving'

IMAGE_SNAPSHOT_PENDING = 'image_snapshot_pending'
IMAGE_SNAPSHOT = 'image_snapshot'
IMAGE_PENDING_UPLOAD = 'image_pending_upload'
IMAGE_UPLOADING = 'image_uploading'
# createBackup's capture state (Nova's), in place of image_snapshot.
IMAGE_BACKUP = 'image_backup'

# Task states a compute service repairs at start-up (left by a crash).
IMAGE_SNAPSHOT_STATES = (IMAGE_SNAPSHOT_PENDING, IMAGE_SNAPSHOT,
                         IMAGE_PENDING_UPLOAD, IMAGE_UPLOADING, IMAGE_BACKUP)

# Task states of a shelve on its host (before the server is SHELVED).
SHELVING_STATES = (SHELVING, SHELVING_IMAGE_PENDING_UPLOAD,
                   SHELVING_IMAGE_UPLOADING)
