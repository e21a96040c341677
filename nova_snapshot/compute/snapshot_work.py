"""Where snapshot work runs on one compute host.

* a bounded executor (twice ``[compute] max_concurrent_snapshots``
  workers) instead of a thread per snapshot;
* per-server locks (oslo.concurrency internal locks keyed by instance
  UUID): two snapshots, or two freezes, of one guest never overlap;
* the host's snapshot slots (the same number), shared by image-backed
  snapshots and volume-backed cuts;
* which servers have snapshot work here right now
  (:meth:`SnapshotWork.busy_instances`, read by the reconciler).

The server's lock is always taken before a slot: a snapshot waiting for
its own server never holds a slot another server could use. Every wait is
bounded by the caller's deadline (a ``time.monotonic()`` value); running
out raises :class:`~nova_snapshot.exception.Conflict` (409) naming what
was waited for.
"""

import collections
import concurrent.futures
import contextlib
import logging
import queue
import threading
import time

from oslo_concurrency import lockutils

from nova_snapshot import exception

LOG = logging.getLogger(__name__)


def seconds_left(deadline):
    return max(0.0, deadline - time.monotonic())


class BoundedExecutor(object):
    """At most ``workers`` daemon threads running submitted calls in
    order; started as needed.

    Not ``concurrent.futures.ThreadPoolExecutor``: its threads are joined
    at interpreter exit, so one snapshot stuck on a hung service would
    keep a stopping compute service alive. A snapshot cut short by the
    exit is repaired at the next start-up, as before.
    """

    def __init__(self, workers, name):
        self.workers = workers
        self.name = name
        self._queue = queue.Queue()
        self._threads = 0
        self._idle = 0       # threads waiting for work
        self._pending = 0    # submitted, not yet taken
        self._lock = threading.Lock()

    def submit(self, func, *args):
        future = concurrent.futures.Future()
        with self._lock:
            self._queue.put((future, func, args))
            self._pending += 1
            # A new thread only when the waiting ones cannot take it all.
            if self._pending > self._idle and self._threads < self.workers:
                self._threads += 1
                threading.Thread(target=self._work, daemon=True,
                                 name='%s-%d' % (self.name, self._threads)
                                 ).start()
        return future

    def _work(self):
        while True:
            with self._lock:
                self._idle += 1
            future, func, args = self._queue.get()
            with self._lock:
                self._idle -= 1
                self._pending -= 1
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(func(*args))
                except BaseException as exc:
                    future.set_exception(exc)


class SnapshotWork(object):

    def __init__(self, host, slots, workers=None):
        self.host = host
        self.slots = slots
        self._slots = threading.BoundedSemaphore(slots)
        # Twice the slots by default: a worker may wait for its server's
        # lock without a slot, and must not keep runnable work queued.
        self._executor = BoundedExecutor(workers or 2 * slots,
                                         'snapshot-%s' % host)
        # Our own container: the locks are this host's, not the process's
        # (several compute services share a process in tests).
        self._locks = lockutils.Semaphores()
        self._futures = set()
        self._busy = collections.Counter()
        self._lock = threading.Lock()

    # The executor

    def submit(self, name, func, *args):
        """Run ``func(*args)`` on the executor; exceptions are logged."""
        def run():
            try:
                func(*args)
            except Exception:
                LOG.exception('Background task %s failed', name)
        future = self._executor.submit(run)
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future):
        with self._lock:
            self._futures.discard(future)

    def wait(self, timeout=None):
        """Wait for the submitted work; True if none is left."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                futures = list(self._futures)
            if not futures:
                return True
            left = None if deadline is None else seconds_left(deadline)
            if left is not None and left <= 0:
                return False
            concurrent.futures.wait(futures, left)

    # Busy servers

    def mark_busy(self, instance_uuid):
        with self._lock:
            self._busy[instance_uuid] += 1

    def unmark_busy(self, instance_uuid):
        with self._lock:
            self._busy[instance_uuid] -= 1
            if self._busy[instance_uuid] <= 0:
                del self._busy[instance_uuid]

    @contextlib.contextmanager
    def busy(self, instance_uuid):
        self.mark_busy(instance_uuid)
        try:
            yield
        finally:
            self.unmark_busy(instance_uuid)

    def busy_instances(self):
        with self._lock:
            return set(self._busy)

    # Locks and slots

    @contextlib.contextmanager
    def locked(self, instance_uuid, deadline):
        """The server's lock, waited for until ``deadline``."""
        lock = lockutils.internal_lock(instance_uuid, semaphores=self._locks)
        started = time.monotonic()
        if not lock.acquire(timeout=seconds_left(deadline)):
            raise exception.Conflict(
                reason='timed out after %.0f s waiting for other snapshot '
                       'work on server %s to finish' % (
                           time.monotonic() - started, instance_uuid))
        try:
            yield
        finally:
            lock.release()

    @contextlib.contextmanager
    def locked_if_free(self, instance_uuid):
        """The server's lock without waiting: yields True while it is
        held here, False (and nothing held) when other work has it."""
        lock = lockutils.internal_lock(instance_uuid, semaphores=self._locks)
        acquired = lock.acquire(blocking=False)
        try:
            yield acquired
        finally:
            if acquired:
                lock.release()

    @contextlib.contextmanager
    def slot(self, deadline):
        """One of the host's snapshot slots, waited for until
        ``deadline``."""
        started = time.monotonic()
        if not self._slots.acquire(timeout=seconds_left(deadline)):
            raise exception.Conflict(
                reason='timed out after %.0f s waiting for one of the %d '
                       'snapshot slots of host %s' % (
                           time.monotonic() - started, self.slots,
                           self.host))
        try:
            yield
        finally:
            self._slots.release()

    @contextlib.contextmanager
    def held(self, instance_uuid, deadline):
        """The server's lock, then a slot: the order every caller keeps."""
        with self.locked(instance_uuid, deadline):
            with self.slot(deadline):
                yield
