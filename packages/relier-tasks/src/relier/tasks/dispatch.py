"""Dispatch: seal the envelope and record + publish the task in one Redis round trip.

``apush`` uses the process's asyncio client, ``push`` its sync client: neither creates an event
loop or a connection pool per call. The ledger record, the broker message, the idempotency
check and the admission check are one script call (I1, I6).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import redis

from relier.admission import AdmissionPolicy
from relier.core import codec
from relier.core.exceptions import (
    AdmissionRejectedError,
    BrokerPublishDeferredError,
    DispatchError,
    RedisConnectionError,
    RelierError,
)
from relier.core.ops import AdmissionScope, DispatchReply, DispatchRequest
from relier.core.settings import Settings, get_settings, mask_url
from relier.phoenix import Ledger, PhoenixMiddleware
from relier.phoenix.ledger import PreparedDispatch
from relier.tasks.options import CallOptions
from relier.tasks.receipt import TaskReceipt
from relier.tasks.runtime import TaskSpec, process_loop
from relier.tasks.sealing import CallSealer

__all__ = ["NOW", "Dispatcher", "dispatcher"]

#: A dispatch with no per-call options: now, on the task's own queue, never expiring.
NOW = CallOptions()



@dataclass(frozen=True, slots=True)
class _Prepared:
    task_id: str
    dispatch: PreparedDispatch
    scopes: tuple[AdmissionScope, ...]


class Dispatcher:
    """Everything dispatch needs in one process: settings, keys, ledger, admission."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.ledger = Ledger(self.settings)
        self.sealer = CallSealer(self.settings)
        self.phoenix = PhoenixMiddleware(self.ledger)
        policy = AdmissionPolicy(self.settings)
        self.admission: Callable[[str], tuple[AdmissionScope, ...]] | None = (
            policy.scopes if policy.enabled else None
        )
        self.host = socket.gethostname()
        self.traced = self.settings.otel_enabled

    def prepare(self, spec: TaskSpec, args: tuple[Any, ...], kwargs: dict[str, Any],
                trace: dict[str, str] | None = None, call: CallOptions = NOW) -> _Prepared:
        """Check the call, seal the envelope and build the script call (no I/O).

        Raises:
            TypeError: the task cannot take these arguments (nothing is written anywhere).
            IdempotencyKeyError: an idempotent task's argument has no canonical form.
        """
        options = spec.options
        task_id = str(uuid.uuid4())
        # Bound once: the check that the call can run at all, and the idempotency key, which
        # must not depend on how the caller spelled the call (positional, keyword, defaults).
        # The key before the envelope: for an idempotent task a bad argument is an
        # IdempotencyKeyError.
        idem_key, idem_ttl = self.sealer.key(spec, args, kwargs)
        envelope = self.sealer.seal(spec, task_id, args, kwargs,
                                    producer=f"{self.host}:{os.getpid()}", trace=trace,
                                    expires_at=call.expires_at)
        queue = call.queue or options.queue
        scopes = self.admission(queue) if self.admission else ()
        prepared = self.ledger.prepare_dispatch(DispatchRequest(
            task_id=task_id, task_name=options.name, queue=queue,
            envelope=envelope,
            max_resurrections=self.phoenix.max_resurrections(options),
            idem_key=idem_key, idem_ttl=idem_ttl,
            admission=scopes, traceparent=(trace or {}).get("traceparent", ""),
            delay_ms=math.ceil(call.delay_s * 1000),
        ))
        return _Prepared(task_id, prepared, scopes)

    def push(self, spec: TaskSpec, args: tuple[Any, ...], kwargs: dict[str, Any],
             call: CallOptions = NOW, *, celery_call: bool = False) -> TaskReceipt[Any]:
        """Dispatch from synchronous code.

        ``celery_call``: the call is Celery's ``.delay()``/``.apply_async()``, which blocks an
        event loop it is called on exactly as vanilla Celery's publish does; ``push`` refuses
        to, so that async code uses ``apush``.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None and not celery_call and not process_loop().is_current(loop):
            raise RuntimeError(
                f"{spec.name}.push() was called on a thread whose event loop is running; "
                f"it would block that loop. Use `await {spec.name.rsplit('.', 1)[-1]}"
                ".apush(...)` there."
            )
        if self.traced:
            with self._span(spec) as span:
                return span.done(self._push(spec, args, kwargs, span.carrier, call))
        return self._push(spec, args, kwargs, None, call)

    def _push(self, spec: TaskSpec, args: tuple[Any, ...], kwargs: dict[str, Any],
              trace: dict[str, str] | None, call: CallOptions) -> TaskReceipt[Any]:
        prepared = self.prepare(spec, args, kwargs, trace, call)
        try:
            reply = self.ledger.record_dispatch(prepared.dispatch)
        except redis.RedisError as exc:
            raise self._error(spec, exc) from exc
        receipt = self._receipt(spec, prepared, reply)
        if reply.kind == "accepted":
            try:
                self.ledger.publish_accepted(prepared.dispatch, reply.seq)
            except redis.RedisError as exc:
                raise self._deferred(receipt, exc) from exc
        return receipt

    async def apush(self, spec: TaskSpec, args: tuple[Any, ...], kwargs: dict[str, Any],
                    call: CallOptions = NOW) -> TaskReceipt[Any]:
        """Dispatch from asyncio code."""
        if self.traced:
            with self._span(spec) as span:
                return span.done(await self._apush(spec, args, kwargs, span.carrier, call))
        return await self._apush(spec, args, kwargs, None, call)

    async def _apush(self, spec: TaskSpec, args: tuple[Any, ...], kwargs: dict[str, Any],
                     trace: dict[str, str] | None, call: CallOptions) -> TaskReceipt[Any]:
        prepared = self.prepare(spec, args, kwargs, trace, call)
        try:
            reply = await self.ledger.arecord_dispatch(prepared.dispatch)
        except redis.RedisError as exc:
            raise self._error(spec, exc) from exc
        receipt = self._receipt(spec, prepared, reply)
        if reply.kind == "accepted":
            try:
                await self.ledger.apublish_accepted(prepared.dispatch, reply.seq)
            except redis.RedisError as exc:
                raise self._deferred(receipt, exc) from exc
        return receipt

    def _error(self, spec: TaskSpec, exc: redis.RedisError) -> RelierError:
        """What a failure of the dispatch script means for the caller (nothing was enqueued).

        The script is atomic, so when it fails nothing of the task was written.
        """
        if isinstance(exc, redis.exceptions.OutOfMemoryError) or "maxmemory" in str(exc):
            return DispatchError(
                f"{spec.name} not dispatched: Redis is out of memory (maxmemory reached, and "
                "noeviction refuses writes rather than dropping tasks). Nothing was enqueued; "
                "drain queues or the dead-letter queue, or raise maxmemory, then retry."
            )
        if isinstance(exc, redis.ResponseError):
            return DispatchError(f"{spec.name} not dispatched: Redis refused the write ({exc})."
                                 " Nothing was enqueued.")
        return RedisConnectionError(mask_url(self.settings.redis_url), exc)

    def _deferred(self, receipt: TaskReceipt[Any], exc: redis.RedisError) -> RelierError:
        """The script recorded the task, then a separate broker refused its message.

        The task is accepted: its record is queued and pending, so the resurrector's
        lost-message pass publishes it when the broker answers (I1: nothing lost). Two answers
        were possible, and this one is deliberate:

        - Compensating (deleting the record if still untouched, and raising "nothing was
          enqueued") would be wrong in two cases it cannot detect. A push that timed out may
          have reached the broker anyway: harmless, the orphan message finds no record. But an
          idempotent duplicate dispatched in the meantime was already handed *this* task's id
          as its receipt: deleting the record would lose that caller's task silently. And the
          compensation needs the coordination Redis at the very moment things are failing, so
          the "accepted" outcome would still have to exist for when it cannot run.
        - So the outcome is always the truth: the task exists and will be published. The error
          is a distinct class (not DispatchError, not ConnectionError, so code that retries
          those does not make a second task), carries the receipt, names the broker.
        """
        return BrokerPublishDeferredError(receipt.task_name, receipt.id,
                                          mask_url(self.settings.broker_url), exc, receipt)

    @contextlib.contextmanager
    def _span(self, spec: TaskSpec) -> Iterator[_Traced]:
        from relier.otel import dispatch_span

        with dispatch_span(spec.name, spec.options.queue) as span:
            yield _Traced(span)

    def _receipt(self, spec: TaskSpec, prepared: _Prepared, reply: DispatchReply
                 ) -> TaskReceipt[Any]:
        if reply.kind == "accepted":
            return TaskReceipt(prepared.task_id, spec.name, self.ledger)
        if reply.kind == "duplicate":
            if reply.state == "done":
                result = codec.decode(reply.result) if reply.result is not None else None
                return TaskReceipt(reply.task_id, spec.name, self.ledger, state="done",
                                   result=result, deduplicated=True)
            return TaskReceipt(reply.task_id, spec.name, self.ledger, state=reply.state,
                               deduplicated=True)
        scope = prepared.scopes[reply.scope_position - 1]
        raise AdmissionRejectedError(
            f"{spec.name} not dispatched: the {scope.name} admission limit ({scope.limit} per "
            f"{scope.window_ms / 1000:g}s) is reached",
            math.ceil(reply.retry_after_ms / 1000), scope.name,
        )


class _Traced:
    """Adapts relier-otel's dispatch span to the dispatcher."""

    def __init__(self, span: Any) -> None:
        self.span = span
        self.carrier: dict[str, str] = span.carrier

    def done(self, receipt: TaskReceipt[Any]) -> TaskReceipt[Any]:
        self.span.accepted(receipt.id, "duplicate" if receipt.deduplicated else "accepted")
        return receipt


_dispatcher: Dispatcher | None = None


def dispatcher() -> Dispatcher:
    """The process's dispatcher (built on first dispatch)."""
    global _dispatcher
    if _dispatcher is None:
        _dispatcher = Dispatcher()
    return _dispatcher


def reset_dispatcher(new: Dispatcher | None = None) -> None:
    """Replace the process's dispatcher (tests, or after changing settings)."""
    global _dispatcher
    _dispatcher = new
