"""Worker leases: one thread per worker process keeps every running task of the worker alive.

The lease belongs to the worker's main (consumer) process, not to the task: one renewal per
interval covers all tasks, however many there are (I6), and a pool child pinning the GIL in a
CPU-bound task cannot starve it (it is another process). A worker that stops renewing, because
it was SIGKILLed, OOM-killed or frozen, loses its lease after ``RELIER_HEARTBEAT_TTL`` and the
resurrector re-queues its tasks (I4).

The keeper also reconciles: when Redis says the worker owns more tasks than the worker is
actually running (a pool child died and the parent's notice failed, or a completion could not
be written), the extra ones are released after being seen twice.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable

import redis

from relier.core.ops import TransitionReply
from relier.core.record import EPOCH, MESSAGE_QUEUE, MESSAGE_SEQ, OWNER, STATE
from relier.phoenix.ledger import retry_transient
from relier.phoenix.port import LedgerPort
from relier.phoenix.views import (
    FACT_HOST,
    FACT_HOSTNAME,
    FACT_PID,
    FACT_QUEUES,
    FACT_STARTED,
    FACT_STATE,
)

__all__ = ["LeaseKeeper", "current_keeper"]

log = logging.getLogger("relier.phoenix.lease")

_current: LeaseKeeper | None = None


def current_keeper() -> LeaseKeeper | None:
    """The lease keeper of this worker (set in the main process, inherited by pool children)."""
    return _current


class LeaseKeeper:
    """Registers a worker process and renews its lease from a background thread.

    Args:
        ledger: The ledger of this worker.
        hostname: Celery node name (``celery@host``).
        queues: Queues the worker consumes (shown by ``rl worker list`` and ``rl doctor``).
        active_ids: Returns the ids of the tasks this process is running right now.
        on_drain: Called from the keeper thread when a drain is requested remotely, with the
            requested timeout in seconds.
        facts: Extra facts to record (pool, concurrency, ...).
    """

    #: Child deaths remembered until their second report (one per task; oldest dropped).
    MAX_LOST = 1024

    def __init__(
        self,
        ledger: LedgerPort,
        *,
        hostname: str,
        queues: list[str],
        active_ids: Callable[[], set[str]],
        on_drain: Callable[[float], None] | None = None,
        facts: dict[str, str] | None = None,
    ) -> None:
        self.ledger = ledger
        self.hostname = hostname
        self.worker_id = f"{hostname}:{os.getpid()}:{secrets.token_hex(3)}"
        self.active_ids = active_ids
        self.on_drain = on_drain
        self.facts = {
            FACT_HOSTNAME: hostname,
            FACT_HOST: socket.gethostname(),
            FACT_PID: str(os.getpid()),
            FACT_QUEUES: ",".join(queues),
            FACT_STARTED: str(int(time.time() * 1000)),
            FACT_STATE: "running",
            **(facts or {}),
        }
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._suspects: set[str] = set()
        # Tasks this process handed off (drain): their message is already published again.
        self._handed_off: set[str] = set()
        # Child deaths released by one of their two reports (ChildWatch, Celery's
        # WorkerLostError): task id -> (the report that released it, the epoch of the run
        # that died, 0 if it had not claimed). Bounded: a death reported once leaves an entry.
        self._lost: dict[str, tuple[str, int]] = {}
        self._lost_lock = threading.Lock()
        self.renewals = 0
        self.lost_leases = 0

    @property
    def ttl_ms(self) -> int:
        """Lease length in ms."""
        return int(self.ledger.settings.heartbeat_ttl * 1000)

    def register(self) -> None:
        """Take the lease (call before consuming; raises if Redis is unreachable)."""
        global _current
        self.ledger.register_worker(self.worker_id, ttl_ms=self.ttl_ms, facts=self.facts)
        _current = self
        log.info("worker %s holds lease %s (ttl %.1fs)", self.hostname, self.worker_id,
                 self.ledger.settings.heartbeat_ttl)

    def start(self) -> None:
        """Register, then renew every third of the TTL until ``stop``."""
        self.register()
        self._thread = threading.Thread(target=self._run, name="relier-lease", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        interval = self.ledger.settings.heartbeat_interval
        next_at = time.monotonic()
        while not self._stop.is_set():
            next_at += interval
            try:
                self.renew()
            except redis.RedisError as exc:
                log.warning("lease renewal failed (%s); retrying. Tasks stay safe: if this "
                            "lasts beyond RELIER_HEARTBEAT_TTL they are resurrected elsewhere",
                            exc)
            except Exception:
                log.exception("lease renewal crashed; retrying")
            # Sleep to a fixed schedule, so a slow renewal does not push the next one late.
            self._stop.wait(max(0.0, next_at - time.monotonic()))
            if time.monotonic() - next_at > interval:
                next_at = time.monotonic()

    def renew(self) -> None:
        """One renewal (one round trip), plus reconciliation when Redis disagrees with us."""
        ledger = self.ledger
        reply = ledger.renew_worker(self.worker_id, ttl_ms=self.ttl_ms)
        self.renewals += 1
        if reply.lost:
            self.on_lease_lost()
            return
        if reply.drain and self.on_drain is not None:
            ledger.clear_drain_request(self.worker_id)
            self.on_drain(float(reply.drain))
        if reply.running > len(self.active_ids()):
            self.reconcile()
        else:
            self._suspects.clear()

    def on_lease_lost(self) -> None:
        """Fence every run of an expired lease, then register again.

        The resurrector may already be re-queueing these tasks from a scan it made while the
        lease was expired, and a late renewal must not revive it (``worker_renew`` refuses).
        So every task the old lease owned is re-queued here, before the new registration (with
        kind ``lease_expired``, whose script acts only while the lease is still expired): the
        outcome is then the same whichever of us gets there first, and no task is left owned
        by a lease that nobody will ever expire again. From that moment the runs still going
        in this worker are fenced: their checkpoints, result and dead-letter are compare-and-
        sets on the epoch, and the record is no longer theirs, so every write they attempt is
        refused (and logged as "run fenced off"). A pool child runs in another process, so the
        script's fence, not a flag here, is what stops them committing.
        """
        ledger = self.ledger
        self.lost_leases += 1
        owned = sorted(self.owned())
        # Every run in progress here was claimed under the old lease (a claim needs a live
        # one), so each is fenced, whether re-queued below or by the resurrector already.
        running = sorted(self.active_ids())
        log.error(
            "worker %s lost its lease (silent longer than RELIER_HEARTBEAT_TTL=%.1fs: paused, "
            "swapping, or cut off from Redis). Its runs are fenced: %s re-queued for another "
            "incarnation, and every write from the old runs here (%s) will be refused. "
            "Registering again.",
            self.hostname, ledger.settings.heartbeat_ttl,
            f"{len(owned)} task(s) ({', '.join(owned)})" if owned else "no task",
            ", ".join(running) or "none running",
        )
        for task_id in owned:
            reply = self.release(
                task_id, kind="lease_expired",
                cause=f"lease expired: worker {self.hostname} was silent longer than "
                      f"{ledger.settings.heartbeat_ttl:g}s (paused, swapping or cut off) and "
                      "renewed too late",
            )
            log.error("task %s: run fenced (lease lost): %s", task_id,
                      {"done": "re-queued", "dead": "dead-lettered (max_resurrections)",
                       "skipped": "already finished or re-queued"}[reply.kind])
        self.register()

    def reconcile(self) -> None:
        """Release tasks Redis says we own but we are not running (seen twice in a row)."""
        owned = self.owned()
        orphans = owned - self.active_ids()
        confirmed, self._suspects = orphans & self._suspects, orphans - self._suspects
        for task_id in confirmed:
            reply = self.release(task_id, kind="killed",
                                 cause="the worker no longer runs it (its pool child died)")
            log.warning("task %s released by reconciliation: %s", task_id, reply.kind)

    def release(self, task_id: str, *, kind: str, cause: str, epoch: int = 0
                ) -> TransitionReply:
        """Give up one of our tasks: re-queue it for another run (or dead-letter it).

        With ``epoch`` > 0, only if that incarnation of the task is the one running.
        """
        reply = retry_transient(
            lambda: self.ledger.requeue(task_id, owner=self.worker_id, kind=kind,  # type: ignore[arg-type]
                                        cause=cause, epoch=epoch),
            f"release of {task_id}",
        )
        if kind == "handoff" and reply.kind == "done":
            self._handed_off.add(task_id)
        return reply

    def release_lost(self, task_id: str, cause: str, source: str = "celery") -> str:
        """A pool child died under ``task_id``: run it again now (I4, no TTL wait).

        If the child died before it claimed the task, the broker message is already gone
        (acknowledged at pickup), so the task is published again at once. A task this process
        handed off is not: its hand-off published it again already, and a second message
        would be a duplicate.

        One death is reported twice, by ``source`` ``"watch"`` (ChildWatch) and ``"celery"``
        (WorkerLostError), in either order, and a sibling child (same lease id) may claim the
        next run in between. The release is a compare-and-set on the epoch of the run that
        died, read at the first report: the other report then ends nothing.
        """
        if task_id in self._handed_off:
            return "skipped"
        with self._lost_lock:
            first = self._lost.pop(task_id, None)
            if first is not None and first[0] != source:
                # The other report of a death already released: only that run may end.
                if first[1] and self.release(task_id, kind="killed", cause=cause,
                                             epoch=first[1]).kind != "skipped":
                    return "done"
                return "skipped"
            rec = self.ledger.record_fields(task_id, STATE, OWNER, EPOCH, MESSAGE_QUEUE,
                                            MESSAGE_SEQ)
            died = rec.epoch if rec.state == "running" and rec.owner == self.worker_id else 0
            if len(self._lost) >= self.MAX_LOST:
                self._lost.pop(next(iter(self._lost)))
            self._lost[task_id] = (source, died)
            if died:
                reply = self.release(task_id, kind="killed", cause=cause, epoch=died)
                if reply.kind != "skipped":
                    return reply.kind
                rec = self.ledger.record_fields(task_id, STATE, MESSAGE_QUEUE, MESSAGE_SEQ)
            if rec.state == "queued" and rec.message_queue and rec.message_seq:
                return "republished" if self.ledger.republish(
                    task_id, rec.message_queue, rec.message_seq).kind == "done" else "skipped"
            return "skipped"

    def owned(self) -> set[str]:
        """Ids of the tasks the ledger says this worker runs."""
        return self.ledger.worker_tasks(self.worker_id)

    def set_state(self, state: str) -> None:
        """Record the worker's state (``running``, ``draining``) for operators."""
        self.ledger.set_worker_state(self.worker_id, state)

    def stop(self) -> None:
        """Stop renewing and give the lease back (clean exit: no task left to resurrect)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            if self.ledger.reap_worker(self.worker_id, force=True):
                log.info("worker %s left; lease returned", self.hostname)
            else:
                log.warning("worker %s left with tasks still owned; the resurrector will "
                            "re-queue them when the lease expires", self.hostname)
        except redis.RedisError as exc:
            log.warning("could not return the lease (%s); it expires on its own", exc)
