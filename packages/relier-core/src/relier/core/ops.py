"""Typed calls of the Lua scripts: callers pass names, never positional KEYS/ARGV.

Each builder returns a ``Call`` that runs on a sync client
(``scripts(client).run(call)``) or an asyncio one (``await async_scripts(client).run(call)``),
so the same protocol serves ``push`` and ``apush``, workers and the resurrector.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from relier.core.codec import text
from relier.core.keys import Keys
from relier.core.scripts import Call

__all__ = [
    "AdmissionScope",
    "CheckpointReply",
    "ClaimReply",
    "DispatchReply",
    "DispatchRequest",
    "LockReply",
    "Ops",
    "PromoteReply",
    "RenewReply",
    "ScanReply",
    "TransitionReply",
]


class AdmissionScope(msgspec.Struct, frozen=True):
    """One admission limit: at most ``limit`` calls in any ``window_ms`` for ``key``."""

    key: str
    limit: int
    window_ms: int
    name: str = "global"


class DispatchRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a dispatch records: the one spelling of the dispatch arguments.

    Built by the producer (``relier.tasks``), recorded by ``Ledger.prepare_dispatch`` and
    passed to ``task_dispatch`` by ``Ops.dispatch`` (whose header documents each slot).

    Attributes:
        task_id / task_name / queue: The new task.
        envelope: The sealed envelope bytes.
        max_resurrections: Deaths allowed before it is dead-lettered.
        idem_key / idem_ttl: Its idempotency marker key and result TTL ('' / 0: none).
        admission: The admission scopes the dispatch must pass.
        traceparent: W3C trace context of the dispatch ('' when not traced).
        delay_ms: > 0: the task is due that many ms from now, on the Redis clock (countdown,
            eta); it waits in Redis, not in a worker, until the resurrector promotes it.
        plain: A plain Celery message of an installed app (the envelope is the sealed
            message); it may re-dispatch a task id that has a record (retry, replace).
        from_epoch: > 0 when the publisher is that run of this very task (fences a zombie's
            retry).
        priority: kombu's priority step of the message (its list is another key).
        occurrence / occurrence_gap_ms: ``<task>:<beat entry>`` and the time within which
            another send of it is the same occurrence ('' / 0: not a beat send).
    """

    task_id: str
    task_name: str
    queue: str
    envelope: bytes
    max_resurrections: int
    idem_key: str = ""
    idem_ttl: int = 0
    admission: tuple[AdmissionScope, ...] = ()
    traceparent: str = ""
    delay_ms: int = 0
    plain: bool = False
    from_epoch: int = 0
    priority: int = 0
    occurrence: str = ""
    occurrence_gap_ms: int = 0


class DispatchReply(msgspec.Struct, frozen=True):
    """What ``task_dispatch`` decided."""

    kind: Literal["accepted", "duplicate", "rejected", "fenced", "occurred"]
    seq: int = 0
    task_id: str = ""
    state: str = ""
    result: bytes | None = None
    retry_after_ms: int = 0
    scope_position: int = 0
    epoch: int = 0

    @property
    def scheduled(self) -> bool:
        """Accepted as a scheduled task (it waits in Redis until due)."""
        return self.kind == "accepted" and self.seq == 0


class ClaimReply(msgspec.Struct, frozen=True):
    """What ``task_claim`` decided, and the record of a claimed task."""

    kind: Literal["claimed", "duplicate", "missing", "no_lease", "idempotent_duplicate",
                  "rekey", "misnamed"]
    epoch: int = 0
    attempt: int = 0
    resurrections: int = 0
    max_resurrections: int = 0
    envelope: bytes = b""
    checkpoint: bytes = b""
    task_name: str = ""
    queue: str = ""
    dispatched_at: int = 0
    idem_key: str = ""
    idem_ttl: int = 0
    state: str = ""
    owner: str = ""
    other_task_id: str = ""
    result: bytes | None = None


class CheckpointReply(msgspec.Struct, frozen=True):
    """Outcome of ``task_checkpoint``: stored (and what it replaced), or fenced."""

    stored: bool
    replaced: bytes = b""


class TransitionReply(msgspec.Struct, frozen=True):
    """Outcome of a requeue, republish or release: ``done`` acted, ``dead`` dead-lettered."""

    kind: Literal["done", "dead", "skipped"]
    seq: int = 0


class RenewReply(msgspec.Struct, frozen=True):
    """Outcome of a lease renewal."""

    lost: bool
    running: int = 0
    drain: str = ""


class ScanReply(msgspec.Struct, frozen=True):
    """Due members of a deadline index and the Redis clock."""

    now_ms: int
    next_deadline_ms: int
    due: list[str]


class PromoteReply(msgspec.Struct, frozen=True):
    """Outcome of ``task_promote``: promoted (with the message a separate broker needs)."""

    promoted: bool
    seq: int = 0
    message: bytes = b""


class LockReply(msgspec.Struct, frozen=True):
    """Outcome of ``lock_acquire``."""

    kind: Literal["acquired", "held", "committed"]
    result: bytes | None = None


def _parse_dispatch(reply: list[Any]) -> DispatchReply:
    code = reply[0]
    if code == 1:
        return DispatchReply("accepted", seq=reply[1])
    if code == 2:
        return DispatchReply(
            "duplicate", task_id=text(reply[1]), state=text(reply[2]), result=reply[3]
        )
    if code == 4:
        return DispatchReply("fenced", epoch=int(reply[1]))
    if code == 5:
        return DispatchReply("occurred", task_id=text(reply[1]))
    return DispatchReply("rejected", retry_after_ms=int(reply[1]), scope_position=reply[2])


def _parse_claim(reply: list[Any]) -> ClaimReply:
    code = reply[0]
    if code == 1:
        return ClaimReply(
            "claimed", epoch=reply[1], attempt=reply[2], resurrections=reply[3],
            max_resurrections=reply[4], envelope=reply[5], checkpoint=reply[6],
            task_name=text(reply[7]), queue=text(reply[8]), dispatched_at=reply[9],
            idem_key=text(reply[10]), idem_ttl=reply[11],
        )
    if code == 0:
        return ClaimReply("duplicate", state=text(reply[1]), owner=text(reply[2]))
    if code == -1:
        return ClaimReply("missing")
    if code == -2:
        return ClaimReply("no_lease")
    if code == 4:
        # The idempotency key the caller declared is not the record's: nothing was written.
        return ClaimReply("rekey", idem_key=text(reply[1]))
    if code == 5:
        # The message names another task than the record (forged or misrouted): untouched.
        return ClaimReply("misnamed", task_name=text(reply[1]))
    return ClaimReply("idempotent_duplicate", other_task_id=text(reply[1]), result=reply[2])


def _parse_transition(reply: list[Any]) -> TransitionReply:
    if reply[0] == 1:
        return TransitionReply("done", seq=reply[1])
    return TransitionReply("dead" if reply[0] == 2 else "skipped")


def _parse_promote(reply: list[Any]) -> PromoteReply:
    if reply[0] == 1:
        return PromoteReply(True, seq=int(reply[1]), message=reply[2] or b"")
    return PromoteReply(False)


def _parse_flag(reply: Any) -> bool:
    return bool(reply)


def _parse_checkpoint(reply: list[Any]) -> CheckpointReply:
    if reply[0] == 1:
        return CheckpointReply(stored=True, replaced=reply[1] or b"")
    return CheckpointReply(stored=False)


def _parse_renew(reply: list[Any]) -> RenewReply:
    if reply[0] == 0:
        return RenewReply(lost=True)
    return RenewReply(lost=False, running=reply[1], drain=text(reply[2]))


def _parse_scan(reply: list[Any]) -> ScanReply:
    return ScanReply(int(reply[0]), int(reply[1]), [text(m) for m in reply[2:]])


def _parse_lock(reply: list[Any]) -> LockReply:
    return LockReply(("acquired", "held", "committed")[reply[0]],
                     reply[1] if reply[0] == 2 else None)


def _parse_admit(reply: list[Any]) -> tuple[int, int]:
    return int(reply[0]), int(reply[1])


def _parse_int(reply: Any) -> int:
    return int(reply)


def _scope_args(scopes: tuple[AdmissionScope, ...]) -> list[int]:
    args: list[int] = [len(scopes)]
    for scope in scopes:
        args += [scope.limit, scope.window_ms]
    return args


class Ops:
    """Builders of every script call, over one key layout."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys

    # -- dispatch and execution ----------------------------------------------------------------
    def dispatch(self, request: DispatchRequest, message: bytes = b"") -> Call[DispatchReply]:
        """Dedup, admit, record and publish a new task (``task_dispatch``).

        ``message`` is pushed by the script itself; '' when the broker is another server.
        """
        k, r = self.keys, request
        return Call(
            "task_dispatch",
            [k.task(r.task_id), k.envelope(r.task_id), k.pending(r.queue), k.queue_seq,
             k.broker_list(r.queue, r.priority), r.idem_key or k.task(r.task_id), k.due,
             k.scheduled(r.task_id), k.dlq,
             k.beat_occurrence(r.occurrence) if r.occurrence else k.task(r.task_id),
             *(s.key for s in r.admission)],
            [r.task_id, r.task_name, r.queue, r.envelope, r.max_resurrections,
             r.idem_ttl if r.idem_key else 0, message, r.traceparent, max(0, r.delay_ms),
             1 if r.plain else 0, r.from_epoch,
             max(0, r.occurrence_gap_ms) if r.occurrence else 0, *_scope_args(r.admission)],
            _parse_dispatch,
        )

    def promote(self, *, task_id: str, queue: str, fused: bool) -> Call[PromoteReply]:
        """Move a due scheduled task onto its queue (``task_promote``; replicas race safely)."""
        k = self.keys
        return Call(
            "task_promote",
            [k.task(task_id), k.due, k.scheduled(task_id), k.pending(queue), k.queue_seq,
             k.broker_list(queue)],
            [task_id, queue, 1 if fused else 0],
            _parse_promote,
        )

    def claim(
        self,
        *,
        task_id: str,
        worker_id: str,
        queue: str,
        result_ttl: int,
        idem_key: str = "",
        message_seq: str = "",
        adopt: bytes = b"",
        adopt_name: str = "",
        adopt_max_resurrections: int = 0,
        adopt_idem_ttl: int = 0,
        adopt_plain: bool = False,
    ) -> Call[ClaimReply]:
        """Open a new epoch of a queued task for a worker (``task_claim``).

        ``idem_key`` is only a guess of the record's own key (the script acts on the record's
        key alone and answers ``rekey`` with it when the guess is wrong). ``message_seq`` is the
        broker sequence stamped in the delivered message; only the message the record waits for
        moves the queue's claimed watermark. ``result_ttl`` is the lifetime of a record resolved
        at claim (an idempotent duplicate), as for any completion.
        """
        k = self.keys
        return Call(
            "task_claim",
            [k.task(task_id), k.envelope(task_id), k.pending(queue), k.worker_tasks(worker_id),
             k.workers, k.queue_claimed, idem_key or k.task(task_id)],
            [task_id, worker_id, queue, adopt, adopt_name, adopt_max_resurrections,
             adopt_idem_ttl, result_ttl, message_seq, 1 if adopt_plain else 0],
            _parse_claim,
        )

    def complete(
        self,
        *,
        task_id: str,
        worker_id: str,
        epoch: int,
        result: bytes,
        result_ttl: int,
        idem_key: str = "",
        idem_ttl: int = 0,
    ) -> Call[bool]:
        """Commit a result, fenced on ``epoch`` (``task_complete``); False when fenced."""
        k = self.keys
        return Call(
            "task_complete",
            [k.task(task_id), k.envelope(task_id), k.worker_tasks(worker_id),
             idem_key or k.task(task_id)],
            [task_id, epoch, result, result_ttl, idem_ttl if idem_key else 0],
            _parse_flag,
        )

    def fail(
        self,
        *,
        task_id: str,
        worker_id: str,
        epoch: int,
        reason: str,
        exc_type: str = "",
        message: str = "",
        traceback: str = "",
        outcome: str = "failed",
        raw: bytes = b"",
        task_name: str = "",
        queue: str = "",
        idem_key: str = "",
    ) -> Call[bool]:
        """Dead-letter a run fenced on ``epoch``, or an unclaimed message with epoch 0."""
        k = self.keys
        return Call(
            "task_fail",
            [k.task(task_id), k.envelope(task_id), k.worker_tasks(worker_id), k.dlq,
             idem_key or k.task(task_id)],
            [task_id, epoch, reason, exc_type, message, traceback, outcome, raw, task_name,
             queue],
            _parse_flag,
        )

    def checkpoint(self, *, task_id: str, epoch: int, data: bytes) -> Call[CheckpointReply]:
        """Store a checkpoint fenced on ``epoch``; the reply says whether it was fenced.

        When stored, the reply carries the checkpoint it replaced (whose file the caller
        removes).
        """
        return Call("task_checkpoint", [self.keys.task(task_id)], [epoch, data],
                    _parse_checkpoint)

    # -- recovery ------------------------------------------------------------------------------
    def requeue(
        self,
        *,
        task_id: str,
        owner: str,
        kind: Literal["killed", "lease_expired", "handoff"],
        cause: str,
        queue: str,
        message: bytes = b"",
        idem_key: str = "",
        max_handoffs: int = 10,
        epoch: int = 0,
    ) -> Call[TransitionReply]:
        """Take a running task from ``owner`` and queue it again, or dead-letter it.

        ``max_handoffs`` bounds the hand-offs of one task (``RELIER_MAX_HANDOFFS``).
        With ``kind="lease_expired"`` nothing happens while the owner's lease is live.
        With ``epoch`` > 0 nothing happens unless that incarnation is the one running.
        """
        k = self.keys
        return Call(
            "task_requeue",
            [k.task(task_id), k.worker_tasks(owner), k.pending(queue), k.queue_seq,
             k.broker_list(queue),
             k.dlq, idem_key or k.task(task_id), k.workers],
            [task_id, owner, kind, cause, queue, message, max_handoffs, epoch],
            _parse_transition,
        )

    def republish(
        self,
        *,
        task_id: str,
        queue: str,
        seq: int,
        message: bytes,
        max_republish: int,
        idem_key: str = "",
        bounce: str = "",
    ) -> Call[TransitionReply]:
        """Publish again the lost message of a queued task (compare-and-set on ``seq``).

        With ``bounce`` (the dead-letter message for when the bounces pass ``max_republish``),
        a worker lacking the task puts it back for a busy live worker that has it: counted
        apart from lost messages, dead-lettered as ``UnregisteredTask`` past the limit.
        """
        k = self.keys
        return Call(
            "task_republish",
            [k.task(task_id), k.pending(queue), k.queue_seq, k.broker_list(queue), k.dlq,
             idem_key or k.task(task_id)],
            [task_id, seq, message, max_republish, bounce],
            _parse_transition,
        )

    def reject(
        self, *, task_id: str, queue: str, reason: str, exc_type: str = "", message: str = "",
        idem_key: str = "",
    ) -> Call[bool]:
        """Dead-letter a queued task no worker can run; False when it is not queued any more."""
        k = self.keys
        return Call(
            "task_reject",
            [k.task(task_id), k.pending(queue), k.dlq, idem_key or k.task(task_id)],
            [task_id, reason, exc_type, message],
            _parse_flag,
        )

    def release(
        self, *, task_id: str, queue: str, message: bytes, idem_key: str = ""
    ) -> Call[TransitionReply]:
        """Send a dead-lettered task back to its queue."""
        k = self.keys
        return Call(
            "dlq_release",
            [k.task(task_id), k.dlq, k.pending(queue), k.queue_seq, k.broker_list(queue),
             idem_key or k.task(task_id)],
            [task_id, message],
            _parse_transition,
        )

    def purge(self, *, task_id: str, idem_key: str = "") -> Call[bool]:
        """Delete one dead-lettered task."""
        k = self.keys
        return Call(
            "dlq_purge", [k.task(task_id), k.envelope(task_id), k.dlq,
                          idem_key or k.task(task_id)], [task_id],
            _parse_flag,
        )

    def scan_due(self, index: str, limit: int) -> Call[ScanReply]:
        """Members of a deadline index whose deadline passed, on the Redis clock."""
        return Call("scan_due", [index], [limit], _parse_scan)

    # -- workers -------------------------------------------------------------------------------
    def register_worker(
        self, *, worker_id: str, ttl_ms: int, facts: dict[str, str]
    ) -> Call[int]:
        """Give a worker its lease and record its facts; returns the deadline."""
        flat: list[str] = [item for pair in facts.items() for item in pair]
        return Call(
            "worker_register", [self.keys.workers, self.keys.worker(worker_id)],
            [worker_id, ttl_ms, *flat], _parse_int,
        )

    def renew_worker(self, *, worker_id: str, ttl_ms: int) -> Call[RenewReply]:
        """Extend a worker's lease (one call per interval, whatever it runs)."""
        k = self.keys
        return Call(
            "worker_renew", [k.workers, k.worker(worker_id), k.worker_tasks(worker_id)],
            [worker_id, ttl_ms], _parse_renew,
        )

    def reap_worker(self, *, worker_id: str, force: bool = False) -> Call[bool]:
        """Forget a gone worker that owns no task any more."""
        k = self.keys
        return Call(
            "worker_reap", [k.workers, k.worker(worker_id), k.worker_tasks(worker_id)],
            [worker_id, 1 if force else 0], _parse_flag,
        )

    # -- idempotency_lock ------------------------------------------------------------------------
    def lock_acquire(self, *, key: str, token: str, ttl_ms: int) -> Call[LockReply]:
        """Enter an idempotency_lock block."""
        return Call("lock_acquire", [self.keys.lock(key)], [token, ttl_ms], _parse_lock)

    def lock_renew(self, *, key: str, token: str, ttl_ms: int) -> Call[bool]:
        """Extend a held idempotency_lock."""
        return Call("lock_renew", [self.keys.lock(key)], [token, ttl_ms], _parse_flag)

    def lock_commit(self, *, key: str, token: str, result: bytes, ttl_s: int) -> Call[bool]:
        """Commit the result of an idempotency_lock block."""
        return Call("lock_commit", [self.keys.lock(key)], [token, result, ttl_s], _parse_flag)

    def lock_release(self, *, key: str, token: str) -> Call[bool]:
        """Release an idempotency_lock after the block raised."""
        return Call("lock_release", [self.keys.lock(key)], [token], _parse_flag)

    # -- admission alone -------------------------------------------------------------------------
    def admit(self, *, member: str, scopes: tuple[AdmissionScope, ...]) -> Call[tuple[int, int]]:
        """Check admission without dispatching: ``(retry_after_ms, scope_position)``."""
        return Call(
            "admit", [s.key for s in scopes], [member, *_scope_args(scopes)], _parse_admit
        )
