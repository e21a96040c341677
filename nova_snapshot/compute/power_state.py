"""Power states as Nova reports them in OS-EXT-STS:power_state."""

from nova_snapshot import exception

NOSTATE = 0
RUNNING = 1
PAUSED = 3
SHUTDOWN = 4
CRASHED = 6
SUSPENDED = 7

NAMES = {NOSTATE: 'pending', RUNNING: 'running', PAUSED: 'paused',
         SHUTDOWN: 'shutdown', CRASHED: 'crashed', SUSPENDED: 'suspended'}


def of_guest(driver, instance):
    """The guest's power state on this host; NOSTATE when it has none (a
    repair or a replay may find the domain already gone)."""
    try:
        return driver.get_power_state(instance)
    except exception.InstanceNotFound:
        return NOSTATE
