"""Which worker can run which task, and what happens to a message nobody here registered.

Every worker publishes the sorted names of the tasks it registered (Relier tasks and plain
Celery ones, not Celery's built-in ``celery.*``), as a JSON array in the ``tasks`` field of its
facts hash (``rl:w:{<worker id>}``), when it takes its lease. From that:

- a worker that receives a message for a name it does not know (Celery's ``task_unknown``
  signal; Celery has already dropped the message) puts the task back through the ledger when
  some live worker consuming its queue registered the name, and otherwise dead-letters it at
  once as ``UnregisteredTask``, naming the task and the workers that lack it, instead of
  letting it expire as ``NeverClaimed``. The worker that has it may be busy, and then this
  worker takes the message straight back: so the put-back waits (``bounce_delay``, from a
  timer thread, never Celery's consumer) and counts apart from lost messages (``MAX_BOUNCES``,
  then ``UnregisteredTask`` naming the busy workers), not toward NeverClaimed;
- ``rl doctor`` fails while queued tasks carry a name no live worker registered;
- ``rl worker list`` shows each worker's tasks.
"""

from __future__ import annotations

import base64
import functools
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from relier.core.record import BOUNCES, MESSAGE_QUEUE, MESSAGE_SEQ, NAME, STATE
from relier.phoenix.broker import kombu_message
from relier.phoenix.ledger import MAX_BOUNCES, MAX_REPUBLISH, Ledger
from relier.phoenix.port import LedgerPort
from relier.phoenix.views import FACT_TASKS

__all__ = [
    "BOUNCE_DELAY",
    "BOUNCE_DELAY_MAX",
    "TASKS_FACT",
    "UNKNOWN_HEADER",
    "Later",
    "LiveWorker",
    "bounce_delay",
    "handle_unknown",
    "live_workers",
    "registered_task_names",
    "relier_task_names",
    "unregistered_queued",
]

log = logging.getLogger("relier.phoenix")

#: Field of a worker's facts hash holding the JSON array of its registered task names.
TASKS_FACT = FACT_TASKS
#: Header counting how often a plain Celery message was put back for another worker (it has
#: no ledger record to count in).
UNKNOWN_HEADER = "rl_unknown"
#: Seconds before a task bounced for a busy worker is put back, doubled per bounce since its
#: last claim, up to ``BOUNCE_DELAY_MAX``.
BOUNCE_DELAY = 0.5
BOUNCE_DELAY_MAX = 5.0

#: Runs an action after a delay, without blocking the caller: ``later(seconds, action)``.
Later = Callable[[float, Callable[[], None]], None]


def bounce_delay(bounces: int, grace: float) -> float:
    """Seconds to wait before putting back a task bounced ``bounces`` times since its claim.

    0.5 s doubling to 5 s: a busy worker that has the task gets seconds to free up instead of
    the worker lacking it taking the message straight back in a busy loop. Never more than
    half ``grace`` (``RELIER_RESURRECTION_CLAIM_GRACE_PERIOD``): while the delay runs the
    task's message is in no list, and a resurrector takes a message unclaimed for the grace
    period for lost and re-publishes it, which counts toward NeverClaimed.
    """
    return max(0.05, min(BOUNCE_DELAY * (1 << min(bounces, 16)), BOUNCE_DELAY_MAX, grace / 2))


def _timer(delay: float, action: Callable[[], None]) -> None:
    # A daemon thread: Celery's consumer thread, which fired task_unknown, must not wait, and a
    # pending timer must not hold up the worker's exit. If the worker dies first, the task is
    # still `queued` in the ledger with its old sequence in the pending index, and that
    # message has left its list unclaimed: the resurrector's lost-message pass re-publishes it
    # once the queue's claim watermark (or, with the list empty, its publish counter) has been
    # past that sequence for the grace period (Resurrector._recover_lost_messages; shown by
    # tests-integration/attack/test_unknown_bounce.py, the test of a bounce lost with its
    # worker). That needs a resurrector running, as every lost message does.
    timer = threading.Timer(delay, action)
    timer.daemon = True
    timer.name = "relier-bounce"
    timer.start()


def registered_task_names(tasks: Mapping[str, Any]) -> list[str]:
    """Sorted names of the tasks a worker can run (Celery's own ``celery.*`` tasks left out).

    Plain Celery tasks count too: a message for one of them may also reach a worker that
    lacks it, and must then go to one that has it.
    """
    return sorted(name for name in tasks if not name.startswith("celery."))


def relier_task_names(tasks: Mapping[str, Any]) -> list[str]:
    """Sorted names of the Relier (``@rl_task``) tasks in a Celery task registry."""
    return sorted(name for name, task in tasks.items()
                  if getattr(task, "_relier_spec", None) is not None)


@dataclass(frozen=True, slots=True)
class LiveWorker:
    """A worker process whose lease is current, as its facts describe it.

    ``tasks`` is None for a worker that publishes no task names (an older Relier): it might
    run anything.
    """

    worker_id: str
    hostname: str
    queues: frozenset[str]
    tasks: frozenset[str] | None

    def runs(self, name: str, queue: str) -> bool:
        """It consumes ``queue`` and registered ``name`` (or does not say what it registered)."""
        return queue in self.queues and (self.tasks is None or name in self.tasks)


def live_workers(ledger: LedgerPort) -> list[LiveWorker]:
    """Every worker whose lease has not expired (Redis clock)."""
    return [LiveWorker(worker_id=w.worker_id, hostname=w.hostname or w.worker_id,
                       queues=frozenset(w.queues),
                       tasks=None if w.tasks is None else frozenset(w.tasks))
            for w in ledger.workers(live_only=True)]


def unregistered_queued(ledger: Ledger, queues: Iterable[str], sample: int = 500
                        ) -> tuple[dict[str, int], int]:
    """Names of queued tasks that no live worker registered, with how many of each.

    Bounded: at most ``sample`` oldest ids per queue are looked at (the counts are of those).
    Workers that do not publish their task names are taken to run anything.

    Returns:
        ``({name: count}, ids looked at)``; empty when every name has a worker (or no worker
        is alive, which the ``workers`` check reports itself).
    """
    workers = live_workers(ledger)
    if not workers or any(w.tasks is None for w in workers):
        return {}, 0
    known: set[str] = set().union(*(w.tasks or () for w in workers))
    missing: dict[str, int] = {}
    seen = 0
    for queue in queues:
        for name in ledger.queued_names(queue, sample):
            seen += 1
            if name and name not in known:
                missing[name] = missing.get(name, 0) + 1
    return missing, seen


def handle_unknown(ledger: LedgerPort, *, task_id: str, name: str, queue: str, body: bytes,
                   headers: Mapping[str, Any], content_type: str, content_encoding: str,
                   later: Later = _timer) -> str:
    """A message for ``name`` reached a worker that has no such task: never drop it silently.

    Returns what was done: ``deferred`` (put back through the ledger for a live worker that has
    it, after ``bounce_delay``, by ``later``), ``dead`` (dead-lettered as
    ``UnregisteredTask``), ``put_back`` (a plain Celery message published again for a worker
    that has it), or ``ignored`` (a stale duplicate of a task that is not waiting for a claim
    any more).
    """
    rec = ledger.record_fields(task_id, STATE, MESSAGE_QUEUE, MESSAGE_SEQ, NAME, BOUNCES)
    known = rec.state != "unknown"
    if known and rec.task_name and rec.task_name != name:
        # The message's name is an unsigned header, and every doorbell Relier publishes
        # carries the record's own name: this one is forged or misrouted. It must not decide
        # the fate of the task whose id it carries (its own message still runs it).
        log.error("task %s: a message named %r arrived for a record of task %r (forged or "
                  "misrouted); ignored, the task is left untouched", task_id, name,
                  rec.task_name)
        return "ignored"
    if known:
        queue = rec.message_queue or queue
    workers = live_workers(ledger)
    able = [w for w in workers if w.runs(name, queue)]
    lacking = sorted({w.hostname for w in workers if w.tasks is not None and name not in w.tasks})
    if known:
        if rec.state != "queued":
            return "ignored"  # a duplicate message; the task itself is running or finished
        if able and rec.message_seq:
            # The workers that have it are busy (else one of them would have taken the
            # message): wait for them, then put it back; the sequence makes the later
            # re-publication a no-op if anything moved the task meanwhile.
            busy = sorted({w.hostname for w in able})
            delay = bounce_delay(rec.bounces, ledger.settings.resurrection_claim_grace_period)
            later(delay, functools.partial(
                _bounce, ledger, task_id, queue, rec.message_seq,
                _busy_message(name, queue, busy, lacking, task_id)))
            return "deferred"
        rejected = ledger.reject(
            task_id=task_id, queue=queue, reason="UnregisteredTask",
            exc_type="celery.exceptions.NotRegistered",
            message=_unregistered_message(name, queue, lacking, task_id),
        )
        return "dead" if rejected else "ignored"
    # A plain Celery message (no ledger record): its bytes are all there is.
    bounces = _bounces(headers.get(UNKNOWN_HEADER))
    if able and bounces < MAX_REPUBLISH:
        message = kombu_message(
            base64.b64encode(body).decode(), {**headers, UNKNOWN_HEADER: bounces + 1}, queue,
            correlation_id=str(headers.get("id", "")),
            content_type=content_type or "application/json",
            content_encoding=content_encoding or "utf-8")
        ledger.put_back(queue, message)
        return "put_back"
    detail = _unregistered_message(name, queue, lacking, task_id)
    if able:
        detail = (f"put back {bounces} times for a worker that has task {name!r}, but it never "
                  f"reached one; {detail}")
    recorded = ledger.fail(
        task_id=task_id, worker_id="", epoch=0, reason="UnregisteredTask",
        exc_type="celery.exceptions.NotRegistered", message=detail, outcome="rejected",
        raw=body, task_name=name, queue=queue,
    )
    return "dead" if recorded else "ignored"


def _bounce(ledger: LedgerPort, task_id: str, queue: str, seq: int, message: str) -> None:
    """Put a task back for a busy worker that has it (run by a timer; never raises)."""
    try:
        reply = ledger.republish(task_id, queue, seq, bounce=message)
    except Exception:
        log.exception("task %s: could not put it back on %s for a worker that has it; the "
                      "resurrector's lost-message pass re-publishes it", task_id, queue)
        return
    if reply.kind == "dead":
        log.error("task %s dead-lettered as UnregisteredTask: %s", task_id, message)


def _busy_message(name: str, queue: str, busy: list[str], lacking: list[str], task_id: str
                  ) -> str:
    return (
        f"the live workers consuming {queue!r} that registered task {name!r} "
        f"({', '.join(busy)}) never claimed it: workers without it "
        f"({', '.join(lacking) or 'none'}) put it back {MAX_BOUNCES} times while they stayed "
        "busy. Give those workers more capacity, or make the others import the task's module "
        f"(RELIER_IMPORTS), then `rl dlq release {task_id}`"
    )


def _bounces(value: Any) -> int:
    """The ``rl_unknown`` count of a message, read defensively.

    It is an unsigned header, so anything odd counts as the limit: never an exception that
    would lose the message, never a negative count that would bounce it forever.
    """
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_REPUBLISH:
        return value
    if value is None:
        return 0
    return MAX_REPUBLISH


def _unregistered_message(name: str, queue: str, lacking: list[str], task_id: str) -> str:
    return (
        f"no live worker consuming {queue!r} registered task {name!r} (workers without it: "
        f"{', '.join(lacking) or 'none alive'}). Make the workers import its module "
        "(RELIER_IMPORTS, or a tasks.py in the directory they start in), then "
        f"`rl dlq release {task_id}`"
    )

