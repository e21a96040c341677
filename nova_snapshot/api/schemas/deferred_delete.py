"""Nova's request schemas of the deferred delete actions."""

from nova_snapshot.api.schemas import servers

# Like Nova: any value (null, {}) for both.
RESTORE = servers._no_argument_action('restore')
FORCE_DELETE = servers._no_argument_action('forceDelete')
