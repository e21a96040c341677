"""Transitional states of an instance (Nova's values)."""

SCHEDULING = 'scheduling'
SPAWNING = 'spawning'
DELETING = 'deleting'
# Soft delete and restore (compute/soft_delete.py; Nova's values).
SOFT_DELETING = 'soft-deleting'
RESTORING = 'restoring'
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

# reboot (H3): the API sets rebooting / rebooting_hard, the compute host
# moves through *_pending and *_started (Nova's values).
REBOOTING = 'rebooting'
REBOOT_PENDING = 'reboot_pending'
REBOOT_STARTED = 'reboot_started'
REBOOTING_HARD = 'rebooting_hard'
REBOOT_PENDING_HARD = 'reboot_pending_hard'
REBOOT_STARTED_HARD = 'reboot_started_hard'
SOFT_REBOOT_STATES = (REBOOTING, REBOOT_PENDING, REBOOT_STARTED)
HARD_REBOOT_STATES = (REBOOTING_HARD, REBOOT_PENDING_HARD,
                      REBOOT_STARTED_HARD)
# Task states a hard reboot may take over (Nova's ALLOW_REBOOT): a stuck
# soft reboot or power action is what a hard reboot is for.
ALLOW_REBOOT = (None, REBOOTING, REBOOT_PENDING, REBOOT_STARTED, RESUMING,
                REBOOTING_HARD, UNPAUSING, PAUSING, SUSPENDING)

# rebuild (H3).
REBUILDING = 'rebuilding'
REBUILD_BLOCK_DEVICE_MAPPING = 'rebuild_block_device_mapping'
REBUILD_SPAWNING = 'rebuild_spawning'
REBUILD_STATES = (REBUILDING, REBUILD_BLOCK_DEVICE_MAPPING, REBUILD_SPAWNING)
