"""Named kill points for the fault campaign (tools/fault_campaign.py).

``point('name')`` does nothing unless the environment variable
``NOVA_SNAPSHOT_FAULT_POINT`` names that point when the process starts.
Then the process kills itself with SIGKILL when it gets there: no cleanup
handler, ``finally`` block or atexit hook runs, exactly as when the host's
OOM killer or an operator's ``kill -9`` takes the service down at that
line. ``name@N`` kills at the N-th time the point is reached (1 is the
first).

The variable is read once, at import: a point that is not armed costs one
comparison, so the calls can stay in production code.
"""

import os
import signal
import sys
import threading

ENV_VAR = 'NOVA_SNAPSHOT_FAULT_POINT'


def _parse(value):
    """(name, n) of the armed point, or (None, 0)."""
    value = (value or '').strip()
    if not value:
        return None, 0
    name, _, count = value.partition('@')
    try:
        nth = int(count) if count else 1
    except ValueError:
        nth = 1
    return name, max(nth, 1)


_ARMED, _NTH = _parse(os.environ.get(ENV_VAR))
_lock = threading.Lock()
_hits = 0


def armed():
    """The name of the armed point, or None."""
    return _ARMED


def point(name):
    """SIGKILL this process if ``name`` is the armed point (see module)."""
    if _ARMED is None or name != _ARMED:
        return
    global _hits
    with _lock:
        _hits += 1
        if _hits < _NTH:
            return
        # One line the campaign can find in the service's output; written
        # and flushed by hand because nothing runs after the signal.
        sys.stderr.write('nova-snapshot fault injection: SIGKILL at %s '
                         '(hit %d) pid %d\n' % (name, _hits, os.getpid()))
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def _rearm_for_tests(value):
    """Re-read the armed point (unit tests only)."""
    global _ARMED, _NTH, _hits
    _ARMED, _NTH = _parse(value)
    _hits = 0
