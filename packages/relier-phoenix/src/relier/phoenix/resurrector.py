"""The resurrector: brings back the tasks of dead workers and the messages the broker lost.

Run it as ``rl run-resurrector`` (any number of replicas; every change it makes is a
compare-and-set, so replicas and restarts are harmless). Each pass does two things:

1. **Dead workers.** Worker leases are a sorted set scored by deadline; the expired ones are
   read in O(expired) (never a SCAN). Each task such a worker owned is re-queued on
   ``re-queue`` with the same id and attempt + 1, or dead-lettered with reason
   ``max_resurrections_exceeded`` once it has died too often, with the cause recorded.
2. **Lost messages.** kombu's Redis transport pops a message before it records it as unacked;
   a worker killed in between loses it, and the task would wait forever. Broker lists are
   FIFO, so once a queue's claimed watermark (or an empty list) has passed a task's sequence
   number for longer than ``RELIER_RESURRECTION_CLAIM_GRACE_PERIOD``, its message has left the
   list without being claimed: it is published again. Only those tasks are looked at, found by
   a range query on the queue's pending index, so a deep backlog costs nothing.

It slows down instead of flooding: while ``re-queue`` holds ``RELIER_RESURRECTION_MAX_QUEUE_DEPTH``
messages, re-queueing pauses. After (re)connecting it waits one lease TTL before judging any
lease, so that a Redis restart or a network cut does not make every live worker look dead.
"""

from __future__ import annotations

import collections
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable

import redis

from relier.core.queues import RECOVERY_QUEUE
from relier.core.settings import Settings
from relier.phoenix.ledger import Ledger
from relier.phoenix.port import LedgerPort

__all__ = ["PassReport", "Resurrector", "serve"]

log = logging.getLogger("relier.phoenix.resurrector")


class PassReport:
    """What one pass did (for logs, metrics and tests)."""

    __slots__ = ("dead_lettered", "dead_workers", "promoted", "republished", "requeued",
                 "throttled")

    def __init__(self) -> None:
        self.dead_workers = 0
        self.requeued = 0
        self.dead_lettered = 0
        self.republished = 0
        self.promoted = 0
        self.throttled = False

    def __bool__(self) -> bool:
        return bool(self.dead_workers or self.requeued or self.dead_lettered
                    or self.republished or self.promoted)

    def __repr__(self) -> str:
        return (f"PassReport(dead_workers={self.dead_workers}, requeued={self.requeued}, "
                f"dead_lettered={self.dead_lettered}, republished={self.republished}, "
                f"promoted={self.promoted}, throttled={self.throttled})")


class Resurrector:
    """The recovery loop. ``run_forever`` until ``stop`` (or a signal) ends it."""

    def __init__(self, settings: Settings | None = None, *,
                 ledger: LedgerPort | None = None) -> None:
        self.ledger: LedgerPort = ledger or Ledger(settings)
        self.settings = self.ledger.settings
        self.id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._stop = threading.Event()
        # Per queue: (monotonic time, frontier) samples; the frontier is the highest sequence
        # number known to have left the list.
        self._frontiers: dict[str, collections.deque[tuple[float, int]]] = {}
        self._settled: dict[str, int] = {}
        self._judge_after = 0.0
        self.passes = 0

    # -- the loop --------------------------------------------------------------------------------
    def run_forever(self) -> None:
        """Run passes until stopped; survive Redis outages."""
        log.info("resurrector %s started (lease ttl %.1fs, check every %.1fs)", self.id,
                 self.settings.heartbeat_ttl, self.settings.resurrection_check_interval)
        self._hold_judgement()
        backoff = 0.1
        while not self._stop.is_set():
            try:
                report, sleep_for = self.run_pass()
                backoff = 0.1
                if report:
                    log.info("pass: %r", report)
            except redis.RedisError as exc:
                log.warning("Redis unavailable (%s); retrying in %.1fs", exc, backoff)
                self._hold_judgement()
                sleep_for, backoff = backoff, min(backoff * 2, 5.0)
            self._stop.wait(sleep_for)
        log.info("resurrector %s stopped", self.id)

    def stop(self) -> None:
        """Ask the loop to end after the current pass."""
        self._stop.set()

    def _hold_judgement(self) -> None:
        # Workers renew every third of the TTL; one full TTL after we can see Redis again,
        # every live worker has renewed at least twice.
        self._judge_after = time.monotonic() + self.settings.heartbeat_ttl
        self._frontiers.clear()
        self._settled.clear()

    def run_pass(self) -> tuple[PassReport, float]:
        """One pass; returns what it did and how long to sleep before the next."""
        ledger, settings = self.ledger, self.settings
        report = PassReport()
        self.passes += 1
        try:
            ledger.mark_resurrector(self.id)
        except redis.exceptions.OutOfMemoryError:
            # Liveness is for `rl doctor`; recovery must go on while Redis is full, and the
            # scripts below are allowed to run at maxmemory because they only move work.
            log.warning("Redis is out of memory: resurrector liveness not recorded this pass")
        if time.monotonic() < self._judge_after:
            return report, min(settings.resurrection_check_interval,
                               self._judge_after - time.monotonic())

        # Scheduled tasks first: their promotion is what keeps a countdown on time, and it
        # does not add to re-queue, so the re-queue throttle below does not hold it back.
        report.promoted, until_due = ledger.promote_due(settings.resurrection_batch_size)
        wake = settings.resurrection_check_interval
        if until_due >= 0:
            # Wake up right at the next due time, not up to a whole interval late.
            wake = min(wake, max(0.005, until_due / 1000))

        # kombu's lists live on the broker, which may be another server than the ledger.
        depth = ledger.queue_depth(RECOVERY_QUEUE)
        if depth >= settings.resurrection_max_queue_depth:
            report.throttled = True
            log.warning("re-queue holds %d messages (RELIER_RESURRECTION_MAX_QUEUE_DEPTH=%d): "
                        "pausing resurrections until recovery workers catch up", depth,
                        settings.resurrection_max_queue_depth)
            return report, wake
        budget = min(settings.resurrection_batch_size,
                     settings.resurrection_max_queue_depth - depth)

        scan = ledger.expired_workers(100)
        for worker_id in scan.due:
            budget -= self._bury_worker(worker_id, budget, report, scan.now_ms)
            if budget <= 0:
                break
        self._recover_lost_messages(report)

        sleep_for = wake
        if scan.next_deadline_ms > 0:
            # Wake up right after the next lease deadline, not up to a whole interval late.
            sleep_for = min(sleep_for, max(0.01, (scan.next_deadline_ms - scan.now_ms) / 1000))
        return report, sleep_for

    # -- dead workers --------------------------------------------------------------------------
    def _bury_worker(self, worker_id: str, budget: int, report: PassReport,
                     now_ms: int) -> int:
        ledger = self.ledger
        worker = ledger.worker(worker_id)
        late = max(0.0, (now_ms - worker.deadline_ms) / 1000) if worker is not None else None
        who = worker.hostname if worker is not None and worker.hostname else worker_id
        done = 0
        for task_id in ledger.sample_worker_tasks(worker_id, budget):
            reply = ledger.requeue(
                task_id, owner=worker_id, kind="lease_expired",
                cause=f"lease expired: worker {who} stopped renewing (killed, OOM or frozen)",
                recovery_seconds=None if late is None else
                late + ledger.settings.heartbeat_ttl,
            )
            if reply.kind == "done":
                report.requeued += 1
                log.warning("worker %s is gone: task %s re-queued on %s", who, task_id,
                            RECOVERY_QUEUE)
            elif reply.kind == "dead":
                report.dead_lettered += 1
            done += 1
        if ledger.reap_worker(worker_id):
            report.dead_workers += 1
            log.warning("worker %s declared dead (lease expired)", who)
        return done

    # -- lost messages -------------------------------------------------------------------------
    def _recover_lost_messages(self, report: PassReport) -> None:
        ledger = self.ledger
        grace = self.settings.resurrection_claim_grace_period
        now = time.monotonic()
        marks = ledger.watermarks()
        if not marks:
            return
        # The lengths come from the broker (RELIER_BROKER_URL): on the coordination store a
        # separate broker's lists look empty, and every queued task would look lost.
        lengths = ledger.queue_depths(list(marks))
        for queue, (published, claimed) in marks.items():
            frontier = claimed
            if lengths[queue] == 0:
                frontier = max(frontier, published)
            samples = self._frontiers.setdefault(queue, collections.deque())
            samples.append((now, frontier))
            # The frontier as it stood a grace period ago: tasks at or behind it left the list
            # at least that long ago and still nobody claimed them.
            while samples and samples[0][0] <= now - grace:
                self._settled[queue] = samples.popleft()[1]
            settled = self._settled.get(queue, 0)
            if settled <= 0:
                continue
            lost = ledger.queued_up_to(queue, settled, self.settings.resurrection_batch_size)
            for task_id, seq in lost:
                reply = ledger.republish(task_id, queue, seq)
                if reply.kind == "done":
                    report.republished += 1
                    log.warning("task %s: its message left queue %s %.0fs ago and was never "
                                "claimed; published again", task_id, queue, grace)
                elif reply.kind == "dead":
                    report.dead_lettered += 1


def serve(settings: Settings, *, loglevel: str | None = None,
          before: Callable[[Settings], None] | None = None) -> None:
    """Run one resurrector in this process until SIGTERM or SIGINT: the one entry point.

    ``rl run-resurrector`` and ``python -m relier.phoenix.resurrector`` both run this.

    Args:
        settings: The settings in force.
        loglevel: Log level for stderr (default ``RELIER_LOG_LEVEL``).
        before: Run once logging is set up, before the first pass: ``rl run-resurrector``
            passes its preflight and telemetry start; ``python -m`` runs without them.
    """
    import signal
    import sys

    logging.basicConfig(level=(loglevel or settings.log_level).upper(), stream=sys.stderr,
                        format="[%(asctime)s: %(levelname)s/%(name)s] %(message)s")
    if before is not None:
        before(settings)
    resurrector = Resurrector(settings)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: resurrector.stop())
    resurrector.run_forever()


def main() -> int:
    """``python -m relier.phoenix.resurrector``: ``serve`` with the settings in force."""
    from relier.core.settings import get_settings

    serve(get_settings())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
