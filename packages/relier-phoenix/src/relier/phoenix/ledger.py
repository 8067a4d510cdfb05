"""The task ledger: one object through which every process reads and changes task records.

It binds the settings, the key layout, the script calls and the broker: producers dispatch
through it, workers claim and finish through it, the resurrector and the dead-letter queue
move tasks through it. When the broker is the coordination Redis itself (the default), each
state change and its broker message are one atomic script call; when ``RELIER_BROKER_URL``
names another server, the script runs first and the message is pushed right after (a message
lost in between is found and re-published by the resurrector's lost-message pass).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import redis
import redis.asyncio as aredis

from relier.core import Keys, Ops, events
from relier.core.codec import text
from relier.core.connection import async_redis_client, redis_client
from relier.core.ops import AdmissionScope, DispatchReply, TransitionReply
from relier.core.scripts import AsyncScripts, Call, Scripts, async_scripts, scripts
from relier.core.settings import Settings, get_settings
from relier.phoenix.broker import build_message, stamp_seq
from relier.phoenix.checkpoints import CheckpointStore

__all__ = ["RECOVERY_QUEUE", "Ledger"]

log = logging.getLogger("relier.phoenix")

#: Internal queue of resurrected and handed-off tasks (consume it with its own workers so that
#: recovery traffic never waits behind user traffic).
RECOVERY_QUEUE = "re-queue"

#: How many times a queued task's lost message is re-published before it is dead-lettered.
MAX_REPUBLISH = 10

T = TypeVar("T")

_TRANSIENT = (redis.ConnectionError, redis.TimeoutError)


class Ledger:
    """Typed access to task records for one settings object."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.keys = Keys(self.settings.key_prefix)
        self.ops = Ops(self.keys)
        self.checkpoints = CheckpointStore(self.settings)
        self.fused = self.settings.broker_url == self.settings.redis_url

    # -- clients -------------------------------------------------------------------------------
    @property
    def client(self) -> redis.Redis:
        """The process's sync client of the coordination store."""
        return redis_client(self.settings)

    @property
    def scripts(self) -> Scripts:
        """The scripts on ``client``."""
        return scripts(self.client)

    def aclient(self) -> aredis.Redis:
        """The asyncio client for the running loop."""
        return async_redis_client(self.settings)

    def ascripts(self) -> AsyncScripts:
        """The scripts on ``aclient``."""
        return async_scripts(self.aclient())

    @property
    def broker(self) -> redis.Redis:
        """The process's sync client of the broker (``RELIER_BROKER_URL``).

        The same server as ``client`` by default; another one when the broker is separate.
        Every look at kombu's lists (their length above all) goes here: the lists live on the
        broker, and asking the coordination store would see them empty.
        """
        return self._broker()

    def _broker(self) -> redis.Redis:
        return redis_client(self.settings, url=self.settings.broker_url)

    def _abroker(self) -> aredis.Redis:
        return async_redis_client(self.settings, url=self.settings.broker_url)

    # -- dispatch --------------------------------------------------------------------------------
    def dispatch_call(
        self,
        *,
        task_id: str,
        task_name: str,
        queue: str,
        envelope: bytes,
        max_resurrections: int,
        idem_key: str = "",
        idem_ttl: int = 0,
        admission: tuple[AdmissionScope, ...] = (),
        traceparent: str = "",
    ) -> tuple[Call[DispatchReply], bytes]:
        """The dispatch script call and the broker message it publishes."""
        message = build_message(task_id, task_name, queue, idem_key, traceparent)
        call = self.ops.dispatch(
            task_id=task_id, task_name=task_name, queue=queue, envelope=envelope,
            max_resurrections=max_resurrections, message=message if self.fused else b"",
            idem_key=idem_key, idem_ttl=idem_ttl, admission=admission,
            traceparent=traceparent,
        )
        return call, message

    def dispatch(self, call: Call[DispatchReply], message: bytes, queue: str) -> DispatchReply:
        """Run a prepared dispatch (sync): the script, then the message to a separate broker."""
        reply = self.scripts.run(call)
        if reply.kind == "accepted":
            self.publish_accepted(message, queue, reply.seq)
        return reply

    async def adispatch(
        self, call: Call[DispatchReply], message: bytes, queue: str
    ) -> DispatchReply:
        """Run a prepared dispatch (asyncio)."""
        reply = await self.ascripts().run(call)
        if reply.kind == "accepted":
            await self.apublish_accepted(message, queue, reply.seq)
        return reply

    def publish_accepted(self, message: bytes, queue: str, seq: int) -> None:
        """Push an accepted dispatch's message to a separate broker (fused: the script did).

        Kept apart from the script so that a caller can tell a failure here (the task is
        recorded and accepted; the lost-message pass publishes it later) from a failure of
        the script (nothing was written). ``seq`` is the sequence the script gave the task;
        the message carries it so that its claim can move the queue's watermark.
        """
        if not self.fused:
            self._broker().lpush(self.keys.broker_list(queue), stamp_seq(message, seq))

    async def apublish_accepted(self, message: bytes, queue: str, seq: int) -> None:
        """``publish_accepted`` from asyncio code."""
        if not self.fused:
            await self._abroker().lpush(self.keys.broker_list(queue), stamp_seq(message, seq))

    # -- moving tasks ----------------------------------------------------------------------------
    def _publish(self, queue: str, message: bytes, reply: TransitionReply) -> TransitionReply:
        if reply.kind == "done" and not self.fused:
            self._broker().lpush(self.keys.broker_list(queue), stamp_seq(message, reply.seq))
        return reply

    def requeue(
        self,
        task_id: str,
        *,
        owner: str,
        kind: Literal["killed", "lease_expired", "handoff"],
        cause: str,
        recovery_seconds: float | None = None,
    ) -> TransitionReply:
        """Take a running task from ``owner`` and put it on the recovery queue (or the DLQ).

        A compare-and-set on the owner: calling it again, or from another process, after the
        first call acted is a no-op that returns ``skipped``.
        """
        found = self._doorbell(task_id, RECOVERY_QUEUE)
        if found is None:
            self.client.srem(self.keys.worker_tasks(owner), task_id)
            return TransitionReply("skipped")
        name, _, idem_key, message = found
        reply = self.scripts.run(self.ops.requeue(
            task_id=task_id, owner=owner, kind=kind, cause=cause, queue=RECOVERY_QUEUE,
            message=message if self.fused else b"", idem_key=idem_key,
            max_handoffs=self.settings.max_handoffs,
        ))
        if reply.kind == "dead":
            reason = text(self.client.hget(self.keys.task(task_id), "dr") or b"")
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
        name, own_queue, idem, trace = self.client.hmget(self.keys.task(task_id), "n", "q", "x",
                                                         "tp")
        if name is None or (queue or own_queue) is None:
            return None
        to = queue or text(own_queue)
        idem_key = text(idem) if idem else ""
        return text(name), to, idem_key, build_message(task_id, text(name), to, idem_key,
                                                       text(trace) if trace else "")

    def republish(self, task_id: str, queue: str, seq: int) -> TransitionReply:
        """Publish again the message of a queued task whose message was lost."""
        found = self._doorbell(task_id, queue)
        if found is None:
            self.client.zrem(self.keys.pending(queue), task_id)
            return TransitionReply("skipped")
        _, _, idem_key, message = found
        reply = self.scripts.run(self.ops.republish(
            task_id=task_id, queue=queue, seq=seq, message=message if self.fused else b"",
            max_republish=MAX_REPUBLISH, idem_key=idem_key,
        ))
        return self._publish(queue, message, reply)

    def release(self, task_id: str) -> TransitionReply:
        """Send a dead-lettered task back to the queue it was dispatched to."""
        found = self._doorbell(task_id)
        if found is None:
            return TransitionReply("skipped")
        _, queue, idem_key, message = found
        reply = self.scripts.run(self.ops.release(
            task_id=task_id, queue=queue, message=message if self.fused else b"",
            idem_key=idem_key,
        ))
        return self._publish(queue, message, reply)


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
