"""The bookkeeping of one action on one instance, in one place.

What Nova spreads over ``wrap_instance_event``, ``wrap_instance_fault``,
``reverts_task_state`` and the notification calls of each method: the
action event's start and finish, the instance fault, the undo of what the
action made, the task-state release and the ``start``/``end``/``error``
notifications. The compute manager wraps each action in an
:class:`ActionRecord`::

    with self._record(context, uuid, 'compute_pause_instance',
                      notify=..., revert_task_state='pausing') as record:
        instance = ...
        record.start(instance)      # the start notification
        ...                         # the work
        record.instance = instance  # what the end notification shows

An exception leaving the block is recorded according to its
:class:`Outcome` (first match in ``outcomes``; anything else is
:data:`FAILED`) and swallowed, unless ``reraise`` (an RPC call, whose
caller must see it). Failure order: undo hooks, fault, event, release
(task state), error notification: whoever sees the task state released
also finds the fault and the failed event.
"""

import logging
import traceback

from nova_snapshot import exception

LOG = logging.getLogger(__name__)


class Outcome(object):
    """How one kind of failure is recorded.

    :param fault: write an instance fault.
    :param notify: send the error notification (only after a start).
    :param release: run the release hooks and the task-state revert.
    :param level: log level; ``traceback`` also logs and records it.
    """

    def __init__(self, name, fault=True, notify=True, release=True,
                 level=logging.ERROR, traceback=True):
        self.name = name
        self.fault = fault
        self.notify = notify
        self.release = release
        self.level = level
        self.traceback = traceback

    def __repr__(self):
        return 'Outcome(%s)' % self.name


#: Anything unexpected: every record, the task state given back.
FAILED = Outcome('failed')
#: The instance was deleted (or is being deleted) under the action: the
#: delete owns it now; only the event says what happened.
GONE = Outcome('gone', fault=False, notify=False, release=False,
               level=logging.INFO, traceback=False)
#: Someone else owns the instance's task state: leave it alone.
PREEMPTED = Outcome('preempted', fault=False, notify=False, release=False,
                    level=logging.WARNING, traceback=False)

GONE_ERRORS = (exception.InstanceNotFound,
               exception.UnexpectedDeletingTaskStateError)
DEFAULT_OUTCOMES = ((GONE_ERRORS, GONE),
                    (exception.UnexpectedTaskStateError, PREEMPTED))


class ActionRecord(object):
    """One action's records; a context manager (see the module doc).

    :param recorder: the compute manager (``_event_start``,
        ``_event_finish``, ``_fault``, ``_revert_task_state``).
    :param notify: ``notify(instance, phase, exc=None, **extra)`` or None.
    :param revert_task_state: on a failure that releases, task_state
        goes from this value (or tuple) back to None by compare-and-swap.
    :param reraise: pass the exception on after recording it.
    """

    def __init__(self, recorder, context, instance_uuid, event, notify=None,
                 outcomes=DEFAULT_OUTCOMES, revert_task_state=None,
                 reraise=False):
        self.recorder = recorder
        self.context = context
        self.instance_uuid = instance_uuid
        self.event = event
        self.notify = notify
        self.outcomes = outcomes
        self.revert_task_state = revert_task_state
        self.reraise = reraise
        #: The newest instance dict, shown by the notifications.
        self.instance = None
        #: Event details on success.
        self.details = None
        #: Extra notification payload (``volume_id``, ``image_id``).
        self.extra = {}
        #: The outcome of the failure, once there was one.
        self.outcome = None
        self.started = False
        self._begun = False
        self._undo = []
        self._release = []
        self._always = []

    # Set-up

    def begin(self):
        """Start the action event (``__enter__`` does it if not yet)."""
        if not self._begun:
            self._begun = True
            self.recorder._event_start(self.context, self.instance_uuid,
                                       self.event)
        return self

    def start(self, instance):
        """The instance is ours: send the start notification."""
        self.instance = instance
        self.started = True
        self._send('start')

    def on_failure(self, hook):
        """``hook(exc, outcome)`` undoes what the action made; runs first
        on every failure (a hook decides by the outcome)."""
        self._undo.append(hook)

    def on_release(self, hook):
        """``hook(exc)`` gives the instance back after the records; only
        for outcomes that release."""
        self._release.append(hook)

    def finally_(self, hook):
        """``hook()`` runs last, success or not."""
        self._always.append(hook)

    # The context manager

    def __enter__(self):
        return self.begin()

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc is None:
                self._succeeded()
            elif isinstance(exc, Exception):
                self._failed(exc, tb)
        finally:
            for hook in self._always:
                self._quietly(hook)
        if exc is None or not isinstance(exc, Exception):
            return False
        return not self.reraise

    def finish_unstarted(self, exc):
        """Close a begun record whose block never ran (e.g. the work
        could not be queued), as a failure."""
        self._failed(exc, exc.__traceback__)
        for hook in self._always:
            self._quietly(hook)

    # Outcomes

    def outcome_of(self, exc):
        for errors, outcome in self.outcomes:
            if isinstance(exc, errors):
                return outcome
        return FAILED

    def _succeeded(self):
        self._send('end')
        self._finish_event(details=self.details)

    def _failed(self, exc, tb):
        outcome = self.outcome = self.outcome_of(exc)
        LOG.log(outcome.level, '%s of instance %s: %s (%s)', self.event,
                self.instance_uuid, exc, outcome.name,
                exc_info=(type(exc), exc, tb) if outcome.traceback else None)
        text = None
        if outcome.traceback:
            text = ''.join(traceback.format_exception(type(exc), exc, tb))
        for hook in self._undo:
            self._quietly(hook, exc, outcome)
        if outcome.fault:
            self.recorder._fault(self.instance_uuid, exc)
        self._finish_event(exc=exc, tb=text, details=self.details)
        if outcome.release:
            for hook in self._release:
                self._quietly(hook, exc)
            if self.revert_task_state is not None:
                reverted = self._quietly(
                    self.recorder._revert_task_state, self.instance_uuid,
                    self.revert_task_state)
                if reverted:
                    self.instance = reverted
        if outcome.notify:
            self._send('error', exc)

    # Helpers

    def _send(self, phase, exc=None):
        if self.notify is None or self.instance is None:
            return
        if phase != 'start' and not self.started:
            return
        self._quietly(self.notify, self.instance, phase, exc=exc,
                      **self.extra)

    def _finish_event(self, **kwargs):
        try:
            self.recorder._event_finish(self.context, self.instance_uuid,
                                        self.event, **kwargs)
        except Exception:
            # The database may be the failure being recorded.
            LOG.warning('Could not finish event %s of %s', self.event,
                        self.instance_uuid, exc_info=True)

    def _quietly(self, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Exception:
            LOG.warning('%s of %s: %s failed', self.event,
                        self.instance_uuid,
                        getattr(func, '__name__', func), exc_info=True)
            return None
