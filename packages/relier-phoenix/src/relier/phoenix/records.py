"""Task records as typed values: what the ledger knows about one task, decoded."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

__all__ = ["Attempt", "TaskRecord", "fetch_record", "parse_record"]

State = Literal["queued", "running", "done", "dead", "unknown"]


class Attempt(msgspec.Struct, frozen=True):
    """One finished attempt of a task.

    Attributes:
        attempt: 1 for the first run, then one more per re-run.
        worker: Lease id of the worker that ran it ('' if never claimed).
        started_ms / ended_ms: Redis-clock times in ms.
        outcome: completed, failed, timeout, killed, lease_expired, handoff, rejected,
            never_claimed or released.
        cause: The kill cause (signal, exit code, lease expiry) or the dead-letter reason.
    """

    attempt: int
    worker: str
    started_ms: int
    ended_ms: int
    outcome: str
    cause: str


class TaskRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A task record as stored in ``rl:t:{id}``."""

    task_id: str
    task_name: str = ""
    queue: str = ""
    state: State = "unknown"
    epoch: int = 0
    attempt: int = 0
    resurrections: int = 0
    max_resurrections: int = 0
    owner: str = ""
    dispatched_ms: int = 0
    started_ms: int = 0
    ended_ms: int = 0
    envelope: bytes = b""
    checkpoint: bytes = b""
    result: bytes | None = None
    duplicate_of: str = ""
    idempotency_key: str = ""
    legacy: bool = False
    republished: int = 0
    reason: str = ""
    exc_type: str = ""
    message: str = ""
    traceback: str = ""
    dead_ms: int = 0
    history: list[Attempt] = []


def _text(value: bytes | None) -> str:
    return value.decode(errors="replace") if value else ""


def _int(value: bytes | None) -> int:
    return int(value) if value else 0


def parse_record(task_id: str, fields: Mapping[Any, Any], envelope: bytes | None = None
                 ) -> TaskRecord:
    """Decode an ``HGETALL`` of a task record and its envelope (no fields: ``unknown``)."""
    f = fields.get
    history = []
    for line in _text(f(b"h")).splitlines():
        item: dict[str, Any] = msgspec.json.decode(line)
        history.append(Attempt(int(item.get("a", 0)), str(item.get("w", "")),
                               int(item.get("ts", 0)), int(item.get("te", 0)),
                               str(item.get("o", "")), str(item.get("c", ""))))
    state = _text(f(b"s")) or "unknown"
    return TaskRecord(
        task_id=task_id, task_name=_text(f(b"n")), queue=_text(f(b"q")),
        state=state if state in ("queued", "running", "done", "dead") else "unknown",  # type: ignore[arg-type]
        epoch=_int(f(b"ep")), attempt=_int(f(b"a")), resurrections=_int(f(b"k")),
        max_resurrections=_int(f(b"mr")), owner=_text(f(b"w")), dispatched_ms=_int(f(b"dt")),
        started_ms=_int(f(b"ts")), ended_ms=_int(f(b"te")), envelope=envelope or b"",
        checkpoint=f(b"ck") or b"", result=f(b"r"), duplicate_of=_text(f(b"dup")),
        idempotency_key=_text(f(b"x")), legacy=f(b"lg") == b"1", republished=_int(f(b"rp")),
        reason=_text(f(b"dr")), exc_type=_text(f(b"dx")), message=_text(f(b"dm")),
        traceback=_text(f(b"tb")), dead_ms=_int(f(b"dd")), history=history,
    )


def fetch_record(client: Any, keys: Any, task_id: str) -> TaskRecord:
    """Read one task record and its envelope in one round trip."""
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(keys.task(task_id))
    pipe.get(keys.envelope(task_id))
    fields, envelope = pipe.execute()
    return parse_record(task_id, fields, envelope)
