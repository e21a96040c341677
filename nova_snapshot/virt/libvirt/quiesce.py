"""Freeze a guest's filesystems (or its vCPUs) for a moment, safely.

A frozen guest is an outage for its user, so every freeze (QEMU guest
agent ``fsfreeze``) and every short vCPU pause taken for a consistent cut
is guarded by a watchdog: a separate process, in its own session, started
*before* the freeze (see :mod:`thaw_watchdog`). It thaws (or resumes) the
guest at the deadline unless it has been stood down first, so a compute
service that is SIGKILLed mid-snapshot, or hangs, leaves the guest frozen
for at most the deadline.

The watchdog and the service agree through a token file in the instance
directory (``<instances_path>/<uuid>/freeze.watchdog`` or
``pause.watchdog``) holding a nonce: removing the file (or replacing it
with a newer watchdog's) stands the watchdog down. Deleting an instance
removes the directory, and with it every token.
"""

import json
import os
import subprocess
import sys
import time
import uuid as uuidlib

import libvirt
from oslo_log import log as logging

from nova_snapshot import exception
from nova_snapshot import fault_injection

LOG = logging.getLogger(__name__)

FREEZE = 'freeze'
PAUSE = 'pause'
# What the watchdog does when a token of that kind outlives its deadline.
ACTIONS = {FREEZE: 'thaw', PAUSE: 'resume'}
DEFAULT_DEADLINE = 10.0
WATCHDOG_MODULE = 'nova_snapshot.virt.libvirt.thaw_watchdog'

# libvirt errors that mean "this guest has no agent we could ever use".
_NOT_SUPPORTED = (
    libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED,
    libvirt.VIR_ERR_OPERATION_UNSUPPORTED,
    libvirt.VIR_ERR_NO_SUPPORT,
    libvirt.VIR_ERR_CONFIG_UNSUPPORTED,
)


def token_path(instance_dir, kind):
    return os.path.join(instance_dir, '%s.watchdog' % kind)


def read_token(path):
    """The token's dict, or None when there is none (or it is garbage)."""
    try:
        with open(path) as f:
            token = json.load(f)
    except (FileNotFoundError, ValueError):
        return None
    return token if isinstance(token, dict) else None


def arm(uri, domain_uuid, instance_dir, kind, deadline):
    """Write a fresh token and start its watchdog; return the token dict.

    Written atomically (rename) so the watchdog never reads half a token.
    """
    os.makedirs(instance_dir, exist_ok=True)
    path = token_path(instance_dir, kind)
    token = {
        'nonce': uuidlib.uuid4().hex,
        'action': ACTIONS[kind],
        'domain': str(uuidlib.UUID(domain_uuid)),
        'uri': uri,
        # Wall clock: it has to mean the same in another process.
        'at': time.time() + float(deadline),
    }
    _write_token(path, token)
    log_path = path + '.log'
    with open(log_path, 'ab') as log:
        # start_new_session: a SIGKILL/SIGINT to the service's process group
        # must not reach the watchdog. argv only, no shell.
        proc = subprocess.Popen(
            [sys.executable, '-m', WATCHDOG_MODULE,
             '--uri', uri, '--domain', token['domain'],
             '--token', path, '--nonce', token['nonce'],
             '--at', repr(token['at']), '--action', token['action']],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            close_fds=True, start_new_session=True)
    token['pid'] = proc.pid
    # Recorded for operators and thaw_if_frozen's log; same nonce, so the
    # watchdog, which may already be reading, sees the same token.
    _write_token(path, token)
    token['process'] = proc
    return token


def _write_token(path, token):
    tmp = '%s.%s.tmp' % (path, token['nonce'])
    with open(tmp, 'w') as f:
        json.dump(token, f)
    os.replace(tmp, path)


def disarm(instance_dir, kind, nonce=None):
    """Stand the watchdog down; True when there was a token to remove.

    With ``nonce``, only that watchdog's token is removed (a newer one is
    left alone).
    """
    path = token_path(instance_dir, kind)
    if nonce is not None:
        current = read_token(path)
        if current is None or current.get('nonce') != nonce:
            return False
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def is_armed(instance_dir, kind):
    return read_token(token_path(instance_dir, kind)) is not None


# -- the libvirt calls, with their errors in Nova's terms ---------------------

def _agent_error(exc, instance_uuid, action):
    code = exc.get_error_code()
    if code == libvirt.VIR_ERR_NO_DOMAIN:
        return exception.InstanceNotFound(instance_id=instance_uuid)
    if code in _NOT_SUPPORTED:
        # "QEMU guest agent is not configured": no channel in the domain.
        return exception.InstanceQuiesceNotSupported(
            instance_id=instance_uuid, reason=exc.get_error_message())
    if code == libvirt.VIR_ERR_OPERATION_INVALID:
        # "domain is not running"
        return exception.InstanceNotRunning(instance_id=instance_uuid)
    # VIR_ERR_AGENT_UNRESPONSIVE ("QEMU guest agent is not connected",
    # or it did not answer in time) and anything else.
    return exception.InstanceQuiesceFailed(
        reason='%s of instance %s: %s' % (action, instance_uuid,
                                          exc.get_error_message()))


def bound_agent_wait(domain, seconds):
    """Make agent calls give up after ``seconds``.

    libvirt's default for fsfreeze is to wait forever: a hung qemu-ga would
    hang the snapshot (measured: still blocked after 10 minutes).
    """
    try:
        domain.agentSetResponseTimeout(max(1, int(seconds)), 0)
    except (libvirt.libvirtError, AttributeError) as exc:
        LOG.warning('cannot bound the guest agent wait: %s', exc)


def freeze(domain, instance_uuid, timeout=None):
    """``fsfreeze`` through the agent; return how many filesystems froze."""
    if timeout is not None:
        bound_agent_wait(domain, timeout)
    try:
        return domain.fsFreeze(None, 0)
    except libvirt.libvirtError as exc:
        raise _agent_error(exc, instance_uuid, 'freeze')


def thaw(domain, instance_uuid):
    """``fsthaw`` through the agent; thawing a thawed guest is fine."""
    try:
        return domain.fsThaw(None, 0)
    except libvirt.libvirtError as exc:
        raise _agent_error(exc, instance_uuid, 'thaw')


def is_paused(domain):
    state, _reason = domain.state()
    return state == libvirt.VIR_DOMAIN_PAUSED


# -- what the driver calls ----------------------------------------------------

def quiesce(uri, domain, instance_uuid, instance_dir, deadline):
    """Arm the watchdog, then freeze. Return facts about the freeze.

    No agent configured: the watchdog is stood down and
    InstanceQuiesceNotSupported raised. The agent not answering: the
    freeze may still happen inside the guest later, so the watchdog stays
    armed (it thaws at the deadline) and InstanceQuiesceFailed is raised;
    calling :func:`unquiesce` afterwards is safe.
    """
    if deadline is None or float(deadline) <= 0:
        raise ValueError('a freeze needs a positive deadline')
    token = arm(uri, domain.UUIDString(), instance_dir, FREEZE, deadline)
    started = time.monotonic()
    try:
        # Half the deadline: a hung agent fails the freeze well before the
        # watchdog would thaw.
        count = freeze(domain, instance_uuid, timeout=float(deadline) / 2)
        fault_injection.point('volume.agent_frozen')
    except (exception.InstanceQuiesceNotSupported,
            exception.InstanceNotFound, exception.InstanceNotRunning):
        disarm(instance_dir, FREEZE, token['nonce'])
        raise
    return {'frozen_filesystems': count,
            'freeze_seconds': time.monotonic() - started,
            'watchdog_pid': token['pid'], 'deadline': float(deadline)}


def unquiesce(domain, instance_uuid, instance_dir):
    """Thaw and stand the watchdog down. Idempotent.

    When the thaw fails the watchdog stays armed (it will retry at its
    deadline) and InstanceQuiesceFailed is raised.
    """
    try:
        thaw(domain, instance_uuid)
    except (exception.InstanceQuiesceNotSupported,
            exception.InstanceNotRunning, exception.InstanceNotFound):
        # Nothing can be frozen: no agent, or no running guest.
        pass
    disarm(instance_dir, FREEZE)


def pause_vcpus(uri, domain, instance_uuid, instance_dir, deadline):
    """Stop the vCPUs for a consistent cut; True when this call paused them.

    A guest already paused (by its user) is left alone and False is
    returned: it is still, and resuming it is not ours to do.
    """
    if is_paused(domain):
        return False
    token = arm(uri, domain.UUIDString(), instance_dir, PAUSE, deadline)
    try:
        domain.suspend()
    except libvirt.libvirtError as exc:
        disarm(instance_dir, PAUSE, token['nonce'])
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            raise exception.InstanceNotFound(instance_id=instance_uuid)
        if exc.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID:
            raise exception.InstanceNotRunning(instance_id=instance_uuid)
        raise exception.HypervisorError(reason=str(exc))
    return True


def resume_vcpus(domain, instance_uuid, instance_dir):
    """Resume what :func:`pause_vcpus` paused; True when it resumed. Idempotent."""
    if not is_armed(instance_dir, PAUSE):
        return False
    resumed = False
    try:
        if is_paused(domain):
            domain.resume()
            resumed = True
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
            # The watchdog stays armed and resumes at the deadline.
            raise exception.HypervisorError(reason=str(exc))
    disarm(instance_dir, PAUSE)
    return resumed


def thaw_if_frozen(domain, instance_uuid, instance_dir):
    """At service start: undo what a dead service's freeze/pause left.

    Acts only where a token says this service froze or paused the guest;
    a guest its user paused stays paused. Returns what was done.
    """
    done = []
    if is_armed(instance_dir, FREEZE):
        if domain is not None:
            try:
                thaw(domain, instance_uuid)
                done.append('thawed filesystems')
            except (exception.InstanceQuiesceNotSupported,
                    exception.InstanceNotRunning,
                    exception.InstanceNotFound):
                pass
        disarm(instance_dir, FREEZE)
    if is_armed(instance_dir, PAUSE):
        if domain is not None:
            try:
                if is_paused(domain):
                    domain.resume()
                    done.append('resumed vcpus')
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise exception.HypervisorError(reason=str(exc))
        disarm(instance_dir, PAUSE)
    return done


# -- the periodic reconciler ----------------------------------------------------

FROZEN = 'frozen'
THAWED = 'thawed'


def agent_connected(domain):
    """True when the domain has a guest-agent channel libvirt sees open.

    Asking an agent that is absent or not connected only waits for the
    agent timeout; so does asking a paused guest, which the caller checks.
    """
    from xml.etree import ElementTree
    try:
        root = ElementTree.fromstring(domain.XMLDesc(0))
    except (libvirt.libvirtError, ElementTree.ParseError):
        return False
    for target in root.findall("./devices/channel/target"):
        if target.get('name') == 'org.qemu.guest_agent.0':
            return target.get('state') == 'connected'
    return False


def fsfreeze_status(domain, timeout):
    """The agent's ``guest-fsfreeze-status`` (FROZEN or THAWED), or None
    when it cannot be asked (not running, no agent, no answer in
    ``timeout`` seconds)."""
    import libvirt_qemu
    try:
        state, _reason = domain.state()
    except libvirt.libvirtError:
        return None
    if state not in (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_BLOCKED):
        return None
    if not agent_connected(domain):
        return None
    try:
        reply = libvirt_qemu.qemuAgentCommand(
            domain, '{"execute": "guest-fsfreeze-status"}',
            max(1, int(timeout)), 0)
        status = json.loads(reply).get('return')
    except (libvirt.libvirtError, ValueError, AttributeError) as exc:
        LOG.debug('guest-fsfreeze-status of %s: %s', domain.UUIDString(), exc)
        return None
    return status if status in (FROZEN, THAWED) else None


def release_stale_freeze(domain, instance_uuid, instance_dir, agent_timeout):
    """The reconciler's thaw: undo a freeze or pause nobody will end.

    The caller has made sure no freeze of this guest is in progress here.
    First what a watchdog token says (as at start-up: a guest its user
    paused stays paused), then the agent itself: a guest whose agent says
    ``frozen`` without any token (a freeze whose watchdog gave up, or one
    made behind our back) is thawed too. Returns what was done.
    """
    done = thaw_if_frozen(domain, instance_uuid, instance_dir)
    if domain is None:
        return done
    if fsfreeze_status(domain, agent_timeout) == FROZEN:
        # fsThaw waits for the agent; never longer than the reconciler's
        # agent timeout.
        bound_agent_wait(domain, agent_timeout)
        count = thaw(domain, instance_uuid)
        done.append('thawed %s filesystem(s) the guest agent reported '
                    'frozen' % count)
    return done
