"""Phoenix on a Celery worker: the lease bootstep, child-loss release and drain.

``install(app)`` adds a worker bootstep and connects two signals (``weak=False``):

- the bootstep runs preflight (strict by default: a worker refuses to start on a Redis that
  could lose tasks), takes the worker's lease before the consumer starts, renews it from a
  thread, and on shutdown waits for the drain before giving the lease back;
- ``task_failure`` with ``WorkerLostError`` (a pool child died under a task while the main
  process lives) releases that task at once, with the signal or exit code as the cause (I4);
- ``worker_shutting_down`` (SIGTERM) starts the drain;
- ``task_unknown`` (a message for a task this worker did not register, which Celery drops)
  puts the task back, after a delay, for a worker that has it, or dead-letters it as
  ``UnregisteredTask``.

The bootstep also publishes the worker's registered Relier task names in its facts, and warns
loudly when there is none (the worker would run nothing).

``uninstall(app)`` disconnects the signals; the bootstep stays registered on the app class
until the app is discarded (Celery has no way to remove one).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from collections.abc import Collection
from typing import Any

from celery import Celery, bootsteps
from celery.exceptions import WorkerLostError
from celery.signals import task_failure, task_unknown, worker_shutting_down
from celery.worker import state as worker_state

from relier.core.connection import redis_client
from relier.core.exceptions import PreflightError
from relier.core.preflight import preflight
from relier.phoenix.drain import Drain
from relier.phoenix.lease import LeaseKeeper, current_keeper
from relier.phoenix.ledger import Ledger
from relier.phoenix.registry import (
    TASKS_FACT,
    handle_unknown,
    registered_task_names,
    relier_task_names,
)
from relier.phoenix.resurrector import Resurrector

__all__ = ["PhoenixStep", "install", "uninstall"]

log = logging.getLogger("relier.phoenix")

_drain: Drain | None = None
_requested_timeout: float | None = None


def _active_ids() -> set[str]:
    # Reserved (prefetched) requests too: a plain Celery task is claimed when its message
    # arrives, before a pool slot takes it.
    return {request.id for request in [*worker_state.active_requests,
                                       *worker_state.reserved_requests]}


def _request_drain(timeout: float) -> None:
    # Called from the lease thread when `rl worker drain` asked for it: behave as on SIGTERM.
    global _requested_timeout
    _requested_timeout = timeout
    os.kill(os.getpid(), signal.SIGTERM)


class ChildWatch:
    """Notices a dead pool child within ~0.1 s and releases its task at once (I4).

    Celery learns of a child's death from its pool maintenance, which can take seconds; this
    thread looks at the children running tasks (``waitid`` with ``WNOWAIT``, which reads an
    exit status without reaping the child, so billiard still sees it).
    """

    INTERVAL = 0.1

    def __init__(self, keeper: LeaseKeeper) -> None:
        self.keeper = keeper
        self._stop = threading.Event()
        self._released: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="relier-childwatch",
                                        daemon=True)

    @staticmethod
    def supported() -> bool:
        """``waitid`` exists (Linux, most Unixes; not macOS)."""
        return hasattr(os, "waitid")

    def start(self) -> None:
        """Start watching."""
        self._thread.start()

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.INTERVAL):
            try:
                self.check()
            except Exception:
                log.exception("child watch failed; Celery's own detection still applies")

    def check(self) -> None:
        """One look at every child that runs a task."""
        running = set()
        for request in list(worker_state.active_requests):
            running.add(request.id)
            pid = getattr(request, "worker_pid", None)
            if not pid or request.id in self._released:
                continue
            try:
                info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                continue  # already reaped by the pool: Celery reports it itself
            if info is None:
                continue
            if info.si_code in (os.CLD_KILLED, os.CLD_DUMPED):
                cause = f"pool child died: signal {info.si_status} " \
                        f"({signal.Signals(info.si_status).name})"
            else:
                cause = f"pool child died: exitcode {info.si_status}"
            self._released.add(request.id)
            outcome = self.keeper.release_lost(request.id, cause, source="watch")
            log.warning("task %s: %s (pid %d); released for another run (%s)", request.id,
                        cause, pid, outcome)
        self._released &= running


class PhoenixStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Worker bootstep: preflight, lease, drain. Starts after the pool, before the consumer."""

    requires = ("celery.worker.components:Pool",)
    label = "Relier Phoenix"

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        # Created here, before the pool forks, so that pool children inherit the lease id
        # they claim tasks under.
        ledger = Ledger()
        queues = sorted(q.name for q in worker.app.amqp.queues.consume_from.values()) if (
            worker.app.amqp.queues.consume_from) else sorted(worker.app.amqp.queues)
        # Every module the worker imports (RELIER_IMPORTS, --include, a local tasks.py) is
        # imported by now: these are the tasks this worker can run, published with its lease.
        self.task_names = registered_task_names(worker.app.tasks)
        self.relier_names = relier_task_names(worker.app.tasks)
        self.keeper = LeaseKeeper(
            ledger, hostname=worker.hostname, queues=queues, active_ids=_active_ids,
            on_drain=_request_drain,
            facts={"pool": getattr(worker.pool_cls, "__module__", "").rsplit(".", 1)[-1],
                   "concurrency": str(worker.concurrency),
                   TASKS_FACT: json.dumps(self.task_names)},
        )
        import relier.phoenix.lease as lease_module

        lease_module._current = self.keeper

    def start(self, worker: Any) -> None:
        """Preflight, then take the lease and start renewing it."""
        global _drain
        ledger = self.keeper.ledger
        try:
            preflight(redis_client(ledger.settings), ledger.settings)
        except PreflightError as exc:
            log.critical("%s", exc)
            raise
        self.keeper.start()
        plain = sorted(set(self.task_names) - set(self.relier_names))
        if self.relier_names or plain:
            log.info("worker %s runs %d Relier task(s): %s; and %d plain Celery task(s) "
                     "under the ledger: %s", worker.hostname, len(self.relier_names),
                     ", ".join(self.relier_names) or "-", len(plain), ", ".join(plain) or "-")
        else:
            log.warning(
                "\n%s\nworker %s has NO Relier task registered: every message it takes is "
                "dead-lettered as UnregisteredTask or re-queued for another worker.\nSet "
                "RELIER_IMPORTS to the modules holding your tasks (e.g. "
                "RELIER_IMPORTS=myproject.tasks), pass --include, or start the worker in the "
                "directory that holds tasks.py.\n%s", "!" * 78, worker.hostname, "!" * 78)
        stop_runs = self._stop_runs(worker)
        _drain = Drain(self.keeper, stop_runs=stop_runs)
        self.resurrector: Resurrector | None = None
        if ledger.settings.resurrector_in_worker:
            self.resurrector = Resurrector(ledger.settings)
            threading.Thread(target=self.resurrector.run_forever, name="relier-resurrector",
                             daemon=True).start()
        if stop_runs is not None and ChildWatch.supported():
            self.watch: ChildWatch | None = ChildWatch(self.keeper)
            self.watch.start()
        else:
            self.watch = None

    @staticmethod
    def _stop_runs(worker: Any) -> Any:
        pool = getattr(worker, "pool", None)
        if getattr(getattr(pool, "_pool", None), "_pool", None) is None:
            return None  # solo or threads: the runs live in this process

        def cancel_runs(task_ids: Collection[str]) -> None:
            # Cancelled the way Celery cancels a job (billiard's terminate_job): a controlled
            # termination, so Celery neither logs WorkerLostError nor fires task_failure, and
            # nothing re-publishes a task whose hand-off already did. Only these runs are
            # stopped; a child finishing another task still reports its result.
            wanted = set(task_ids)
            for request in list(worker_state.active_requests):
                if request.id in wanted:
                    request.cancel(pool, signal=signal.SIGKILL, emit_retry=False)

        return cancel_runs

    def stop(self, worker: Any) -> None:
        """Wait for the drain (if any) to end, then give the lease back."""
        if _drain is not None:
            _drain.wait()
        if getattr(self, "resurrector", None) is not None:
            self.resurrector.stop()  # type: ignore[union-attr]
        if getattr(self, "watch", None) is not None:
            self.watch.stop()  # type: ignore[union-attr]
        self.keeper.stop()


def _on_task_failure(sender: Any = None, task_id: str | None = None,
                     exception: BaseException | None = None, **_: Any) -> None:
    keeper = current_keeper()
    if keeper is None or task_id is None or not isinstance(exception, WorkerLostError):
        return
    # "Worker exited prematurely: signal 9 (SIGKILL) Job: 3." -> the cause, in words.
    cause = str(exception).replace("Worker exited prematurely: ", "pool child died: ")
    cause = cause.split(" Job:")[0]
    try:
        outcome = keeper.release_lost(task_id, cause, source="celery")
        if outcome != "skipped":
            log.warning("task %s: %s; released for another run (%s)", task_id, cause, outcome)
    except Exception:
        log.exception("could not release task %s after its pool child died; the lease "
                      "reconciliation will retry", task_id)


def _on_task_unknown(sender: Any = None, message: Any = None, name: str | None = None,
                     **kwargs: Any) -> None:
    # Celery has rejected the message (it is gone from the broker) and logged the error; the
    # task must still leave one way: re-queued for a worker that has it, or dead-lettered.
    keeper = current_keeper()
    task_id = kwargs.get("id")
    if keeper is None or message is None or not name or not task_id:
        return
    body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
    queue = (message.delivery_info or {}).get("routing_key") or ""
    try:
        outcome = handle_unknown(
            keeper.ledger, task_id=task_id, name=name, queue=queue, body=body,
            headers=message.headers or {}, content_type=message.content_type or "",
            content_encoding=message.content_encoding or "",
        )
    except Exception:
        log.exception("task %s (%s): not registered here, and it could not be re-queued or "
                      "dead-lettered; the resurrector's lost-message pass re-publishes it",
                      task_id, name)
        return
    if outcome == "dead":
        log.error("task %s dead-lettered as UnregisteredTask: no live worker registered %r "
                  "(`rl dlq show %s`)", task_id, name, task_id)
    elif outcome == "deferred":
        log.warning("task %s (%s) is not registered by this worker (%s); the workers that have "
                    "it are busy, it is put back for them shortly", task_id, name,
                    keeper.hostname)
    elif outcome == "put_back":
        log.warning("task %s (%s) is not registered by this worker (%s); re-queued for a worker "
                    "that has it", task_id, name, keeper.hostname)


def _on_shutting_down(sig: str | None = None, how: str | None = None, **_: Any) -> None:
    if _drain is not None:
        _drain.begin(_requested_timeout)


def install(app: Celery) -> Celery:
    """Add Phoenix to a Celery app (idempotent)."""
    if PhoenixStep not in app.steps["worker"]:
        app.steps["worker"].add(PhoenixStep)
    task_failure.connect(_on_task_failure, weak=False, dispatch_uid="relier-phoenix-loss")
    worker_shutting_down.connect(_on_shutting_down, weak=False,
                                 dispatch_uid="relier-phoenix-drain")
    task_unknown.connect(_on_task_unknown, weak=False, dispatch_uid="relier-phoenix-unknown")
    return app


def uninstall(app: Celery) -> None:
    """Disconnect Phoenix's signals."""
    task_failure.disconnect(dispatch_uid="relier-phoenix-loss")
    worker_shutting_down.disconnect(dispatch_uid="relier-phoenix-drain")
    task_unknown.disconnect(dispatch_uid="relier-phoenix-unknown")
