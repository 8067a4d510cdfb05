"""The task record: its one definition (every field of ``rl:t:{id}``) and its one decoder.

A task record is a Redis hash with short field names (a record is written on every dispatch,
claim and completion: short names keep it small). This module is where each name is
declared, once:

- ``FIELDS``: the table. For each field its short name, the ``TaskRecord`` attribute it
  decodes to, its type, what it means, and the Lua scripts that write and read it.
  ``packages/relier-core/tests/test_record_fields.py`` parses every Lua script and fails when
  a script touches a field missing from this table, or when the writers and readers listed
  here are not exactly the scripts that touch it: the table cannot drift from the code.
- the constants (``STATE``, ``EPOCH``, ...): the only spelling of a field name in Python.
- ``TaskRecord`` and ``decode_record``: the one decoder from the raw hash (``HGETALL``, or
  ``HMGET`` of some fields) to a typed value. Every reader (the ledger, the story, the
  dead-letter queue, receipts, the CLI) goes through it.

Only the Lua scripts write a record (through ``relier.phoenix.Ledger``, its only door); Python
never writes a field itself.

To find everything about a field, e.g. the epoch: its row in ``FIELDS`` names the scripts
that write it (``task_dispatch`` sets 0, ``task_claim`` increments it, ``task_fail`` sets 0
for a message never claimed) and read it (``task_checkpoint``, ``task_complete``,
``task_fail`` compare it: the fence, I3). In Python it is read by ``decode_record`` (the
``EPOCH`` constant, into ``TaskRecord.epoch``) and returned by the claim
(``ClaimReply.epoch``), which ``relier.phoenix.middleware`` keeps in ``Job.epoch`` and passes
back to ``Ledger.complete``, ``Ledger.fail`` and ``Ledger.acheckpoint`` (and the runtime
shows as ``ctx.epoch``). Grep ``EPOCH`` and ``epoch=`` for every place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

import msgspec

from relier.core.codec import text

__all__ = [
    "ATTEMPT",
    "BOUNCES",
    "CHECKPOINT",
    "DEAD_MS",
    "DEAD_REASON",
    "DISPATCHED_MS",
    "DUE_MS",
    "DUPLICATE_OF",
    "ENDED_MS",
    "EPOCH",
    "EXC_MESSAGE",
    "EXC_TYPE",
    "FIELDS",
    "HANDOFFS",
    "HISTORY",
    "IDEM_KEY",
    "IDEM_TTL",
    "LEGACY",
    "MAX_RESURRECTIONS",
    "MESSAGE_QUEUE",
    "MESSAGE_SEQ",
    "NAME",
    "OWNER",
    "PLAIN",
    "QUEUE",
    "REPUBLISHED",
    "REPUBLISHED_AT_CLAIM",
    "RESULT",
    "RESURRECTIONS",
    "STARTED_MS",
    "STATE",
    "TRACEBACK",
    "TRACEPARENT",
    "Attempt",
    "Field",
    "State",
    "TaskRecord",
    "decode_record",
    "fields_of",
]

State = Literal["scheduled", "queued", "running", "done", "dead", "unknown"]

# -- the field names (the only spelling of each in Python) --------------------------------------
NAME: Final = "n"
QUEUE: Final = "q"
STATE: Final = "s"
EPOCH: Final = "ep"
ATTEMPT: Final = "a"
RESURRECTIONS: Final = "k"
MAX_RESURRECTIONS: Final = "mr"
DISPATCHED_MS: Final = "dt"
MESSAGE_SEQ: Final = "sq"
MESSAGE_QUEUE: Final = "mq"
TRACEPARENT: Final = "tp"
IDEM_KEY: Final = "x"
IDEM_TTL: Final = "it"
LEGACY: Final = "lg"
PLAIN: Final = "pm"
DUE_MS: Final = "du"
OWNER: Final = "w"
STARTED_MS: Final = "ts"
ENDED_MS: Final = "te"
HISTORY: Final = "h"
RESULT: Final = "r"
DUPLICATE_OF: Final = "dup"
CHECKPOINT: Final = "ck"
REPUBLISHED: Final = "rp"
REPUBLISHED_AT_CLAIM: Final = "rpc"
BOUNCES: Final = "ub"
HANDOFFS: Final = "ho"
DEAD_REASON: Final = "dr"
EXC_TYPE: Final = "dx"
EXC_MESSAGE: Final = "dm"
TRACEBACK: Final = "tb"
DEAD_MS: Final = "dd"


class Field(msgspec.Struct, frozen=True):
    """One field of the task record.

    Attributes:
        name: The hash field's name in Redis.
        attr: The ``TaskRecord`` attribute it decodes to.
        type: How the value is stored (``int`` fields are decimal strings).
        meaning: What it says about the task.
        written_by: The Lua scripts that set, increment or delete it.
        read_by: The Lua scripts that read it (Python reads every field through
            ``decode_record``).
    """

    name: str
    attr: str
    type: str
    meaning: str
    written_by: tuple[str, ...]
    read_by: tuple[str, ...] = ()


_DEAD = ("dlq_release", "task_dispatch", "task_fail", "task_reject", "task_republish",
         "task_requeue")
_HISTORY = ("task_complete", "task_dispatch", "task_fail", "task_reject", "task_republish",
            "task_requeue")

#: Every field of the task record. Scripts that include ``history`` (close_attempt) read
#: ``a``, ``w``, ``ts`` and ``h`` and write ``h`` and ``te``.
FIELDS: Final[tuple[Field, ...]] = (
    Field(NAME, "task_name", "str", "registered task name",
          ("task_claim", "task_dispatch", "task_fail"), ("task_claim",)),
    Field(QUEUE, "queue", "str", "queue the task was dispatched to (a release returns it there)",
          ("task_claim", "task_dispatch", "task_fail"),
          ("dlq_release", "task_claim", "task_promote")),
    Field(STATE, "state", "scheduled|queued|running|done|dead", "where the task is in its life",
          ("dlq_release", "task_claim", "task_complete", "task_dispatch", "task_fail",
           "task_promote", "task_reject", "task_republish", "task_requeue"),
          ("dlq_purge", "dlq_release", "task_checkpoint", "task_claim", "task_complete",
           "task_dispatch", "task_fail", "task_promote", "task_reject", "task_republish",
           "task_requeue")),
    Field(EPOCH, "epoch", "int",
          "fencing token: 0 at dispatch, +1 at every claim; every later write of a run "
          "(checkpoint, complete, fail; a child death's release) is a compare-and-set on it (I3)",
          ("task_claim", "task_dispatch", "task_fail"),
          ("task_checkpoint", "task_complete", "task_dispatch", "task_fail", "task_requeue")),
    Field(ATTEMPT, "attempt", "int", "1 for the first run, +1 per re-queue or release",
          ("dlq_release", "task_claim", "task_dispatch", "task_fail", "task_requeue"),
          ("dlq_release", "task_claim", *_HISTORY)),
    Field(RESURRECTIONS, "resurrections", "int",
          "times the task lost its worker (killed, lease expired; hand-offs are not counted); "
          "dead-lettered past max_resurrections; 0 again on release",
          ("dlq_release", "task_claim", "task_dispatch", "task_fail", "task_requeue"),
          ("task_claim", "task_requeue")),
    Field(MAX_RESURRECTIONS, "max_resurrections", "int", "the task's limit of resurrections",
          ("task_claim", "task_dispatch", "task_fail"), ("task_claim", "task_requeue")),
    Field(DISPATCHED_MS, "dispatched_ms", "int ms (Redis clock)", "when it was dispatched",
          ("task_claim", "task_dispatch", "task_fail"), ("task_claim",)),
    Field(MESSAGE_SEQ, "message_seq", "int",
          "broker sequence of the message the record waits for (lost-message detection)",
          ("dlq_release", "task_dispatch", "task_promote", "task_republish", "task_requeue"),
          ("task_claim", "task_republish")),
    Field(MESSAGE_QUEUE, "message_queue", "str",
          "queue of the message the record waits for (re-queue after a resurrection)",
          ("dlq_release", "task_claim", "task_dispatch", "task_fail", "task_promote",
           "task_requeue"),
          ("task_claim", "task_republish")),
    Field(TRACEPARENT, "traceparent", "str", "W3C trace context of the dispatch",
          ("task_dispatch",)),
    Field(IDEM_KEY, "idempotency_key", "str", "the idempotency marker key the task owns",
          ("task_claim", "task_dispatch"), ("dlq_release", "task_claim")),
    Field(IDEM_TTL, "idempotency_ttl", "int s", "how long the committed result is cached",
          ("task_claim", "task_dispatch"), ("task_claim",)),
    Field(LEGACY, "legacy", "'1' or absent", "adopted from a plain Celery message",
          ("task_claim",)),
    Field(PLAIN, "plain", "'1' or absent",
          "a plain Celery task (not @rl_task): its envelope is the sealed broker message "
          "itself, re-published as it was", ("task_claim", "task_dispatch")),
    Field(DUE_MS, "due_ms", "int ms (Redis clock)",
          "when a scheduled task (countdown, eta) is due; absent once promoted",
          ("task_dispatch", "task_promote")),
    Field(OWNER, "owner", "str", "lease id of the worker running it (absent when not running)",
          ("dlq_release", "task_claim", "task_complete", "task_dispatch", "task_fail",
           "task_requeue"),
          ("task_claim", *_HISTORY)),
    Field(STARTED_MS, "started_ms", "int ms", "when the current attempt was claimed",
          ("task_claim", "task_fail"), _HISTORY),
    Field(ENDED_MS, "ended_ms", "int ms", "when the last attempt ended",
          ("task_claim", *_HISTORY)),
    Field(HISTORY, "history", "JSON lines",
          "one line per finished attempt (attempt, worker, start, end, outcome, cause)",
          ("dlq_release", *_HISTORY), ("dlq_release", *_HISTORY)),
    Field(RESULT, "result", "JSON", "the result, once done",
          ("task_claim", "task_complete", "task_dispatch")),
    Field(DUPLICATE_OF, "duplicate_of", "str",
          "the task owning the same idempotency key (this one never ran)",
          ("task_claim", "task_dispatch")),
    Field(CHECKPOINT, "checkpoint", "JSON or @file: reference", "the last checkpoint",
          ("task_checkpoint", "task_complete"), ("task_checkpoint", "task_claim")),
    Field(REPUBLISHED, "republished", "int", "re-publications of a lost message, ever",
          ("dlq_release", "task_dispatch", "task_republish"), ("task_claim",)),
    Field(REPUBLISHED_AT_CLAIM, "republished_at_claim", "int",
          "REPUBLISHED at the last claim (the NeverClaimed limit counts from there)",
          ("dlq_release", "task_claim", "task_dispatch"), ("task_republish",)),
    Field(BOUNCES, "bounces", "int",
          "re-publications since the last claim by workers lacking the task, for a busy live "
          "worker that registered it (not NeverClaimed; past their own limit UnregisteredTask)",
          ("dlq_release", "task_claim", "task_dispatch", "task_republish")),
    Field(HANDOFFS, "handoffs", "int", "hand-offs (drain, shutdown), capped by "
          "RELIER_MAX_HANDOFFS; 0 again on release",
          ("dlq_release", "task_dispatch", "task_requeue")),
    Field(DEAD_REASON, "reason", "str", "why it was dead-lettered", _DEAD),
    Field(EXC_TYPE, "exc_type", "str", "qualified exception type of the dead-letter", _DEAD),
    Field(EXC_MESSAGE, "message", "str", "human-readable dead-letter message", _DEAD),
    Field(TRACEBACK, "traceback", "str", "traceback of the failure", _DEAD),
    Field(DEAD_MS, "dead_ms", "int ms", "when it was dead-lettered", _DEAD),
)


class Attempt(msgspec.Struct, frozen=True):
    """One finished attempt of a task (a line of ``HISTORY``).

    Attributes:
        attempt: 1 for the first run, then one more per re-run.
        worker: Lease id of the worker that ran it ('' if never claimed).
        started_ms / ended_ms: Redis-clock times in ms.
        outcome: completed, failed, timeout, killed, lease_expired, handoff, rejected,
            never_claimed, released or redispatched (a retry, replace or requeue published
            the task's id again).
        cause: The kill cause (signal, exit code, lease expiry) or the dead-letter reason.
    """

    attempt: int
    worker: str
    started_ms: int
    ended_ms: int
    outcome: str
    cause: str


class TaskRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A task record as stored in ``rl:t:{id}`` (see ``FIELDS`` for each attribute's field).

    A record read partly (``HMGET`` of some fields) has the defaults for the others; a task
    with no record has state ``unknown``.
    """

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
    idempotency_ttl: int = 0
    legacy: bool = False
    plain: bool = False
    due_ms: int = 0
    republished: int = 0
    republished_at_claim: int = 0
    bounces: int = 0
    handoffs: int = 0
    message_queue: str = ""
    message_seq: int = 0
    traceparent: str = ""
    reason: str = ""
    exc_type: str = ""
    message: str = ""
    traceback: str = ""
    dead_ms: int = 0
    history: list[Attempt] = []


_STATES = frozenset(("scheduled", "queued", "running", "done", "dead"))


def _int(value: Any) -> int:
    return int(value) if value else 0


def _history(value: Any) -> list[Attempt]:
    history = []
    for line in text(value).splitlines():
        item: dict[str, Any] = msgspec.json.decode(line)
        history.append(Attempt(int(item.get("a", 0)), str(item.get("w", "")),
                               int(item.get("ts", 0)), int(item.get("te", 0)),
                               str(item.get("o", "")), str(item.get("c", ""))))
    return history


def decode_record(task_id: str, fields: Mapping[Any, Any], envelope: bytes | None = None
                  ) -> TaskRecord:
    """Decode a task record: an ``HGETALL`` (bytes or str keys) and, optionally, its envelope.

    No fields (no record): state ``unknown``. Use ``fields_of`` to decode an ``HMGET``.
    """
    raw = {text(k): v for k, v in fields.items() if v is not None}
    f = raw.get
    state = text(f(STATE)) or "unknown"
    return TaskRecord(
        task_id=task_id, task_name=text(f(NAME)), queue=text(f(QUEUE)),
        state=state if state in _STATES else "unknown",  # type: ignore[arg-type]
        epoch=_int(f(EPOCH)), attempt=_int(f(ATTEMPT)), resurrections=_int(f(RESURRECTIONS)),
        max_resurrections=_int(f(MAX_RESURRECTIONS)), owner=text(f(OWNER)),
        dispatched_ms=_int(f(DISPATCHED_MS)), started_ms=_int(f(STARTED_MS)),
        ended_ms=_int(f(ENDED_MS)), envelope=envelope or b"", checkpoint=f(CHECKPOINT) or b"",
        result=f(RESULT), duplicate_of=text(f(DUPLICATE_OF)),
        idempotency_key=text(f(IDEM_KEY)), idempotency_ttl=_int(f(IDEM_TTL)),
        legacy=text(f(LEGACY)) == "1", plain=text(f(PLAIN)) == "1", due_ms=_int(f(DUE_MS)),
        republished=_int(f(REPUBLISHED)),
        republished_at_claim=_int(f(REPUBLISHED_AT_CLAIM)), bounces=_int(f(BOUNCES)),
        handoffs=_int(f(HANDOFFS)),
        message_queue=text(f(MESSAGE_QUEUE)), message_seq=_int(f(MESSAGE_SEQ)),
        traceparent=text(f(TRACEPARENT)), reason=text(f(DEAD_REASON)),
        exc_type=text(f(EXC_TYPE)), message=text(f(EXC_MESSAGE)),
        traceback=text(f(TRACEBACK)), dead_ms=_int(f(DEAD_MS)), history=_history(f(HISTORY)),
    )


def fields_of(names: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    """An ``HMGET`` reply as the mapping ``decode_record`` takes."""
    return dict(zip(names, values, strict=True))
