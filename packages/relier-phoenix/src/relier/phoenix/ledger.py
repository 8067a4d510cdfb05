"""The task ledger: the only door to task records, worker leases and their indexes.

Every process reads and changes task state through a ``Ledger``: producers dispatch through
it, workers claim, checkpoint, complete and fail through it, the lease keeper, the
resurrector, drain and the dead-letter queue move tasks through it, and the CLI reads
through it. Nothing else touches the Redis keys or the record's fields: the key layout
(``relier.core.keys``), the record's fields (``relier.core.record``) and the script calls
(``relier.core.ops``) are this class's private machinery (``_keys``, ``_ops``,
``_scripts``). Reads return typed values (``TaskRecord``, ``relier.phoenix.views``).

When the broker is the coordination Redis itself (the default), each state change and its
broker message are one atomic script call; when ``RELIER_BROKER_URL`` names another server,
the script runs first and the message is pushed right after (a message lost in between is
found and re-published by the resurrector's lost-message pass). Queue depths are measured on
the broker, where kombu's lists live.

``LedgerPort`` (``relier.phoenix.port``) is the part of this interface the worker side
(middleware, lease keeper, resurrector, drain) uses; its unit tests run on an in-memory stub
of it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Literal, TypeVar

import msgspec
import redis
import redis.asyncio as aredis

from relier.core import events
from relier.core.codec import text
from relier.core.connection import async_redis_client, redis_client
from relier.core.keys import Keys
from relier.core.ops import (
    AdmissionScope,
    CheckpointReply,
    ClaimReply,
    DispatchReply,
    DispatchRequest,
    Ops,
    PromoteReply,
    RenewReply,
    ScanReply,
    TransitionReply,
)
from relier.core.plain import readdress, sealed_body
from relier.core.preflight import PreflightReport, run_preflight
from relier.core.queues import RECOVERY_QUEUE
from relier.core.record import (
    ATTEMPT,
    CHECKPOINT,
    DEAD_REASON,
    IDEM_KEY,
    MESSAGE_QUEUE,
    MESSAGE_SEQ,
    NAME,
    OWNER,
    PLAIN,
    QUEUE,
    RESURRECTIONS,
    STARTED_MS,
    STATE,
    TRACEPARENT,
    TaskRecord,
    decode_record,
    fields_of,
)
from relier.core.scripts import AsyncScripts, Call, Scripts, async_scripts, scripts
from relier.core.settings import Settings, get_settings
from relier.phoenix.broker import build_message, stamp_seq
from relier.phoenix.checkpoints import CheckpointStore
from relier.phoenix.views import (
    FACT_DRAIN,
    FACT_HOSTNAME,
    FACT_STATE,
    HealthFacts,
    InflightTask,
    TaskView,
    WorkerInfo,
    decode_worker,
)

__all__ = ["MAX_BOUNCES", "MAX_REPUBLISH", "RECOVERY_QUEUE", "Ledger", "PreparedDispatch",
           "retry_transient"]

log = logging.getLogger("relier.phoenix")

#: How many times a queued task's lost message is re-published before it is dead-lettered.
MAX_REPUBLISH = 10
#: How many times, since its last claim, workers lacking a task may put it back for a busy live
#: worker that registered it before it is dead-lettered as ``UnregisteredTask``. Counted apart
#: from ``MAX_REPUBLISH`` and generous: with the back-off of ``relier.phoenix.registry`` (at
#: most 2.5 s apart at the default grace period) it is about ten minutes of waiting.
MAX_BOUNCES = 240

#: A resurrector counts as live for ``rl doctor`` when its last pass is this recent.
RESURRECTOR_LIVE_MS = 10_000

T = TypeVar("T")

_TRANSIENT = (redis.ConnectionError, redis.TimeoutError)

RequeueKind = Literal["killed", "lease_expired", "handoff"]


class PreparedDispatch(msgspec.Struct, frozen=True):
    """A dispatch ready to run: the request, its script call and its broker message (no I/O yet).

    Prepared apart from running so that the producer can tell a failure of the script
    (nothing written) from a failure to publish to a separate broker (the task is accepted).
    """

    request: DispatchRequest
    call: Call[DispatchReply]
    message: bytes


def _now_ms(reply: Sequence[Any]) -> int:
    seconds, micros = reply
    return int(seconds) * 1000 + int(micros) // 1000


class Ledger:
    """Typed access to task records and worker leases for one settings object."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self._keys = Keys(self.settings.key_prefix)
        self._ops = Ops(self._keys)
        self.checkpoints = CheckpointStore(self.settings)
        self.fused = self.settings.broker_url == self.settings.redis_url

    # -- clients (private: callers use the methods below) ---------------------------------------
    @property
    def _client(self) -> redis.Redis:
        return redis_client(self.settings)

    @property
    def _scripts(self) -> Scripts:
        return scripts(self._client)

    def _ascripts(self) -> AsyncScripts:
        return async_scripts(async_redis_client(self.settings))

    def _broker(self) -> redis.Redis:
        # kombu's lists live on the broker (RELIER_BROKER_URL), which may be another server:
        # every push to them and every look at their length goes here.
        return redis_client(self.settings, url=self.settings.broker_url)

    def _abroker(self) -> aredis.Redis:
        return async_redis_client(self.settings, url=self.settings.broker_url)

    def now_ms(self) -> int:
        """The Redis server's clock in ms (the clock every deadline is on)."""
        return _now_ms(self._client.time())

    def preflight(self, *, write: bool = False) -> PreflightReport:
        """The preflight checks of the coordination store (``write``: record the keyspace)."""
        return run_preflight(self._client, self.settings, write=write)

    # -- dispatch --------------------------------------------------------------------------------
    def prepare_dispatch(self, request: DispatchRequest, message: bytes = b""
                         ) -> PreparedDispatch:
        """The dispatch script call and the broker message it publishes (no I/O).

        ``message`` is the stored plain Celery message of a ``plain`` request
        (``relier.core.plain.stored_message``); a Relier task gets its doorbell built here.
        A scheduled task's message is always handed to the script, which keeps it until the
        task is due.
        """
        if not message:
            message = build_message(request.task_id, request.task_name, request.queue,
                                    request.idem_key, request.traceparent)
        handed = message if self.fused or request.delay_ms > 0 else b""
        call = self._ops.dispatch(request, handed)
        return PreparedDispatch(request, call, message)

    def record_dispatch(self, prepared: PreparedDispatch) -> DispatchReply:
        """Run the dispatch script (sync); a fused broker gets the message in the same step."""
        return self._scripts.run(prepared.call)

    async def arecord_dispatch(self, prepared: PreparedDispatch) -> DispatchReply:
        """``record_dispatch`` from asyncio code."""
        return await self._ascripts().run(prepared.call)

    def publish_accepted(self, prepared: PreparedDispatch, seq: int) -> None:
        """Push an accepted dispatch's message to a separate broker (fused: the script did).

        ``seq`` is the sequence the script gave the task; the message carries it so that its
        claim can move the queue's watermark.
        """
        if not self.fused and seq:
            request = prepared.request
            self._broker().lpush(self._keys.broker_list(request.queue, request.priority),
                                 stamp_seq(prepared.message, seq))

    async def apublish_accepted(self, prepared: PreparedDispatch, seq: int) -> None:
        """``publish_accepted`` from asyncio code."""
        if not self.fused and seq:
            request = prepared.request
            await self._abroker().lpush(self._keys.broker_list(request.queue, request.priority),
                                        stamp_seq(prepared.message, seq))

    def dispatch(self, request: DispatchRequest) -> DispatchReply:
        """Record and publish a task in one call (sync)."""
        prepared = self.prepare_dispatch(request)
        reply = self.record_dispatch(prepared)
        if reply.kind == "accepted":
            self.publish_accepted(prepared, reply.seq)
        return reply

    # -- one run: claim, checkpoint, complete, fail ---------------------------------------------
    def claim(
        self,
        *,
        task_id: str,
        worker_id: str,
        queue: str,
        idem_key: str = "",
        message_seq: str = "",
        adopt: bytes = b"",
        adopt_name: str = "",
        adopt_max_resurrections: int = 0,
        adopt_idem_ttl: int = 0,
        adopt_plain: bool = False,
    ) -> ClaimReply:
        """Open a new epoch of a queued task for ``worker_id`` (see ``Ops.claim``)."""
        return self._scripts.run(self._ops.claim(
            task_id=task_id, worker_id=worker_id, queue=queue,
            result_ttl=self.settings.result_ttl, idem_key=idem_key, message_seq=message_seq,
            adopt=adopt, adopt_name=adopt_name,
            adopt_max_resurrections=adopt_max_resurrections, adopt_idem_ttl=adopt_idem_ttl,
            adopt_plain=adopt_plain,
        ))

    async def acheckpoint(self, task_id: str, epoch: int, data: bytes) -> CheckpointReply:
        """Store a checkpoint fenced on ``epoch`` (asyncio: checkpoints are awaited)."""
        return await self._ascripts().run(self._ops.checkpoint(task_id=task_id, epoch=epoch,
                                                               data=data))

    def complete(self, *, task_id: str, worker_id: str, epoch: int, result: bytes,
                 idem_key: str = "", idem_ttl: int = 0) -> bool:
        """Commit a result fenced on ``epoch``; False when fenced (nothing written)."""
        return self._scripts.run(self._ops.complete(
            task_id=task_id, worker_id=worker_id, epoch=epoch, result=result,
            result_ttl=self.settings.result_ttl, idem_key=idem_key, idem_ttl=idem_ttl,
        ))

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
    ) -> bool:
        """Dead-letter a run fenced on ``epoch``, or with epoch 0 a message never claimed.

        Returns False when fenced or already terminal (nothing written).
        """
        return self._scripts.run(self._ops.fail(
            task_id=task_id, worker_id=worker_id, epoch=epoch, reason=reason,
            exc_type=exc_type, message=message, traceback=traceback, outcome=outcome,
            raw=raw, task_name=task_name, queue=queue, idem_key=idem_key,
        ))

    def reject(self, *, task_id: str, queue: str, reason: str, exc_type: str = "",
               message: str = "") -> bool:
        """Dead-letter a queued task no worker can run; False when it is not queued any more."""
        idem = self.record_fields(task_id, IDEM_KEY).idempotency_key
        return self._scripts.run(self._ops.reject(
            task_id=task_id, queue=queue, reason=reason, exc_type=exc_type, message=message,
            idem_key=idem,
        ))

    # -- moving tasks ----------------------------------------------------------------------------
    def _publish(self, queue: str, message: bytes, reply: TransitionReply) -> TransitionReply:
        if reply.kind == "done" and not self.fused:
            self._broker().lpush(self._keys.broker_list(queue), stamp_seq(message, reply.seq))
        return reply

    def requeue(
        self,
        task_id: str,
        *,
        owner: str,
        kind: RequeueKind,
        cause: str,
        recovery_seconds: float | None = None,
        epoch: int = 0,
    ) -> TransitionReply:
        """Take a running task from ``owner`` and put it on the recovery queue (or the DLQ).

        A compare-and-set on the owner, and with ``epoch`` > 0 on that incarnation too:
        calling it again, or from another process, after the first call acted is a no-op that
        returns ``skipped``.
        """
        found = self._doorbell(task_id, RECOVERY_QUEUE)
        if found is None:
            self._client.srem(self._keys.worker_tasks(owner), task_id)
            return TransitionReply("skipped")
        name, _, idem_key, message = found
        reply = self._scripts.run(self._ops.requeue(
            task_id=task_id, owner=owner, kind=kind, cause=cause, queue=RECOVERY_QUEUE,
            message=message if self.fused else b"", idem_key=idem_key,
            max_handoffs=self.settings.max_handoffs, epoch=epoch,
        ))
        if reply.kind == "dead":
            reason = self.record_fields(task_id, DEAD_REASON).reason
            if reason == "max_handoffs_exceeded":
                log.error("task %s dead-lettered: handed off more than RELIER_MAX_HANDOFFS=%d "
                          "times (last: %s)", task_id, self.settings.max_handoffs, cause)
            else:
                log.error("task %s dead-lettered: it lost its worker more than "
                          "max_resurrections times (last: %s)", task_id, cause)
            events.emit("task.dead_lettered", task=name, task_id=task_id,
                        queue=RECOVERY_QUEUE, reason=reason or "max_resurrections_exceeded")
        if reply.kind != "skipped":
            events.emit("task.resurrected", task=name, task_id=task_id, kind=kind,
                        cause=cause, outcome=reply.kind, recovery_seconds=recovery_seconds)
        return self._publish(RECOVERY_QUEUE, message, reply)

    def _doorbell(self, task_id: str, queue: str | None = None
                  ) -> tuple[str, str, str, bytes] | None:
        """Name, queue, idempotency key and a fresh message of a task (None: no record).

        ``queue`` defaults to the one the task was dispatched to.
        """
        rec = self.record_fields(task_id, NAME, QUEUE, IDEM_KEY, TRACEPARENT, PLAIN)
        to = queue or rec.queue
        if not rec.task_name or not to:
            return None
        if rec.plain:
            # A plain Celery task is re-published as the message its producer sent (arguments
            # and all), kept sealed as its envelope.
            raw: bytes | None = self._client.get(  # type: ignore[assignment]
                self._keys.envelope(task_id))
            stored = sealed_body(raw or b"")
            if not stored:
                return None
            return rec.task_name, to, rec.idempotency_key, readdress(stored, to)
        return rec.task_name, to, rec.idempotency_key, build_message(
            task_id, rec.task_name, to, rec.idempotency_key, rec.traceparent)

    def republish(self, task_id: str, queue: str, seq: int, *, bounce: str = ""
                  ) -> TransitionReply:
        """Publish again the message of a queued task whose message was lost.

        With ``bounce``, a worker that lacks the task puts it back for a busy live worker that
        registered it: not counted toward ``MAX_REPUBLISH`` (NeverClaimed) but toward
        ``MAX_BOUNCES``, past which the task is dead-lettered as ``UnregisteredTask`` with
        ``bounce`` as its message.
        """
        found = self._doorbell(task_id, queue)
        if found is None:
            self._client.zrem(self._keys.pending(queue), task_id)
            return TransitionReply("skipped")
        _, _, idem_key, message = found
        reply = self._scripts.run(self._ops.republish(
            task_id=task_id, queue=queue, seq=seq, message=message if self.fused else b"",
            max_republish=MAX_BOUNCES if bounce else MAX_REPUBLISH, idem_key=idem_key,
            bounce=bounce,
        ))
        return self._publish(queue, message, reply)

    def redeliver(self, task_id: str) -> bool:
        """Publish the ledger's own copy of a message that kombu handed back.

        kombu hands a message back on a reject with requeue, or when a shutdown returns
        prefetched messages. The copy kombu holds is the one the broker delivered, which may
        have been forged, so it is never sealed as the task's new content. A running task is
        handed back (a hand-off: capped by ``RELIER_MAX_HANDOFFS``, so a task that rejects
        itself forever still ends); a queued one gets its message published again (the claim
        makes a second copy harmless); a finished, dead or scheduled one stays as it is.
        Returns False when there is no record (the caller records the message as a new task).
        """
        rec = self.record_fields(task_id, STATE, OWNER, MESSAGE_QUEUE, MESSAGE_SEQ)
        if rec.state == "unknown":
            return False
        if rec.state == "running" and rec.owner:
            self.requeue(task_id, owner=rec.owner, kind="handoff",
                         cause="its broker message was handed back (reject with requeue, or a "
                               "worker returning prefetched messages)")
        elif rec.state == "queued" and rec.message_queue and rec.message_seq:
            self.republish(task_id, rec.message_queue, rec.message_seq)
        return True

    def release(self, task_id: str) -> TransitionReply:
        """Send a dead-lettered task back to the queue it was dispatched to."""
        found = self._doorbell(task_id)
        if found is None:
            return TransitionReply("skipped")
        _, queue, idem_key, message = found
        reply = self._scripts.run(self._ops.release(
            task_id=task_id, queue=queue, message=message if self.fused else b"",
            idem_key=idem_key,
        ))
        return self._publish(queue, message, reply)

    def purge(self, task_id: str) -> bool:
        """Delete one dead-lettered task for good; False when it is not dead-lettered."""
        idem = self.record_fields(task_id, IDEM_KEY).idempotency_key
        return bool(self._scripts.run(self._ops.purge(task_id=task_id, idem_key=idem)))

    def promote_due(self, limit: int) -> tuple[int, int]:
        """Move scheduled tasks whose due time has come onto their queues (O(due), I6).

        Returns how many this call promoted and the ms until the next one is due (-1: none
        is scheduled). Any number of resurrectors may call it at once: each task is promoted
        once.
        """
        scan = self._scripts.run(self._ops.scan_due(self._keys.due, limit))
        until_next = -1 if scan.next_deadline_ms < 0 else scan.next_deadline_ms - scan.now_ms
        if not scan.due:
            return 0, until_next
        promoted = 0
        pipe = self._client.pipeline(transaction=False)
        for task_id in scan.due:
            pipe.hget(self._keys.task(task_id), QUEUE)
        for task_id, queue in zip(scan.due, pipe.execute(), strict=True):
            reply: PromoteReply = self._scripts.run(self._ops.promote(
                task_id=task_id, queue=text(queue), fused=self.fused))
            promoted += reply.promoted
            if reply.promoted and reply.message:
                self._broker().lpush(self._keys.broker_list(text(queue)), reply.message)
        # More were due than ``limit``: the next pass should come at once.
        return promoted, 0 if len(scan.due) >= limit else until_next

    def scheduled_count(self) -> int:
        """Tasks waiting for their due time (countdown, eta)."""
        return int(self._client.zcard(self._keys.due))

    def admit(self, *, member: str, scopes: tuple[AdmissionScope, ...]) -> tuple[int, int]:
        """Check admission alone: ``(retry_after_ms, scope_position)``, ``(0, 0)`` admitted."""
        return self._scripts.run(self._ops.admit(member=member, scopes=scopes))

    def put_back(self, queue: str, message: bytes) -> None:
        """Push a raw kombu message (a plain Celery one, no record) to ``queue`` on the broker."""
        self._broker().lpush(self._keys.broker_list(queue), message)

    def count_legacy_message(self) -> None:
        """Count one plain Celery message adopted (a cluster-wide statistic)."""
        self._client.hincrby(self._keys.stats, "legacy_messages", 1)

    # -- reading records -------------------------------------------------------------------------
    def record(self, task_id: str) -> TaskRecord:
        """One task record, whole, with its envelope (state ``unknown``: no record)."""
        pipe = self._client.pipeline(transaction=False)
        pipe.hgetall(self._keys.task(task_id))
        pipe.get(self._keys.envelope(task_id))
        fields, envelope = pipe.execute()
        return decode_record(task_id, fields, envelope)

    def record_fields(self, task_id: str, *names: str) -> TaskRecord:
        """Some fields of a record (``relier.core.record`` constants); the rest default."""
        values = self._client.hmget(self._keys.task(task_id), list(names))
        return decode_record(task_id, fields_of(names, values))

    async def arecord_fields(self, task_id: str, *names: str) -> TaskRecord:
        """``record_fields`` from asyncio code."""
        client = async_redis_client(self.settings)
        values = await client.hmget(self._keys.task(task_id), list(names))
        return decode_record(task_id, fields_of(names, values))

    def records(self, task_ids: Sequence[str]) -> list[TaskRecord]:
        """Whole records of many tasks, with envelopes, in one round trip."""
        pipe = self._client.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.hgetall(self._keys.task(task_id))
            pipe.get(self._keys.envelope(task_id))
        replies = pipe.execute()
        return [decode_record(task_id, fields, envelope) for task_id, fields, envelope
                in zip(task_ids, replies[::2], replies[1::2], strict=True)]

    def task_view(self, task_id: str) -> TaskView:
        """A record with its DLQ membership, the Redis clock and its owner's lease."""
        pipe = self._client.pipeline(transaction=False)
        pipe.hgetall(self._keys.task(task_id))
        pipe.get(self._keys.envelope(task_id))
        pipe.zscore(self._keys.dlq, task_id)
        pipe.time()
        fields, envelope, dlq_score, clock = pipe.execute()
        rec = decode_record(task_id, fields, envelope)
        view = TaskView(record=rec, found=bool(fields), in_dlq=dlq_score is not None,
                        now_ms=_now_ms(clock))
        if rec.state == "running" and rec.owner:
            deadline = self._client.zscore(self._keys.workers, rec.owner)
            host = self._client.hget(self._keys.worker(rec.owner), FACT_HOSTNAME)
            view = msgspec.structs.replace(
                view, lease_deadline_ms=None if deadline is None else int(deadline),
                owner_hostname=text(host))
        return view

    def queued_names(self, queue: str, sample: int) -> list[str]:
        """Task names of the ``sample`` oldest queued tasks of ``queue`` ('' for no record)."""
        ids = [text(m) for m in self._client.zrange(self._keys.pending(queue), 0, sample - 1)]
        if not ids:
            return []
        pipe = self._client.pipeline(transaction=False)
        for task_id in ids:
            pipe.hget(self._keys.task(task_id), NAME)
        return [text(name) for name in pipe.execute()]

    # -- the dead-letter queue -------------------------------------------------------------------
    def dlq_count(self) -> int:
        """Number of dead-lettered tasks."""
        return int(self._client.zcard(self._keys.dlq))

    def dlq_ids(self, *, newest_first: bool = True, page: int = 500) -> Iterator[str]:
        """Ids in the dead-letter queue, paged (newest first by default)."""
        client, key = self._client, self._keys.dlq
        start = 0
        while True:
            chunk = (client.zrevrange(key, start, start + page - 1) if newest_first
                     else client.zrange(key, start, start + page - 1))
            if not chunk:
                return
            yield from (text(m) for m in chunk)
            start += page

    # -- workers ---------------------------------------------------------------------------------
    def register_worker(self, worker_id: str, *, ttl_ms: int, facts: dict[str, str]) -> int:
        """Give a worker its lease and record its facts; returns the deadline."""
        return self._scripts.run(self._ops.register_worker(worker_id=worker_id, ttl_ms=ttl_ms,
                                                           facts=facts))

    def renew_worker(self, worker_id: str, *, ttl_ms: int) -> RenewReply:
        """Extend a worker's lease (one call per interval, whatever it runs)."""
        return self._scripts.run(self._ops.renew_worker(worker_id=worker_id, ttl_ms=ttl_ms))

    def reap_worker(self, worker_id: str, *, force: bool = False) -> bool:
        """Forget a gone worker that owns no task any more (``force``: it leaves cleanly)."""
        return self._scripts.run(self._ops.reap_worker(worker_id=worker_id, force=force))

    def worker_tasks(self, worker_id: str) -> set[str]:
        """Ids of the tasks the ledger says ``worker_id`` runs."""
        return {text(m) for m in self._client.smembers(self._keys.worker_tasks(worker_id))}

    def sample_worker_tasks(self, worker_id: str, count: int) -> list[str]:
        """Up to ``count`` of the tasks ``worker_id`` runs (any of them)."""
        members = self._client.srandmember(self._keys.worker_tasks(worker_id), count) or []
        return [text(m) for m in members]

    def worker(self, worker_id: str) -> WorkerInfo | None:
        """One worker's lease and facts (None: no lease)."""
        deadline = self._client.zscore(self._keys.workers, worker_id)
        if deadline is None:
            return None
        return decode_worker(worker_id, self._client.hgetall(self._keys.worker(worker_id)),
                             deadline_ms=int(deadline))

    def workers(self, *, live_only: bool = False, running: bool = False) -> list[WorkerInfo]:
        """Every registered worker (``live_only``: lease not expired, Redis clock).

        ``running``: also count the tasks each one runs.
        """
        client, keys = self._client, self._keys
        low = self.now_ms() if live_only else "-inf"
        leases: list[tuple[bytes, float]] = client.zrangebyscore(  # type: ignore[assignment]
            keys.workers, low, "+inf", withscores=True)
        pipe = client.pipeline(transaction=False)
        for raw, _ in leases:
            pipe.hgetall(keys.worker(text(raw)))
            if running:
                pipe.scard(keys.worker_tasks(text(raw)))
        replies = pipe.execute()
        step = 2 if running else 1
        return [decode_worker(text(raw), replies[i * step], deadline_ms=int(deadline),
                              running=int(replies[i * step + 1]) if running else 0)
                for i, (raw, deadline) in enumerate(leases)]

    def worker_state(self, worker_id: str) -> str:
        """The state a worker recorded (``running``, ``draining``; '' when unknown)."""
        return text(self._client.hget(self._keys.worker(worker_id), FACT_STATE))

    def set_worker_state(self, worker_id: str, state: str) -> None:
        """Record a worker's state for operators and its pool children."""
        self._client.hset(self._keys.worker(worker_id), FACT_STATE, state)

    def clear_drain_request(self, worker_id: str) -> None:
        """Forget a remote drain request once the worker acted on it."""
        self._client.hdel(self._keys.worker(worker_id), FACT_DRAIN)

    def request_drain(self, hostname: str, timeout: float) -> list[str]:
        """Ask every live worker process of node ``hostname`` to drain; returns their ids."""
        asked = []
        for w in self.workers():
            if w.hostname == hostname:
                self._client.hset(self._keys.worker(w.worker_id), FACT_DRAIN, str(timeout))
                asked.append(w.worker_id)
        return asked

    def inflight(self, worker: str | None = None) -> list[InflightTask]:
        """The running tasks of every registered worker (or of one: hostname or lease id)."""
        client, keys = self._client, self._keys
        rows = []
        for w in self.workers():
            if worker and worker not in (w.hostname, w.worker_id):
                continue
            ids = sorted(self.worker_tasks(w.worker_id))
            pipe = client.pipeline(transaction=False)
            names = (NAME, ATTEMPT, STARTED_MS, RESURRECTIONS)
            for task_id in ids:
                pipe.hmget(keys.task(task_id), list(names))
                pipe.hstrlen(keys.task(task_id), CHECKPOINT)
            replies = pipe.execute()
            for task_id, values, ck in zip(ids, replies[::2], replies[1::2], strict=True):
                rec = decode_record(task_id, fields_of(names, values))
                rows.append(InflightTask(
                    task_id=task_id, task_name=rec.task_name or "?", worker_id=w.worker_id,
                    hostname=w.hostname, attempt=rec.attempt,
                    resurrections=rec.resurrections, started_ms=rec.started_ms,
                    lease_deadline_ms=w.deadline_ms, checkpoint_bytes=int(ck),
                ))
        return rows

    # -- recovery (the resurrector) ----------------------------------------------------------------
    def mark_resurrector(self, resurrector_id: str) -> None:
        """Record a resurrector's pass (its liveness, for ``rl doctor``)."""
        self._client.zadd(self._keys.resurrectors, {resurrector_id: int(time.time() * 1000)})

    def expired_workers(self, limit: int) -> ScanReply:
        """Workers whose lease deadline passed (O(expired)), with the Redis clock."""
        return self._scripts.run(self._ops.scan_due(self._keys.workers, limit))

    def queue_depth(self, queue: str) -> int:
        """Messages waiting in ``queue`` (on the broker)."""
        return int(self._broker().llen(self._keys.broker_list(queue)))

    def queue_depths(self, queues: Iterable[str]) -> dict[str, int]:
        """Messages waiting per queue (on the broker), in one round trip."""
        names = list(queues)
        pipe = self._broker().pipeline(transaction=False)
        for queue in names:
            pipe.llen(self._keys.broker_list(queue))
        return {q: int(n) for q, n in zip(names, pipe.execute(), strict=True)}

    def watermarks(self) -> dict[str, tuple[int, int]]:
        """Per queue ever published to: ``(last sequence published, highest claimed)``."""
        published = self._client.hgetall(self._keys.queue_seq)
        if not published:
            return {}
        claimed = self._client.hgetall(self._keys.queue_claimed)
        return {text(q): (int(seq), int(claimed.get(q, 0))) for q, seq in published.items()}

    def queued_up_to(self, queue: str, seq: int, limit: int) -> list[tuple[str, int]]:
        """Queued tasks of ``queue`` whose broker sequence is at most ``seq``, oldest first."""
        found: list[tuple[bytes, float]] = self._client.zrangebyscore(  # type: ignore[assignment]
            self._keys.pending(queue), "-inf", seq, start=0, num=limit, withscores=True)
        return [(text(member), int(score)) for member, score in found]

    # -- health ----------------------------------------------------------------------------------
    def resurrectors_alive(self) -> int:
        """Resurrectors that made a pass in the last ``RESURRECTOR_LIVE_MS``."""
        now = self.now_ms()
        return len(self._client.zrangebyscore(self._keys.resurrectors,
                                              now - RESURRECTOR_LIVE_MS, "+inf"))

    def states(self, task_ids: Sequence[str]) -> dict[str, int]:
        """How many of ``task_ids`` are in each state (``missing``: no record)."""
        counts: dict[str, int] = {}
        for start in range(0, len(task_ids), 1000):
            pipe = self._client.pipeline(transaction=False)
            for task_id in task_ids[start:start + 1000]:
                pipe.hget(self._keys.task(task_id), STATE)
            for state in pipe.execute():
                name = text(state) or "missing"
                counts[name] = counts.get(name, 0) + 1
        return counts

    def health(self) -> HealthFacts:
        """Workers, resurrectors, queue depths and dead letters, for ``rl doctor``."""
        client, keys = self._client, self._keys
        workers = self.workers()
        now = self.now_ms()
        live = [w for w in workers if w.deadline_ms >= now]
        consumed = {q for w in live for q in w.queues}
        queues = sorted({*self.settings.queue_names(), RECOVERY_QUEUE,
                         *(text(q) for q in client.hkeys(keys.queue_seq))})
        return HealthFacts(
            now_ms=now, live_workers=tuple(w.worker_id for w in live),
            expired_workers=tuple(w.worker_id for w in workers if w.deadline_ms < now),
            consumed_queues=frozenset(consumed), resurrectors=self.resurrectors_alive(),
            queue_depths=self.queue_depths(queues), dead_letters=self.dlq_count(),
            scheduled=self.scheduled_count(),
        )


def retry_transient(
    fn: Callable[[], T], what: str, *, deadline: float = 30.0, sleep: Callable[[float], Any]
    = time.sleep,
) -> T:
    """Call ``fn``, retrying Redis connection errors with backoff for up to ``deadline`` s.

    Used for the writes that end a run (complete, dead-letter, requeue): a Redis blip must not
    turn a finished task into an unfinished one.
    """
    delay, give_up = 0.05, time.monotonic() + deadline
    while True:
        try:
            return fn()
        except _TRANSIENT as exc:
            if time.monotonic() + delay > give_up:
                raise
            log.warning("%s: Redis unavailable (%s); retrying in %.2fs", what, exc, delay)
            sleep(delay)
            delay = min(delay * 2, 2.0)
