"""Stable states of an instance (Nova's values, kept as they are on the wire)."""

ACTIVE = 'active'
BUILDING = 'building'
STOPPED = 'stopped'
PAUSED = 'paused'
SUSPENDED = 'suspended'
DELETED = 'deleted'
ERROR = 'error'
SHELVED = 'shelved'
SHELVED_OFFLOADED = 'shelved_offloaded'
# Deleted with [DEFAULT] reclaim_instance_interval > 0: the guest is
# powered off and kept until restored or reclaimed (Nova's value).
SOFT_DELETED = 'soft-delete'

# vm_states from which createImage is accepted (Nova's check_instance_state).
SNAPSHOT_ALLOWED = (ACTIVE, STOPPED, PAUSED, SUSPENDED)

# vm_states shelve is accepted from (Nova's check_instance_state).
SHELVE_ALLOWED = (ACTIVE, STOPPED, PAUSED, SUSPENDED)
# ... and unshelve.
UNSHELVE_ALLOWED = (SHELVED, SHELVED_OFFLOADED)
