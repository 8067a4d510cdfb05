"""An in-memory ``LedgerPort``: the ledger's contract without Redis, for phoenix unit tests.

Like dramatiq's ``StubBroker``, this is a stand-in for Relier's own interface, never a fake
Redis: each method keeps the decision its Lua script documents (claim only a queued record,
fence every write on the epoch, requeue as a compare-and-set on the owner, dead-letter past
the limits), on plain dicts and a clock the test moves. The scripts themselves are tested
against a real Redis in ``tests-integration/core/test_lua_scripts.py``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Literal

from relier.core.ops import CheckpointReply, ClaimReply, RenewReply, ScanReply, TransitionReply
from relier.core.queues import RECOVERY_QUEUE
from relier.core.record import TaskRecord
from relier.core.settings import Settings
from relier.phoenix.checkpoints import CheckpointStore
from relier.phoenix.ledger import MAX_BOUNCES, MAX_REPUBLISH
from relier.phoenix.views import WorkerInfo, decode_worker

__all__ = ["Rec", "StubLedger", "settings_for_tests"]


def settings_for_tests(**env: str) -> Settings:
    """Settings from ``env`` only (``RELIER_`` prefixed names), no ``.env`` file."""
    return Settings.load(environ={f"RELIER_{k.upper()}": v for k, v in env.items()},
                         env_file=None)


@dataclass
class Rec:
    """One task record of the stub (the fields the worker side reads or decides on)."""

    name: str
    queue: str
    state: str = "queued"
    epoch: int = 0
    attempt: int = 1
    resurrections: int = 0
    max_resurrections: int = 2
    owner: str = ""
    envelope: bytes = b"ENV"
    checkpoint: bytes = b""
    result: bytes | None = None
    idem_key: str = ""
    idem_ttl: int = 0
    message_queue: str = ""
    message_seq: int = 0
    republished: int = 0
    bounces: int = 0
    handoffs: int = 0
    reason: str = ""
    exc_type: str = ""
    message: str = ""
    outcomes: list[str] = field(default_factory=list)
    legacy: bool = False


class StubLedger:
    """The worker side of the ledger, in memory. ``now_ms`` is the clock (move it by hand)."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or settings_for_tests()
        self.checkpoints = CheckpointStore(self.settings)
        self.now_ms = 1_000_000
        self.records: dict[str, Rec] = {}
        self.idem_owners: dict[str, tuple[str, bytes | None]] = {}
        self.leases: dict[str, int] = {}
        self.facts: dict[str, dict[str, str]] = {}
        self.owned: dict[str, set[str]] = {}
        self.depths: dict[str, int] = {}
        self.marks: dict[str, tuple[int, int]] = {}
        self.put_back_messages: list[tuple[str, bytes]] = []
        self.resurrector_passes: list[str] = []
        self.calls: list[str] = []
        #: Scheduled tasks: id -> due time (ms); promote_due moves the due ones to ``promoted``.
        self.due: dict[str, int] = {}
        self.promoted: list[str] = []
        self._seq = itertools.count(1)

    # -- test set-up -------------------------------------------------------------------------------
    def add(self, task_id: str, name: str = "app.job", queue: str = "default",
            **fields: Any) -> Rec:
        """A dispatched (queued) task."""
        rec = Rec(name=name, queue=queue, message_queue=queue, message_seq=next(self._seq),
                  **fields)
        self.records[task_id] = rec
        if rec.idem_key and rec.idem_key not in self.idem_owners:
            self.idem_owners[rec.idem_key] = (task_id, None)
        return rec

    # -- one run -----------------------------------------------------------------------------------
    def claim(self, *, task_id: str, worker_id: str, queue: str, idem_key: str = "",
              message_seq: str = "", adopt: bytes = b"", adopt_name: str = "",
              adopt_max_resurrections: int = 0, adopt_idem_ttl: int = 0,
              adopt_plain: bool = False) -> ClaimReply:
        self.calls.append(f"claim:{idem_key}")
        if self.leases.get(worker_id, -1) < self.now_ms:
            return ClaimReply("no_lease")
        rec = self.records.get(task_id)
        if rec is None:
            if not adopt:
                return ClaimReply("missing")
            rec = self.add(task_id, adopt_name, queue, envelope=adopt, legacy=True,
                           max_resurrections=adopt_max_resurrections)
        elif adopt_name and rec.name != adopt_name:
            return ClaimReply("misnamed", task_name=rec.name)  # forged or misrouted message
        if rec.state != "queued":
            return ClaimReply("duplicate", state=rec.state, owner=rec.owner)
        if rec.idem_key and rec.idem_key != idem_key:
            return ClaimReply("rekey", idem_key=rec.idem_key)
        if rec.idem_key:
            other, result = self.idem_owners.setdefault(rec.idem_key, (task_id, None))
            if other != task_id:
                rec.state = "done"
                return ClaimReply("idempotent_duplicate", other_task_id=other, result=result)
        rec.epoch += 1
        rec.state, rec.owner = "running", worker_id
        rec.bounces = 0  # bounces count since the last claim
        self.owned.setdefault(worker_id, set()).add(task_id)
        return ClaimReply("claimed", epoch=rec.epoch, attempt=rec.attempt,
                          resurrections=rec.resurrections,
                          max_resurrections=rec.max_resurrections, envelope=rec.envelope,
                          checkpoint=rec.checkpoint, task_name=rec.name, queue=rec.queue,
                          idem_key=rec.idem_key, idem_ttl=rec.idem_ttl)

    def _fenced(self, task_id: str, epoch: int) -> Rec | None:
        rec = self.records.get(task_id)
        if rec is None or rec.state != "running" or rec.epoch != epoch:
            return None
        return rec

    async def acheckpoint(self, task_id: str, epoch: int, data: bytes) -> CheckpointReply:
        self.calls.append("checkpoint")
        rec = self._fenced(task_id, epoch)
        if rec is None:
            return CheckpointReply(stored=False)
        replaced, rec.checkpoint = rec.checkpoint, data
        return CheckpointReply(stored=True, replaced=replaced)

    def _end(self, task_id: str, rec: Rec, state: str, outcome: str) -> None:
        rec.outcomes.append(outcome)
        self.owned.get(rec.owner, set()).discard(task_id)
        rec.state, rec.owner = state, ""

    def complete(self, *, task_id: str, worker_id: str, epoch: int, result: bytes,
                 idem_key: str = "", idem_ttl: int = 0) -> bool:
        self.calls.append("complete")
        rec = self._fenced(task_id, epoch)
        if rec is None:
            return False
        rec.result = result
        if idem_ttl and self.idem_owners.get(idem_key, ("",))[0] == task_id:
            self.idem_owners[idem_key] = (task_id, result)
        self._end(task_id, rec, "done", "completed")
        return True

    def fail(self, *, task_id: str, worker_id: str, epoch: int, reason: str,
             exc_type: str = "", message: str = "", traceback: str = "",
             outcome: str = "failed", raw: bytes = b"", task_name: str = "", queue: str = "",
             idem_key: str = "") -> bool:
        self.calls.append("fail")
        if epoch == 0:
            if task_id in self.records:
                return False
            rec = self.add(task_id, task_name, queue, envelope=raw)
            rec.state = "running"
        else:
            found = self._fenced(task_id, epoch)
            if found is None:
                return False
            rec = found
        rec.reason, rec.exc_type, rec.message = reason, exc_type, message
        self._end(task_id, rec, "dead", outcome)
        return True

    # -- moving tasks --------------------------------------------------------------------------
    def _dead(self, rec: Rec, reason: str) -> TransitionReply:
        rec.state, rec.reason = "dead", reason
        return TransitionReply("dead")

    def requeue(self, task_id: str, *, owner: str,
                kind: Literal["killed", "lease_expired", "handoff"], cause: str,
                recovery_seconds: float | None = None, epoch: int = 0) -> TransitionReply:
        self.calls.append(f"requeue:{task_id}:{kind}")
        rec = self.records.get(task_id)
        if kind == "lease_expired" and self.leases.get(owner, -1) > self.now_ms:
            return TransitionReply("skipped")
        if rec is None or rec.state != "running" or rec.owner != owner:
            self.owned.get(owner, set()).discard(task_id)
            return TransitionReply("skipped")
        if epoch and rec.epoch != epoch:
            return TransitionReply("skipped")  # another incarnation runs: left alone
        self._end(task_id, rec, "running", kind)
        if kind == "handoff":
            rec.handoffs += 1
            if rec.handoffs > self.settings.max_handoffs:
                return self._dead(rec, "max_handoffs_exceeded")
        else:
            rec.resurrections += 1
        if rec.resurrections > rec.max_resurrections:
            return self._dead(rec, "max_resurrections_exceeded")
        rec.state, rec.attempt = "queued", rec.attempt + 1
        rec.message_queue, rec.message_seq = RECOVERY_QUEUE, next(self._seq)
        return TransitionReply("done", seq=rec.message_seq)

    def republish(self, task_id: str, queue: str, seq: int, *, bounce: str = ""
                  ) -> TransitionReply:
        self.calls.append(f"republish:{task_id}" + (":bounce" if bounce else ""))
        rec = self.records.get(task_id)
        if rec is None or rec.state != "queued" or rec.message_seq != seq:
            return TransitionReply("skipped")
        if bounce:  # counted apart from lost messages, with its own limit and reason
            rec.bounces += 1
            if rec.bounces > MAX_BOUNCES:
                rec.message = bounce
                return self._dead(rec, "UnregisteredTask")
        else:
            rec.republished += 1
            if rec.republished > MAX_REPUBLISH:
                return self._dead(rec, "NeverClaimed")
        rec.message_seq = next(self._seq)
        return TransitionReply("done", seq=rec.message_seq)

    def reject(self, *, task_id: str, queue: str, reason: str, exc_type: str = "",
               message: str = "") -> bool:
        rec = self.records.get(task_id)
        if rec is None or rec.state != "queued":
            return False
        self._dead(rec, reason)
        return True

    def put_back(self, queue: str, message: bytes) -> None:
        self.put_back_messages.append((queue, message))

    def record_fields(self, task_id: str, *names: str) -> TaskRecord:
        rec = self.records.get(task_id)
        if rec is None:
            return TaskRecord(task_id=task_id)
        return TaskRecord(task_id=task_id, task_name=rec.name, queue=rec.queue,
                          state=rec.state,  # type: ignore[arg-type]
                          epoch=rec.epoch, owner=rec.owner, message_queue=rec.message_queue,
                          message_seq=rec.message_seq, reason=rec.reason,
                          message=rec.message, bounces=rec.bounces,
                          idempotency_key=rec.idem_key)

    # -- workers -------------------------------------------------------------------------------
    def register_worker(self, worker_id: str, *, ttl_ms: int, facts: dict[str, str]) -> int:
        self.leases[worker_id] = self.now_ms + ttl_ms
        self.facts.setdefault(worker_id, {}).update(facts)
        self.facts[worker_id].pop("drain", None)
        return self.leases[worker_id]

    def renew_worker(self, worker_id: str, *, ttl_ms: int) -> RenewReply:
        if self.leases.get(worker_id, -1) <= self.now_ms:
            return RenewReply(lost=True)
        self.leases[worker_id] = self.now_ms + ttl_ms
        return RenewReply(lost=False, running=len(self.owned.get(worker_id, ())),
                          drain=self.facts.get(worker_id, {}).get("drain", ""))

    def reap_worker(self, worker_id: str, *, force: bool = False) -> bool:
        if not force and self.leases.get(worker_id, -1) > self.now_ms:
            return False
        if self.owned.get(worker_id):
            return False
        self.leases.pop(worker_id, None)
        self.facts.pop(worker_id, None)
        return True

    def worker_tasks(self, worker_id: str) -> set[str]:
        return set(self.owned.get(worker_id, ()))

    def sample_worker_tasks(self, worker_id: str, count: int) -> list[str]:
        return sorted(self.owned.get(worker_id, ()))[:count]

    def worker(self, worker_id: str) -> WorkerInfo | None:
        if worker_id not in self.leases:
            return None
        return decode_worker(worker_id, self.facts.get(worker_id, {}),
                             deadline_ms=self.leases[worker_id])

    def workers(self, *, live_only: bool = False, running: bool = False) -> list[WorkerInfo]:
        found = [self.worker(w) for w in self.leases
                 if not live_only or self.leases[w] >= self.now_ms]
        return [w for w in found if w is not None]

    def worker_state(self, worker_id: str) -> str:
        return self.facts.get(worker_id, {}).get("state", "")

    def set_worker_state(self, worker_id: str, state: str) -> None:
        self.facts.setdefault(worker_id, {})["state"] = state

    def clear_drain_request(self, worker_id: str) -> None:
        self.facts.get(worker_id, {}).pop("drain", None)

    # -- recovery --------------------------------------------------------------------------------
    def mark_resurrector(self, resurrector_id: str) -> None:
        self.resurrector_passes.append(resurrector_id)

    def expired_workers(self, limit: int) -> ScanReply:
        due = sorted(w for w, d in self.leases.items() if d <= self.now_ms)[:limit]
        later = [d for d in self.leases.values() if d > self.now_ms]
        return ScanReply(self.now_ms, min(later) if later else -1, due)

    def promote_due(self, limit: int) -> tuple[int, int]:
        ready = sorted((d, t) for t, d in self.due.items() if d <= self.now_ms)[:limit]
        for _, task_id in ready:
            del self.due[task_id]
            self.promoted.append(task_id)
        later = [d for d in self.due.values() if d > self.now_ms]
        return len(ready), min(later) - self.now_ms if later else -1

    def queue_depth(self, queue: str) -> int:
        return self.depths.get(queue, 0)

    def queue_depths(self, queues: list[str]) -> dict[str, int]:
        return {q: self.queue_depth(q) for q in queues}

    def watermarks(self) -> dict[str, tuple[int, int]]:
        return dict(self.marks)

    def queued_up_to(self, queue: str, seq: int, limit: int) -> list[tuple[str, int]]:
        found = sorted((r.message_seq, task_id) for task_id, r in self.records.items()
                       if r.state == "queued" and r.message_queue == queue
                       and r.message_seq <= seq)
        return [(task_id, s) for s, task_id in found[:limit]]

