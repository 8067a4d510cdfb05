"""Which worker can run which task, and what happens to a message nobody here registered.

Every worker publishes the sorted names of the tasks it registered (Relier tasks and plain
Celery ones, not Celery's built-in ``celery.*``), as a JSON array in the ``tasks`` field of its
facts hash (``rl:w:{<worker id>}``), when it takes its lease. From that:

- a worker that receives a message for a name it does not know (Celery's ``task_unknown``
  signal; Celery has already dropped the message) re-queues the task through the ledger when
  some live worker consuming its queue registered the name (bounded like every
  re-publication), and otherwise dead-letters it at once as ``UnregisteredTask``, naming the
  task and the workers that lack it, instead of letting it expire as ``NeverClaimed``;
- ``rl doctor`` fails while queued tasks carry a name no live worker registered;
- ``rl worker list`` shows each worker's tasks.
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from relier.core.record import MESSAGE_QUEUE, MESSAGE_SEQ, NAME, STATE
from relier.phoenix.ledger import MAX_REPUBLISH, Ledger
from relier.phoenix.port import LedgerPort
from relier.phoenix.views import FACT_TASKS

__all__ = [
    "TASKS_FACT",
    "UNKNOWN_HEADER",
    "LiveWorker",
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
                   headers: Mapping[str, Any], content_type: str, content_encoding: str
                   ) -> str:
    """A message for ``name`` reached a worker that has no such task: never drop it silently.

    Returns what was done: ``requeued`` (through the ledger, for a live worker that has it),
    ``dead`` (dead-lettered as ``UnregisteredTask``), ``put_back`` (a plain Celery message
    published again for a worker that has it), or ``ignored`` (a stale duplicate of a task that
    is not waiting for a claim any more).
    """
    rec = ledger.record_fields(task_id, STATE, MESSAGE_QUEUE, MESSAGE_SEQ, NAME)
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
            reply = ledger.republish(task_id, queue, rec.message_seq)
            if reply.kind == "done":
                return "requeued"
            return "dead" if reply.kind == "dead" else "ignored"
        rejected = ledger.reject(
            task_id=task_id, queue=queue, reason="UnregisteredTask",
            exc_type="celery.exceptions.NotRegistered",
            message=_unregistered_message(name, queue, lacking, task_id),
        )
        return "dead" if rejected else "ignored"
    # A plain Celery message (no ledger record): its bytes are all there is.
    bounces = _bounces(headers.get(UNKNOWN_HEADER))
    if able and bounces < MAX_REPUBLISH:
        message = _kombu_message(body, {**headers, UNKNOWN_HEADER: bounces + 1}, queue,
                                 content_type, content_encoding)
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


def _kombu_message(body: bytes, headers: Mapping[str, Any], queue: str, content_type: str,
                   content_encoding: str) -> bytes:
    """A message as kombu's Redis transport stores it (body base64-encoded)."""
    return msgspec.json.encode({
        "body": base64.b64encode(body).decode(),
        "content-encoding": content_encoding or "utf-8",
        "content-type": content_type or "application/json",
        "headers": dict(headers),
        "properties": {
            "correlation_id": headers.get("id", ""),
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    })
