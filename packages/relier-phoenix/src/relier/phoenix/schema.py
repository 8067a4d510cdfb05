"""The JSON shapes of the ledger's reads: one typed schema for tasks, dead letters and workers.

``rl ... --json`` prints them, and any other front end (a dashboard's JSON API) serves the same
shapes: they live beside the ledger's read API, not in one of its front ends.

Conventions (documented in docs/cli.md, "JSON output"):

- numbers are JSON numbers, flags are booleans, lists are arrays (never strings to parse);
- every instant is two fields: ``<x>_at`` in ISO 8601 UTC (``2026-11-28T08:15:31.123Z``) and
  ``<x>_ms`` in Unix epoch milliseconds; both are ``null`` when the instant has not happened;
- a duration ends in ``_s`` (seconds, a number);
- a task's arguments are decoded (``args``, ``kwargs``) by one decoder for ``rl tasks show``
  and ``rl dlq show``; only when they cannot be decoded (a tampered or foreign payload) is
  ``payload_error`` set and the stored bytes given as ``payload_base64``.

The structs are encoded with ``msgspec.json``, so a field's type here is its type in the JSON.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import msgspec

from relier.core.record import Attempt, TaskRecord
from relier.phoenix.views import InflightTask, WorkerInfo

__all__ = [
    "AttemptJSON",
    "DeadLetterJSON",
    "InflightJSON",
    "TaskJSON",
    "WorkerJSON",
    "dead_letter_json",
    "inflight_json",
    "iso",
    "node_of",
    "task_json",
    "worker_json",
]


def iso(ms: int | None) -> str | None:
    """Epoch ms as ISO 8601 UTC with milliseconds (``None`` for 0 or ``None``: never)."""
    if not ms:
        return None
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(ms: int | None) -> int | None:
    return ms or None


def _seconds(ms: float) -> float:
    return round(ms / 1000, 3)


def node_of(lease_id: str) -> str:
    """The Celery node name in a lease id (``<node>:<pid>:<random>``)."""
    return lease_id.rsplit(":", 2)[0] if lease_id.count(":") >= 2 else lease_id


class AttemptJSON(msgspec.Struct, kw_only=True):
    """One finished attempt of a task (``worker`` '' when it was never claimed)."""

    attempt: int
    worker: str
    lease_id: str
    started_at: str | None
    started_ms: int | None
    ended_at: str | None
    ended_ms: int | None
    outcome: str
    cause: str

    @classmethod
    def of(cls, a: Attempt) -> AttemptJSON:
        """An attempt of a task record in the JSON schema."""
        return cls(attempt=a.attempt, worker=node_of(a.worker), lease_id=a.worker,
                   started_at=iso(a.started_ms),
                   started_ms=_ms(a.started_ms), ended_at=iso(a.ended_ms),
                   ended_ms=_ms(a.ended_ms), outcome=a.outcome, cause=a.cause)


class TaskJSON(msgspec.Struct, kw_only=True):
    """One task, whole (``rl tasks show --json`` and ``rl dlq show --json``)."""

    task_id: str
    task: str
    queue: str
    state: str
    epoch: int
    attempt: int
    resurrections: int
    max_resurrections: int
    owner: str
    owner_hostname: str
    lease_expires_in_s: float | None
    dispatched_at: str | None
    dispatched_ms: int | None
    due_at: str | None
    due_ms: int | None
    started_at: str | None
    started_ms: int | None
    ended_at: str | None
    ended_ms: int | None
    args: list[Any] | None
    kwargs: dict[str, Any] | None
    payload_error: str | None
    payload_base64: str | None
    checkpoint_bytes: int
    result: Any
    duplicate_of: str
    idempotency_key: str
    legacy: bool
    plain: bool
    republished: int
    in_dlq: bool
    reason: str
    exception: str
    message: str
    traceback: str
    dead_at: str | None
    dead_ms: int | None
    history: list[AttemptJSON]


def task_json(story: Any) -> TaskJSON:
    """A ``relier.phoenix.TaskStory`` in the JSON schema.

    The arguments come from the story's envelope decoder (``open_envelope`` with this
    process's keys); when it refused them, the raw envelope is kept as base64 with the reason.
    """
    rec: TaskRecord = story.record
    decoded = story.args is not None
    lease = story.lease_expires_in_ms
    return TaskJSON(
        task_id=rec.task_id, task=rec.task_name, queue=rec.queue, state=rec.state,
        epoch=rec.epoch, attempt=rec.attempt, resurrections=rec.resurrections,
        max_resurrections=rec.max_resurrections, owner=rec.owner,
        owner_hostname=story.owner_hostname,
        lease_expires_in_s=None if lease is None else _seconds(lease),
        dispatched_at=iso(rec.dispatched_ms), dispatched_ms=_ms(rec.dispatched_ms),
        due_at=iso(rec.due_ms), due_ms=_ms(rec.due_ms),
        started_at=iso(rec.started_ms), started_ms=_ms(rec.started_ms),
        ended_at=iso(rec.ended_ms), ended_ms=_ms(rec.ended_ms),
        args=list(story.args) if decoded else None,
        kwargs=dict(story.kwargs or {}) if decoded else None,
        payload_error=None if decoded else (story.envelope_error or "no payload stored"),
        payload_base64=None if decoded else base64.b64encode(rec.envelope).decode(),
        checkpoint_bytes=story.checkpoint_bytes, result=story.result,
        duplicate_of=rec.duplicate_of, idempotency_key=rec.idempotency_key,
        legacy=rec.legacy, plain=rec.plain, republished=rec.republished, in_dlq=story.in_dlq,
        reason=rec.reason, exception=rec.exc_type, message=rec.message,
        traceback=rec.traceback, dead_at=iso(rec.dead_ms), dead_ms=_ms(rec.dead_ms),
        history=[AttemptJSON.of(a) for a in rec.history],
    )


class DeadLetterJSON(msgspec.Struct, kw_only=True):
    """One row of ``rl dlq list --json``."""

    task_id: str
    task: str
    queue: str
    reason: str
    exception: str
    message: str
    attempts: int
    dead_at: str | None
    dead_ms: int | None


def dead_letter_json(rec: TaskRecord) -> DeadLetterJSON:
    """A dead-lettered record as a ``rl dlq list`` row."""
    return DeadLetterJSON(task_id=rec.task_id, task=rec.task_name, queue=rec.queue,
                          reason=rec.reason, exception=rec.exc_type, message=rec.message,
                          attempts=len(rec.history), dead_at=iso(rec.dead_ms),
                          dead_ms=_ms(rec.dead_ms))


class InflightJSON(msgspec.Struct, kw_only=True):
    """One row of ``rl tasks inflight --json``: a running task."""

    task_id: str
    task: str
    worker: str
    lease_id: str
    attempt: int
    resurrections: int
    started_at: str | None
    started_ms: int | None
    age_s: float
    lease_renewed_at: str | None
    lease_renewed_ms: int | None
    lease_expires_at: str | None
    lease_expires_ms: int | None
    lease_expired: bool
    checkpoint_bytes: int


class WorkerJSON(msgspec.Struct, kw_only=True):
    """One row of ``rl worker list --json``: a registered worker process.

    ``tasks`` lists the task names the worker registered, ``None`` when the worker does not
    publish them (an older version).
    """

    hostname: str
    lease_id: str
    pid: int | None
    host: str
    queues: list[str]
    pool: str
    concurrency: int | None
    running: int
    state: str
    started_at: str | None
    started_ms: int | None
    lease_expires_at: str | None
    lease_expires_ms: int | None
    lease_expires_in_s: float | None
    tasks: list[str] | None


def worker_json(worker: WorkerInfo, *, now_ms: int) -> WorkerJSON:
    """A registered worker (``Ledger.workers``) as a ``rl worker list`` row."""
    w, deadline = worker, worker.deadline_ms
    return WorkerJSON(
        hostname=w.hostname, lease_id=w.worker_id, pid=w.pid, host=w.host,
        queues=list(w.queues), pool=w.pool, concurrency=w.concurrency, running=w.running,
        state=w.state if deadline >= now_ms else "expired",
        started_at=iso(w.started_ms), started_ms=w.started_ms,
        lease_expires_at=iso(deadline), lease_expires_ms=_ms(deadline),
        lease_expires_in_s=_seconds(deadline - now_ms),
        tasks=None if w.tasks is None else list(w.tasks),
    )


def inflight_json(task: InflightTask, *, now_ms: int, ttl_ms: int) -> InflightJSON:
    """A running task (``Ledger.inflight``) as a ``rl tasks inflight`` row."""
    started, deadline = task.started_ms, task.lease_deadline_ms
    renewed = deadline - ttl_ms
    return InflightJSON(
        task_id=task.task_id, task=task.task_name, worker=task.hostname,
        lease_id=task.worker_id, attempt=task.attempt, resurrections=task.resurrections,
        started_at=iso(started), started_ms=started or None,
        age_s=round((now_ms - (started or now_ms)) / 1000, 3),
        lease_renewed_at=iso(renewed), lease_renewed_ms=renewed,
        lease_expires_at=iso(deadline), lease_expires_ms=deadline,
        lease_expired=deadline < now_ms, checkpoint_bytes=task.checkpoint_bytes,
    )

