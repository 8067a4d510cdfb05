"""Phoenix in the worker pipeline: claim before the body, commit or dead-letter after it.

Every run, the first included, claims the task record and gets a new epoch (I3); every write
the run makes afterwards (checkpoint, result, idempotency commit, dead-letter) is a
compare-and-set on that epoch. A delivery whose task is done, dead or held by a live worker is
dropped here without running, which makes every duplicate delivery path harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from types import MappingProxyType
from typing import Any

import msgspec

from relier.core import codec, events
from relier.core.exceptions import (
    CheckpointError,
    EpochFencedError,
    LegacyMessageRejectedError,
    RelierError,
    TaskExpiredError,
    TaskTimeoutError,
)
from relier.core.ops import ClaimReply
from relier.core.pipeline import Job, Middleware, SkipRun, TaskOptions
from relier.phoenix.broker import SEQ_HEADER
from relier.phoenix.drain import shutting_down
from relier.phoenix.ledger import Ledger, retry_transient
from relier.phoenix.port import LedgerPort

__all__ = ["PhoenixMiddleware"]

log = logging.getLogger("relier.phoenix")


class PhoenixMiddleware(Middleware):
    """Claim, fence, complete and dead-letter (the ledger side of every run)."""

    name = "phoenix"
    options = MappingProxyType({"max_resurrections": None})

    def __init__(self, ledger: LedgerPort | None = None) -> None:
        self._ledger = ledger

    @property
    def ledger(self) -> LedgerPort:
        """The ledger (built on first use, so declaring options touches no settings)."""
        if self._ledger is None:
            self._ledger = Ledger()
        return self._ledger

    def check_options(self, options: TaskOptions, fn: Any) -> None:
        """``max_resurrections`` must be a whole number of 0 or more (None: the setting)."""
        value = options.get("max_resurrections")
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value < 0):
            raise ValueError(
                f"{options.name}: max_resurrections={value!r}; use a whole number of 0 or more "
                "(0 dead-letters the task the first time its worker dies)"
            )

    def max_resurrections(self, options: TaskOptions) -> int:
        """The task's limit, or ``RELIER_MAX_RESURRECTIONS``."""
        value = options.get("max_resurrections")
        return self.ledger.settings.max_resurrections if value is None else int(value)

    # -- before the body -----------------------------------------------------------------------
    def before_run(self, job: Job) -> None:
        """Claim the task, or skip a delivery that must not run."""
        if job.legacy and not self.ledger.settings.accept_unsigned:
            self._dead_letter_unclaimed(
                job, LegacyMessageRejectedError(job.options.name), raw=self._raw(job),
            )
            raise SkipRun("plain Celery message rejected (RELIER_ACCEPT_UNSIGNED=false)")
        adoption_error = job.scratch.get("adoption_error") if job.legacy else None
        if adoption_error is not None:
            # A plain Celery message that cannot become a Relier task (its arguments have no
            # envelope form, e.g. NaN): acknowledged already, so the DLQ is its only way out.
            self._dead_letter_unclaimed(
                job, adoption_error, raw=self._raw(job), reason="LegacyAdoptionFailed",
                message=f"a plain Celery message (.delay()/.apply_async()) for "
                        f"{job.options.name} could not be adopted as a Relier task: "
                        f"{adoption_error}. Its raw body is kept here; send the task with "
                        "push()/apush() and JSON arguments",
            )
            raise SkipRun("plain Celery message not adoptable (dead-lettered with its body)")

        ledger = self.ledger

        def claim(idem_key: str) -> ClaimReply:
            return retry_transient(lambda: ledger.claim(
                task_id=job.task_id, worker_id=job.worker_id, queue=job.delivery_queue,
                idem_key=idem_key, message_seq=str(job.headers.get(SEQ_HEADER) or ""),
                adopt=job.sealed if job.legacy else b"",
                adopt_name=job.options.name,
                adopt_max_resurrections=self.max_resurrections(job.options),
                adopt_idem_ttl=job.idem_ttl,
            ), "claim")

        # job.idem_key is a guess (the unsigned rl_idem header, or for an adopted plain Celery
        # message the key of its own arguments). The script acts only on the key stored in
        # the record, and names it when the guess was wrong or missing: claim again with it.
        reply = claim(job.idem_key)
        if reply.kind == "rekey":
            if job.idem_key:
                log.warning("task %s: the message names idempotency key %r, its record %r; "
                            "the record's key is used (the message header is not trusted)",
                            job.task_id, job.idem_key, reply.idem_key)
            reply = claim(reply.idem_key)
            if reply.kind == "rekey":  # the key of a record never changes: cannot happen
                raise RelierError(
                    f"task {job.task_id}: its record changed idempotency key during the claim "
                    f"(now {reply.idem_key!r}); the task was not run and stays queued. Report "
                    f"this as a Relier bug with `rl tasks show {job.task_id}`"
                )
        if reply.kind == "misnamed":
            # Not this record's message: Relier publishes every doorbell of a task under the
            # record's own name. Running it would dead-letter a valid task on the envelope
            # check, so the record is left alone; its own message still runs it.
            log.error("task %s: a message named %r arrived for a record of task %r (forged or "
                      "misrouted: message headers are unsigned); not run, the record is left "
                      "untouched", job.task_id, job.options.name, reply.task_name)
            raise SkipRun(f"message names task {job.options.name!r}, its record "
                          f"{reply.task_name!r}: not this record's message")
        if reply.kind == "duplicate":
            raise SkipRun(f"duplicate delivery: the task is {reply.state}"
                          + (f" (owner {reply.owner})" if reply.owner else ""))
        if reply.kind == "idempotent_duplicate":
            result = codec.decode(reply.result) if reply.result else None
            raise SkipRun(f"idempotency key already owned by task {reply.other_task_id}",
                          result)
        if reply.kind == "missing":
            self._dead_letter_unclaimed(
                job, RelierError("LedgerRecordMissing"),
                raw=codec.encode({"task": job.options.name, "id": job.task_id,
                                  "headers": job.headers}, "message"),
                reason="LedgerRecordMissing",
                message="a Relier message arrived for a task the ledger does not know "
                        "(its record was purged, expired or never written)",
            )
            raise SkipRun("no ledger record for this message (dead-lettered)")
        if reply.kind == "no_lease":
            raise RelierError(
                f"worker {job.worker_id or '(unregistered)'} holds no live Relier lease, so it "
                "must not start tasks. Start workers with `celery -A relier.tasks.app worker` "
                "or call relier.install(app) in your Celery app module."
            )

        job.epoch = reply.epoch
        job.attempt = reply.attempt
        job.resurrections = reply.resurrections
        job.max_resurrections = reply.max_resurrections
        job.sealed = reply.envelope
        job.dispatched_at_ms = reply.dispatched_at
        job.idem_key, job.idem_ttl = reply.idem_key, reply.idem_ttl
        try:
            job.checkpoint = ledger.checkpoints.decode(reply.checkpoint, job.task_id)
        except (CheckpointError, msgspec.DecodeError) as exc:
            log.warning("task %s: previous checkpoint unusable, resuming from scratch: %s",
                        job.task_id, exc)
        job.checkpointer = self._checkpointer(job)

    def _checkpointer(self, job: Job) -> Any:
        ledger, epoch, task_id = self.ledger, job.epoch, job.task_id

        async def store(value: Any) -> None:
            if ledger.checkpoints.backend == "filesystem":
                stored = await asyncio.to_thread(ledger.checkpoints.encode, task_id, epoch, value)
            else:
                stored = ledger.checkpoints.encode(task_id, epoch, value)
            reply = await ledger.acheckpoint(task_id, epoch, stored)
            # Remove exactly one file: a fenced write's own (nothing references it; the live
            # run's file stays), or the one this write's reference just replaced.
            if not reply.stored:
                ledger.checkpoints.forget(stored, task_id)
                raise EpochFencedError(task_id, epoch, "checkpoint")
            if reply.replaced != stored:
                ledger.checkpoints.forget(reply.replaced, task_id)

        return store

    # -- after the body ------------------------------------------------------------------------
    def after_run(self, job: Job, error: BaseException | None) -> None:
        """Commit the result, dead-letter the failure, or hand back an interrupted run."""
        if error is None or isinstance(error, SkipRun):
            result = job.result if error is None else error.result
            self._complete(job, result)
        elif isinstance(error, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
            name = _qualname(error)
            if shutting_down(self.ledger, job.worker_id):
                # The run was interrupted by the worker's own shutdown, not by the task: give
                # it back rather than dead-letter it (task_requeue caps the hand-offs).
                self.ledger.requeue(job.task_id, owner=job.worker_id, kind="handoff",
                                    cause=f"interrupted by {name} during shutdown")
            else:
                # Raised by the body itself: re-running it would raise it again, forever.
                self._fail(job, error, message=(
                    f"the task body raised {name} while its worker was not shutting down; "
                    "only a draining worker hands a run off, so this counts as a failure. "
                    "Raise an ordinary exception to fail a task"))
        else:
            self._fail(job, error)

    def _complete(self, job: Job, result: Any) -> None:
        ledger = self.ledger
        try:
            data = codec.encode(result, "result")
        except TypeError as exc:
            # The effects already happened: record the task as done once, and keep the
            # explanation instead of an unstorable value (receipt.get() raises it).
            log.warning("task %s: %s; stored null", job.task_id, exc)
            data = codec.encode({"__relier_unstored_result__": str(exc)})
        committed = retry_transient(lambda: ledger.complete(
            task_id=job.task_id, worker_id=job.worker_id, epoch=job.epoch, result=data,
            idem_key=job.idem_key, idem_ttl=job.idem_ttl,
        ), "complete")
        events.emit("task.finished", task=job.options.name, task_id=job.task_id,
                    queue=job.options.queue, attempt=job.attempt,
                    outcome="completed" if committed else "fenced",
                    seconds=time.time() - job.started_at if job.started_at else 0.0)
        if committed:
            ledger.checkpoints.discard(job.task_id)
        else:
            log.warning(
                "task %s: run fenced off: result of epoch %d discarded, a newer incarnation "
                "owns the task (this worker was presumed dead and the task resurrected)",
                job.task_id, job.epoch,
            )

    def _fail(self, job: Job, error: BaseException, *, message: str = "") -> None:
        ledger = self.ledger
        if isinstance(error, EpochFencedError):
            # A zombie: the task was resurrected while this run was paused. Nothing of this
            # run may be recorded, not even its failure.
            log.warning("task %s: run fenced off: %s", job.task_id, error)
            return
        timeout = isinstance(error, TaskTimeoutError)
        expired = isinstance(error, TaskExpiredError)
        # The reasons plain Celery tasks are dead-lettered under, for the same events.
        reason = "TimeoutError" if timeout else "Expired" if expired else type(error).__name__
        outcome = "timeout" if timeout else "expired" if expired else "failed"
        tb = "".join(traceback.format_exception(error))
        recorded = retry_transient(lambda: ledger.fail(
            task_id=job.task_id, worker_id=job.worker_id, epoch=job.epoch, reason=reason,
            exc_type=f"{type(error).__module__}.{type(error).__qualname__}",
            message=message or str(error), traceback=tb, outcome=outcome,
            idem_key=job.idem_key,
        ), "dead-letter")
        events.emit("task.finished", task=job.options.name, task_id=job.task_id,
                    queue=job.options.queue, attempt=job.attempt,
                    outcome=outcome if recorded else "fenced",
                    seconds=time.time() - job.started_at if job.started_at else 0.0)
        if recorded:
            events.emit("task.dead_lettered", task=job.options.name, task_id=job.task_id,
                        queue=job.options.queue, reason=reason)
            log.error("task %s (%s) dead-lettered: %s: %s", job.task_id, job.options.name,
                      reason, error)
        else:
            log.warning("task %s: run fenced off: failure of epoch %d not recorded, a newer "
                        "incarnation owns the task", job.task_id, job.epoch)

    @staticmethod
    def _raw(job: Job) -> bytes:
        """The raw body of a plain Celery message (the runtime keeps it in ``scratch``)."""
        raw = job.scratch.get("raw")
        if isinstance(raw, bytes) and raw:
            return raw
        try:
            return codec.encode([list(job.message_args), job.message_kwargs], "message")
        except TypeError:
            return repr([list(job.message_args), job.message_kwargs]).encode()

    def _dead_letter_unclaimed(
        self, job: Job, error: BaseException, *, raw: bytes, reason: str = "",
        message: str = "",
    ) -> None:
        if self.ledger.fail(
            task_id=job.task_id, worker_id=job.worker_id, epoch=0,
            reason=reason or type(error).__name__,
            exc_type=f"{type(error).__module__}.{type(error).__qualname__}",
            message=message or str(error), outcome="rejected", raw=raw,
            task_name=job.options.name, queue=job.delivery_queue,
        ):
            events.emit("task.dead_lettered", task=job.options.name, task_id=job.task_id,
                        queue=job.delivery_queue, reason=reason or type(error).__name__)
            log.error("message for task %s (%s) dead-lettered: %s", job.task_id,
                      job.options.name, message or error)


def _qualname(error: BaseException) -> str:
    """``asyncio.CancelledError``, ``SystemExit``: how the exception is spelled in code."""
    module = type(error).__module__
    if module in ("builtins", "asyncio.exceptions"):
        module = "" if module == "builtins" else "asyncio"
    return f"{module}.{type(error).__qualname__}" if module else type(error).__qualname__
