"""The watchdog process of a freeze or vCPU pause (see :mod:`quiesce`).

Run as ``python -m nova_snapshot.virt.libvirt.thaw_watchdog --uri URI
--domain UUID --token PATH --nonce N --at EPOCH --action thaw|resume``, in
its own session so that it outlives the compute service. It waits until
``--at``; if the token file still holds its nonce then, it thaws the
guest's filesystems (``fsThaw``) or resumes its vCPUs, retrying for a
while when the agent is slow, and removes the token. A token that
disappears (or names another nonce) stands it down at once.

Only the standard library and libvirt are imported: this starts while a
guest is about to be frozen, so it should start fast.
"""

import argparse
import json
import os
import sys
import time

POLL_SECONDS = 0.05
# How long after the deadline a thaw is retried before giving up.
RETRY_SECONDS = 60.0
RETRY_INTERVAL = 0.5


def _log(message):
    sys.stderr.write('%s thaw_watchdog[%d]: %s\n' % (
        time.strftime('%Y-%m-%dT%H:%M:%S'), os.getpid(), message))
    sys.stderr.flush()


def still_armed(token_path, nonce):
    try:
        with open(token_path) as f:
            token = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(token, dict) and token.get('nonce') == nonce


def wait(token_path, nonce, at, clock=time.time, sleep=time.sleep,
         poll=POLL_SECONDS):
    """Sleep until ``at``; False as soon as the watchdog is stood down."""
    while True:
        if not still_armed(token_path, nonce):
            return False
        left = at - clock()
        if left <= 0:
            return True
        sleep(min(poll, left))


def act_with_retries(act, token_path, nonce, clock=time.time,
                     sleep=time.sleep, retry_seconds=RETRY_SECONDS,
                     interval=RETRY_INTERVAL):
    """Call ``act()`` until it succeeds, the token goes, or time is up."""
    give_up = clock() + retry_seconds
    attempt = 0
    while True:
        attempt += 1
        try:
            result = act()
            _log('attempt %d: %s' % (attempt, result))
            return True
        except Exception as exc:  # libvirt errors, connection drops
            _log('attempt %d failed: %s' % (attempt, exc))
        if not still_armed(token_path, nonce) or clock() >= give_up:
            return False
        sleep(interval)


def remove_token(token_path, nonce):
    if still_armed(token_path, nonce):
        try:
            os.unlink(token_path)
        except FileNotFoundError:
            pass


def libvirt_action(uri, domain_uuid, action):
    """A callable that thaws/resumes the domain once."""
    import libvirt

    libvirt.registerErrorHandler(lambda _c, _e: None, None)

    def act():
        conn = libvirt.open(uri)
        try:
            try:
                dom = conn.lookupByUUIDString(domain_uuid)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return 'domain is gone'
                raise
            state, _reason = dom.state()
            if action == 'resume':
                if state == libvirt.VIR_DOMAIN_PAUSED:
                    dom.resume()
                    return 'resumed'
                return 'not paused (state %d)' % state
            if state not in (libvirt.VIR_DOMAIN_RUNNING,
                             libvirt.VIR_DOMAIN_PAUSED,
                             libvirt.VIR_DOMAIN_BLOCKED):
                return 'not running (state %d)' % state
            try:
                return 'thawed %d filesystem(s)' % dom.fsThaw(None, 0)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() in (
                        libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED,
                        libvirt.VIR_ERR_OPERATION_INVALID):
                    return 'nothing to thaw: %s' % exc.get_error_message()
                raise
        finally:
            conn.close()
    return act


def main(argv=None):
    parser = argparse.ArgumentParser(prog='thaw_watchdog')
    parser.add_argument('--uri', required=True)
    parser.add_argument('--domain', required=True)
    parser.add_argument('--token', required=True)
    parser.add_argument('--nonce', required=True)
    parser.add_argument('--at', required=True, type=float)
    parser.add_argument('--action', required=True,
                        choices=('thaw', 'resume'))
    args = parser.parse_args(argv)
    # Ready before the deadline: importing libvirt takes a while.
    act = libvirt_action(args.uri, args.domain, args.action)
    if not wait(args.token, args.nonce, args.at):
        return 0
    _log('deadline passed for %s: %s' % (args.domain, args.action))
    ok = act_with_retries(act, args.token, args.nonce)
    if ok:
        remove_token(args.token, args.nonce)
        return 0
    # The token stays: the service's thaw_if_frozen retries at its start.
    return 1


if __name__ == '__main__':
    sys.exit(main())
