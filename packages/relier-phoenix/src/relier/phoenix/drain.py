"""Drain: zero loss on deploy.

On SIGTERM (or ``rl worker drain``) Celery stops consuming and kombu hands reserved messages
back to their queues. The drain then lets running tasks finish until
``RELIER_GRACEFUL_SHUTDOWN_TIMEOUT``; whatever still runs at the deadline is handed off
(lease released, re-queued on ``re-queue`` with its last checkpoint) and only the runs of the
handed-off tasks are stopped, so the worker exits 0 without losing or duplicating a committed
result: a handed-off run that still finishes here is fenced off by the new epoch. A run that
finished is never stopped: its pool child may still be reporting the result to Celery, and
killing it then made Celery log ``WorkerLostError`` and the worker publish the task again.

Progress is read from the ledger (the worker's set of owned tasks), not from the worker's own
event loop, which may be busy running a task (solo pool) during the wait.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Collection

import redis

from relier.core.settings import Settings
from relier.phoenix.lease import LeaseKeeper
from relier.phoenix.ledger import Ledger
from relier.phoenix.port import LedgerPort

__all__ = ["Drain", "request_drain", "shutting_down"]

log = logging.getLogger("relier.phoenix.drain")

#: Set when a drain begins in this process (the worker's main process).
_draining = threading.Event()


class Drain:
    """Runs one drain of this worker process.

    Args:
        keeper: The worker's lease keeper.
        stop_runs: Stops the runs of the tasks it is given (all handed off, so already
            re-queued). For a process pool it ends their pool children the way Celery cancels
            a job; without one (solo and threads pools run tasks in this process) it is None
            and the process exits at once when anything was handed off.
    """

    def __init__(self, keeper: LeaseKeeper,
                 stop_runs: Callable[[Collection[str]], None] | None) -> None:
        self.keeper = keeper
        self.stop_runs = stop_runs
        self.timeout = keeper.ledger.settings.graceful_shutdown_timeout
        self.handed_off: list[str] = []
        self.finished = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def begin(self, timeout: float | None = None) -> None:
        """Start draining in a background thread (idempotent)."""
        with self._lock:
            if self._thread is not None:
                return
            if timeout is not None:
                self.timeout = timeout
            _draining.set()
            self._thread = threading.Thread(target=self._run, name="relier-drain", daemon=True)
            self._thread.start()

    def wait(self) -> None:
        """Block until the drain is over (or a little past its deadline)."""
        if self._thread is not None:
            self._thread.join(self.timeout + 30)

    def _run(self) -> None:
        keeper = self.keeper
        deadline = time.monotonic() + self.timeout
        try:
            keeper.set_state("draining")
            log.warning("worker %s draining: running tasks get %.0fs to finish",
                        keeper.hostname, self.timeout)
            while time.monotonic() < deadline:
                owned = keeper.owned()
                if not owned:
                    log.warning("worker %s drained: every task finished", keeper.hostname)
                    return
                time.sleep(0.1)
            for task_id in sorted(keeper.owned()):
                reply = keeper.release(
                    task_id, kind="handoff",
                    cause=f"drain deadline ({self.timeout:g}s) passed during shutdown",
                )
                # Either way the task is no longer this run's: re-queued ("done"), or
                # dead-lettered past RELIER_MAX_HANDOFFS ("dead"). Its run must be stopped in
                # both cases, or Celery's warm shutdown would wait for it past the deadline.
                if reply.kind in ("done", "dead"):
                    self.handed_off.append(task_id)
                if reply.kind == "done":
                    log.warning("task %s handed off to another worker (with its checkpoint)",
                                task_id)
            log.warning("worker %s drained: %d task(s) handed off, 0 lost", keeper.hostname,
                        len(self.handed_off))
            if not self.handed_off:
                # Every task finished between the last look and the deadline: nothing to stop,
                # Celery's warm shutdown collects the results still on their way.
                return
            if self.stop_runs is not None:
                self.stop_runs(self.handed_off)
            else:
                keeper.stop()
                logging.shutdown()
                os._exit(0)  # the abandoned runs live in this process; nothing else is left
        except redis.RedisError as exc:
            log.error("drain could not reach Redis (%s): remaining tasks will be resurrected "
                      "when this worker's lease expires", exc)
        finally:
            self.finished.set()


def shutting_down(ledger: LedgerPort, worker_id: str, *, settle: float = 1.0) -> bool:
    """True when the worker ``worker_id`` is draining or shutting down.

    Only then may a run interrupted by ``CancelledError``, ``SystemExit`` or
    ``KeyboardInterrupt`` be handed off; at any other time the body raised it itself. The
    worker's main process knows from its own drain and Celery's shutdown flags; a pool child
    asks the ledger (the drain records ``state=draining`` in the worker's facts). The drain
    records that from its own thread right after the signal, so a child that was interrupted
    by the same signal looks again for up to ``settle`` seconds before it concludes no.
    """
    from celery.worker import state as worker_state

    deadline = time.monotonic() + settle
    while True:
        if _draining.is_set() or worker_state.should_stop is not None or \
                worker_state.should_terminate is not None:
            return True
        if worker_id:
            try:
                state = ledger.worker_state(worker_id)
            except redis.RedisError:
                state = ""
            if state == "draining":
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def request_drain(hostname: str, timeout: float | None = None,
                  settings: Settings | None = None) -> list[str]:
    """Ask every live worker process of Celery node ``hostname`` to drain and exit.

    The worker notices at its next lease renewal (within a third of the lease TTL) and drains
    as on SIGTERM, with ``timeout`` (default ``RELIER_GRACEFUL_SHUTDOWN_TIMEOUT``).

    Returns:
        The lease ids of the workers asked to drain (empty: no such live worker).

    Raises:
        ValueError: ``timeout`` is nan, infinite or negative.
    """
    if timeout is not None and not (math.isfinite(timeout) and timeout >= 0):
        # nan or a negative number would hand off every run at once; inf never ends.
        raise ValueError(f"drain timeout must be a finite number of seconds, 0 or more; got "
                         f"{timeout!r}")
    ledger = Ledger(settings)
    wanted = ledger.settings.graceful_shutdown_timeout if timeout is None else timeout
    return ledger.request_drain(hostname, wanted)
