"""The worker side: one persistent event loop per process, and the run of one delivery.

Celery calls a Relier task in its own thread (prefork child, solo main thread, or a pool
thread). The runtime hands the pipeline to the process's event loop, which runs in a daemon
thread created on first use in each process (so a forked child never touches its parent's
loop): async bodies run on that loop; sync bodies run in Celery's thread between the
pipeline's two halves.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis

from relier.core import events
from relier.core.exceptions import IdempotencyInFlightError, TaskTimeoutError
from relier.core.pipeline import Job, Middleware, SkipRun, TaskOptions
from relier.core.settings import get_settings
from relier.phoenix import Ledger, current_keeper
from relier.tasks.calls import CallBinder
from relier.tasks.context import TaskContext, bind, unbind
from relier.tasks.middleware import build_chain
from relier.tasks.sealing import CallSealer

__all__ = ["ProcessLoop", "Runtime", "TaskSpec", "process_loop", "runtime"]

log = logging.getLogger("relier.tasks")

T = TypeVar("T")

#: How long a cancelled body gets to unwind after its hard timeout before it is abandoned.
CANCEL_GRACE = 1.0


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """A decorated task: its function and options."""

    fn: Callable[..., Any]
    options: TaskOptions
    accepts_ctx: bool
    #: The function's signature, read once at decoration: dispatch checks every call against
    #: it and hashes idempotency keys over the bound arguments (so does legacy adoption).
    binder: CallBinder = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "binder", CallBinder(self.options.name, self.fn,
                                                      self.accepts_ctx))

    @property
    def name(self) -> str:
        """Registered task name."""
        return self.options.name


class ProcessLoop:
    """The event loop of this process, in a daemon thread, recreated after fork."""

    def __init__(self) -> None:
        self._pid = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def get(self) -> asyncio.AbstractEventLoop:
        """The loop, started on first use in this process."""
        if self._pid != os.getpid() or self._loop is None:
            with self._lock:
                if self._pid != os.getpid() or self._loop is None:
                    loop = asyncio.new_event_loop()
                    thread = threading.Thread(target=loop.run_forever, name="relier-loop",
                                              daemon=True)
                    thread.start()
                    self._loop, self._pid = loop, os.getpid()
        return self._loop

    def is_current(self, loop: asyncio.AbstractEventLoop) -> bool:
        """True when ``loop`` is this process's Relier loop."""
        return self._pid == os.getpid() and loop is self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for it from this (other) thread.

        The coroutine runs in a copy of the caller's context, so context variables set in
        Celery's thread (the trace context, an admission key) reach the task body.
        """
        loop = self.get()
        context = contextvars.copy_context()
        result: concurrent.futures.Future[T] = concurrent.futures.Future()

        def finish(task: asyncio.Task[T]) -> None:
            if task.cancelled():
                result.set_exception(asyncio.CancelledError())
            elif (error := task.exception()) is not None:
                result.set_exception(error)
            else:
                result.set_result(task.result())

        def start() -> None:
            result.set_running_or_notify_cancel()
            loop.create_task(coro, context=context).add_done_callback(finish)

        loop.call_soon_threadsafe(start)
        return result.result()


_process_loop = ProcessLoop()


def process_loop() -> ProcessLoop:
    """The process-wide ``ProcessLoop``."""
    return _process_loop


async def run_with_timeouts(
    body: Callable[[], Awaitable[Any]],
    ctx: TaskContext,
    *,
    soft: float | None,
    hard: float | None,
    on_soft: Callable[[TaskContext], Awaitable[None]] | None,
) -> Any:
    """Run an async body under a soft and a hard deadline.

    At ``soft`` seconds the hook runs, concurrently, with the same live context; it is
    cancelled at the hard deadline (so it has ``hard - soft`` seconds). At ``hard`` seconds the
    body is cancelled and ``TaskTimeoutError`` raised; a body that swallows the
    cancellation is abandoned after a short grace, still reported as timed out, and its slot
    freed (its later writes are fenced once the task is dead-lettered).
    """
    task = asyncio.ensure_future(body())
    watchers = []
    if soft is not None:
        async def soft_deadline() -> None:
            await asyncio.sleep(soft)
            log.warning("%s passed its soft_timeout of %gs", ctx.full_name, soft)
            events.emit("task.timeout", task=ctx.task_name, task_id=ctx.task_id, kind="soft")
            if on_soft is not None:
                try:
                    await on_soft(ctx)
                except Exception:
                    log.exception("%s: on_soft_timeout hook raised", ctx.full_name)

        watchers.append(asyncio.ensure_future(soft_deadline()))
    try:
        if hard is None:
            return await task
        done, _ = await asyncio.wait({task}, timeout=hard)
        if task in done:
            return task.result()
        task.cancel()
        events.emit("task.timeout", task=ctx.task_name, task_id=ctx.task_id, kind="hard")
        done, _ = await asyncio.wait({task}, timeout=CANCEL_GRACE)
        if task in done:
            if not task.cancelled():
                task.exception()  # consumed: the timeout is what gets reported
        else:
            log.error("%s swallowed its cancellation at hard_timeout=%gs; abandoned (its "
                      "writes will be refused)", ctx.full_name, hard)
        raise TaskTimeoutError(ctx.task_name, hard)
    finally:
        for watcher in watchers:
            watcher.cancel()


class _HeldKeyWaits:
    """Pauses before re-running a body that met a key held by another run.

    A body raising IdempotencyInFlightError (from ``idempotency_lock``) is not a failure:
    another run holds the key and will commit it. The body runs again after a pause (same
    epoch), and then finds the committed result; after ``limit`` seconds of pauses (twice the
    in-flight TTL) the error stands and the task is dead-lettered. The sync and async bodies
    share this schedule; only their way of sleeping differs.
    """

    __slots__ = ("_delay", "_limit", "_waited")

    def __init__(self, limit: float) -> None:
        self._delay, self._waited, self._limit = 0.1, 0.0, limit

    def pause(self, exc: IdempotencyInFlightError) -> float:
        """Seconds to wait before the next run; ``exc`` again once the limit is spent."""
        if self._waited >= self._limit:
            raise exc
        delay = self._delay
        self._waited += delay
        self._delay = min(delay * 2, 2.0)
        return delay


class Runtime:
    """Runs deliveries of Relier tasks through the middleware chain."""

    def __init__(self) -> None:
        self.settings = get_settings()
        self.ledger = Ledger(self.settings)
        self.chain: list[Middleware] = build_chain(self.settings)
        self.sealer = CallSealer(self.settings)
        self.loop = process_loop()

    # -- entry point (Celery's thread) -----------------------------------------------------------
    def execute(self, spec: TaskSpec, request: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> None:
        """Run one delivery; returns None (results live in the ledger, not in Celery)."""
        job = self._job(spec, request, args, kwargs)
        entered, error = self._enter(job)
        if error is None:
            ctx = self._context(job)
            job.started_at = time.time()
            try:
                if spec.options.is_async:
                    job.result = self.loop.run(self._run_async(spec, job, ctx))
                else:
                    job.result = self._run_sync(spec, job, ctx)
            except BaseException as exc:
                error = exc
        self._leave(job, entered, error)

    def _job(self, spec: TaskSpec, request: Any, args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> Job:
        keeper = current_keeper()
        job = Job(
            task_id=request.id, options=spec.options,
            delivery_queue=(request.delivery_info or {}).get("routing_key") or
            spec.options.queue,
            worker_id=keeper.worker_id if keeper else "", hostname=request.hostname or "",
            message_args=tuple(args), message_kwargs=dict(kwargs),
            # Unsigned message headers: hints only. The claim checks rl_idem against the
            # record's own key and uses rl_seq only to recognise the message the record
            # waits for (relier.phoenix.broker).
            headers={"rl_idem": getattr(request, "rl_idem", None) or "",
                     "rl_seq": getattr(request, "rl_seq", None) or ""},
            legacy=getattr(request, "rl", None) is None,
        )
        traceparent = getattr(request, "rl_trace", None)
        if traceparent:
            job.trace = {"traceparent": traceparent}
        job.idem_key = job.headers["rl_idem"]
        if job.legacy:
            # The message body as the broker carried it, kept in case the message must be
            # dead-lettered before it becomes a task (refused, or not adoptable).
            job.scratch["raw"] = raw_body(request, args, kwargs)
            try:
                self._adopt(spec, job)
            except Exception as exc:
                # Not a task yet (no record), but already acknowledged: Phoenix dead-letters it
                # with the raw body instead of letting it vanish.
                job.scratch["adoption_error"] = exc
                log.error("%s[%s]: legacy message cannot be adopted (%s); it will be "
                          "dead-lettered with its raw body", spec.name, job.task_id, exc)
        return job

    def _adopt(self, spec: TaskSpec, job: Job) -> None:
        """Make a plain Celery message (``.delay()``) a tracked task from here on."""
        try:
            self.ledger.count_legacy_message()
        except redis.exceptions.OutOfMemoryError:
            # Only a statistic: the message is already acknowledged, so refusing to adopt it
            # here would lose it. The claim script (allowed at maxmemory) takes it from here.
            log.warning("%s[%s]: Redis is out of memory; legacy message not counted",
                        spec.name, job.task_id)
        log.info("%s[%s] arrived as a legacy .delay() message", spec.name, job.task_id)
        if not self.settings.accept_unsigned:
            return
        # What push would have recorded (relier.tasks.sealing), with the envelope first: an
        # argument no envelope can carry is the reason a message is dead-lettered unadopted.
        kwargs = {k: v for k, v in job.message_kwargs.items() if k != "ctx"}
        job.sealed = self.sealer.seal(spec, job.task_id, job.message_args, kwargs,
                                      producer="legacy")
        job.idem_key, job.idem_ttl = self.sealer.key(spec, job.message_args, kwargs,
                                                     strict=False)

    # -- the chain -----------------------------------------------------------------------------
    def _enter(self, job: Job) -> tuple[list[Middleware], BaseException | None]:
        entered: list[Middleware] = []
        try:
            for middleware in self.chain:
                middleware.before_run(job)
                entered.append(middleware)
        except BaseException as exc:
            return entered, exc
        return entered, None

    def _leave(self, job: Job, entered: list[Middleware], error: BaseException | None) -> None:
        for middleware in reversed(entered):
            try:
                middleware.after_run(job, error)
            except Exception:
                log.exception("%s[%s]: %s.after_run failed", job.options.name, job.task_id,
                              middleware.name)
        if not entered and error is not None and not isinstance(error, SkipRun):
            # Failed before the claim: nothing owns the task, so nothing was recorded.
            log.error("%s[%s] not run: %s", job.options.name, job.task_id, error)
        elif isinstance(error, SkipRun):
            log.info("%s[%s] not run: %s", job.options.name, job.task_id, error.reason)

    def _context(self, job: Job) -> TaskContext:
        return TaskContext(
            task_id=job.task_id, task_name=job.options.name, args=tuple(job.args),
            kwargs=dict(job.kwargs), worker_id=job.hostname, attempt=job.attempt,
            partial_result=job.checkpoint, resurrections=job.resurrections, epoch=job.epoch,
            _checkpointer=job.checkpointer,
        )

    def _call_args(self, spec: TaskSpec, job: Job, ctx: TaskContext) -> dict[str, Any]:
        kwargs = dict(job.kwargs)
        if spec.accepts_ctx:
            kwargs["ctx"] = ctx
        return kwargs

    def _waits(self) -> _HeldKeyWaits:
        return _HeldKeyWaits(2 * self.settings.idempotency_inflight_ttl)

    async def _run_async(self, spec: TaskSpec, job: Job, ctx: TaskContext) -> Any:
        token = bind(ctx)
        try:
            soft, hard = self._timeouts(spec)
            kwargs = self._call_args(spec, job, ctx)
            waits = self._waits()

            async def body() -> Any:
                while True:
                    try:
                        return await spec.fn(*job.args, **kwargs)
                    except IdempotencyInFlightError as exc:
                        await asyncio.sleep(waits.pause(exc))

            return await run_with_timeouts(body, ctx, soft=soft, hard=hard,
                                           on_soft=spec.options.get("on_soft_timeout"))
        finally:
            unbind(token)

    def _run_sync(self, spec: TaskSpec, job: Job, ctx: TaskContext) -> Any:
        token = bind(ctx)
        try:
            kwargs = self._call_args(spec, job, ctx)
            waits = self._waits()
            while True:
                try:
                    return spec.fn(*job.args, **kwargs)
                except IdempotencyInFlightError as exc:
                    time.sleep(waits.pause(exc))
        finally:
            unbind(token)

    def _timeouts(self, spec: TaskSpec) -> tuple[float | None, float | None]:
        soft, hard = spec.options.get("soft_timeout"), spec.options.get("hard_timeout")
        if soft is None and hard is None:
            # RELIER_SOFT_TIMEOUT / RELIER_HARD_TIMEOUT apply to tasks that set neither.
            return self.settings.soft_timeout, self.settings.hard_timeout
        return soft, hard


_runtime: Runtime | None = None
_runtime_pid = -1


def runtime() -> Runtime:
    """The process's runtime (rebuilt in a forked child)."""
    global _runtime, _runtime_pid
    if _runtime is None or _runtime_pid != os.getpid():
        _runtime, _runtime_pid = Runtime(), os.getpid()
    return _runtime


def raw_body(request: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    """A plain Celery message's body, re-encoded as the broker carried it.

    Celery's task protocol 2 body is ``[args, kwargs, embed]`` in kombu's JSON, which (unlike
    Relier's envelope) accepts values such as ``NaN``; encoding the decoded values with the
    same serializer gives back the bytes the producer sent.
    """
    from kombu.serialization import dumps

    embed = {name: getattr(request, name, None)
             for name in ("callbacks", "errbacks", "chain", "chord")}
    try:
        _, _, data = dumps([list(args), kwargs, embed], serializer="json")  # type: ignore[no-untyped-call]
    except Exception:  # keep something rather than nothing
        data = repr([list(args), kwargs, embed])
    return data.encode() if isinstance(data, str) else bytes(data)


def accepts_ctx(fn: Callable[..., Any]) -> bool:
    """True when ``fn`` declares a parameter named ``ctx``."""
    try:
        return "ctx" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
