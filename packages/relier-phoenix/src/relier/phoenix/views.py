"""What the ledger answers when asked about workers, running tasks and cluster health.

Typed values returned by ``Ledger`` reads (``workers``, ``inflight``, ``health``,
``task_view``), so that no caller (the CLI above all) decodes a Redis reply or spells a key or
a field name. The worker facts hash (``rl:w:{<worker id>}``) is declared here as the task
record is in ``relier.core.record``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgspec

from relier.core.codec import text
from relier.core.record import TaskRecord

__all__ = [
    "FACT_CONCURRENCY",
    "FACT_DRAIN",
    "FACT_HOST",
    "FACT_HOSTNAME",
    "FACT_PID",
    "FACT_POOL",
    "FACT_QUEUES",
    "FACT_STARTED",
    "FACT_STATE",
    "FACT_TASKS",
    "HealthFacts",
    "InflightTask",
    "TaskView",
    "WorkerInfo",
    "decode_worker",
]

# -- the fields of a worker's facts hash (written by worker_register from the lease keeper's
# facts; FACT_DRAIN by request_drain, cleared by worker_register and the keeper) -------------
FACT_HOSTNAME: Final = "hostname"
FACT_HOST: Final = "host"
FACT_PID: Final = "pid"
FACT_QUEUES: Final = "queues"
FACT_STARTED: Final = "started"
FACT_STATE: Final = "state"
FACT_POOL: Final = "pool"
FACT_CONCURRENCY: Final = "concurrency"
#: JSON array of the task names the worker registered (absent: an older worker).
FACT_TASKS: Final = "tasks"
#: A pending remote drain request: the timeout in seconds.
FACT_DRAIN: Final = "drain"


class WorkerInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A registered worker process: its lease and its facts.

    ``tasks`` is None when the worker does not publish its task names (an older version).
    """

    worker_id: str
    deadline_ms: int
    hostname: str = ""
    host: str = ""
    pid: int | None = None
    queues: tuple[str, ...] = ()
    pool: str = ""
    concurrency: int | None = None
    state: str = ""
    started_ms: int | None = None
    tasks: tuple[str, ...] | None = None
    running: int = 0


def _int_or_none(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def _names(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    try:
        names = msgspec.json.decode(value)
    except msgspec.DecodeError:
        return None
    return tuple(str(n) for n in names) if isinstance(names, list) else None


def decode_worker(worker_id: str, facts: Mapping[Any, Any], *, deadline_ms: int,
                  running: int = 0) -> WorkerInfo:
    """A worker's facts hash and lease deadline, decoded."""
    f = {text(k): text(v) for k, v in facts.items() if v is not None}
    return WorkerInfo(
        worker_id=worker_id, deadline_ms=deadline_ms, hostname=f.get(FACT_HOSTNAME, ""),
        host=f.get(FACT_HOST, ""), pid=_int_or_none(f.get(FACT_PID, "")),
        queues=tuple(q for q in f.get(FACT_QUEUES, "").split(",") if q),
        pool=f.get(FACT_POOL, ""), concurrency=_int_or_none(f.get(FACT_CONCURRENCY, "")),
        state=f.get(FACT_STATE, ""), started_ms=_int_or_none(f.get(FACT_STARTED, "")) or None,
        tasks=_names(f.get(FACT_TASKS)), running=running,
    )


class InflightTask(msgspec.Struct, frozen=True, kw_only=True):
    """A running task as its worker's lease sees it."""

    task_id: str
    task_name: str
    worker_id: str
    hostname: str
    attempt: int
    resurrections: int
    started_ms: int
    lease_deadline_ms: int
    checkpoint_bytes: int


class HealthFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What ``rl doctor`` judges, read in one place (read-only).

    ``queue_depths`` are measured on the broker (``RELIER_BROKER_URL``), where kombu's lists
    live.
    """

    now_ms: int
    live_workers: tuple[str, ...]
    expired_workers: tuple[str, ...]
    consumed_queues: frozenset[str]
    resurrectors: int
    queue_depths: dict[str, int]
    dead_letters: int
    #: Tasks waiting in Redis for their due time (countdown, eta).
    scheduled: int = 0


class TaskView(msgspec.Struct, frozen=True, kw_only=True):
    """A task record and the facts around it, read in one round trip (``task_story``).

    ``found`` is False when there is no record (never dispatched here, or expired).
    ``lease_deadline_ms`` and ``owner_hostname`` describe the owner of a running task.
    """

    record: TaskRecord
    found: bool
    in_dlq: bool
    now_ms: int
    lease_deadline_ms: int | None = None
    owner_hostname: str = ""
