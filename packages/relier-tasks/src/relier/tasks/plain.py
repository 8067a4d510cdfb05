"""The worker side of the drop-in: plain Celery tasks claimed at receipt, settled at the end.

A task of an installed app that is not an ``@rl_task`` runs as Celery runs it (its own
``Request``, its own tracer, its own result backend); Relier adds a claim before and a
fenced commit after, through Celery's extension points only:

- ``PlainGate``, a consumer bootstep, wraps the strategy of every plain task (the callable the
  consumer hands each received message to). A message is claimed in the worker's main process
  the moment it arrives (``task_claim``: a new epoch under the worker's lease, so a worker
  killed with messages prefetched has them resurrected), and what runs is the ledger's sealed
  copy, verified, not the delivered bytes: a forged or tampered body is dead-lettered with its
  bytes and never runs. A message the ledger has no record of (a producer without Relier) is
  adopted by the same claim; a duplicate delivery is acknowledged and dropped; a foreign
  message with a future eta is scheduled in Redis instead of waiting in this worker's memory.
- Signals settle the run, fenced on the epoch the claim stamped (``rl_epoch`` header):
  ``task_postrun`` (success, ``Ignore``, ``Reject``) and ``task_failure`` (an exception, in the
  pool child; a hard time limit, in the main process) complete or dead-letter the record;
  ``task_revoked`` records an expired or revoked task as dead with that reason.
- A retry or ``self.replace`` needs nothing here: its publish passes the recording transport
  (``relier.tasks.transport``), which moves the record back to queued or scheduled, fenced on
  the publishing run's epoch.
"""

from __future__ import annotations

import logging
import os
import traceback as tb
from datetime import UTC, datetime
from typing import Any

import msgspec
from celery import Celery, bootsteps, states
from celery.exceptions import Reject, TimeLimitExceeded
from celery.signals import task_failure, task_postrun, task_revoked

from relier.core import codec
from relier.core.exceptions import PayloadIntegrityError
from relier.core.ops import ClaimReply
from relier.core.plain import stored_message
from relier.core.record import EPOCH, OWNER, STATE
from relier.core.settings import get_settings
from relier.envelope import Keyring, open_bytes, seal_bytes
from relier.phoenix import Ledger, current_keeper
from relier.phoenix.ledger import retry_transient
from relier.phoenix.registry import relier_task_names

__all__ = ["EPOCH_HEADER", "PlainGate", "install"]

log = logging.getLogger("relier.tasks.plain")

#: Header the gate stamps on the message it runs: the epoch its claim opened. Set by this
#: worker's own main process on the verified copy, never read from a delivered message.
EPOCH_HEADER = "rl_epoch"


class _Claims:
    """The claim of one received message, and what to run (one per worker process)."""

    def __init__(self) -> None:
        self.settings = get_settings()
        self.ledger = Ledger(self.settings)
        self.keyring = Keyring.from_settings(self.settings)

    def admit(self, message: Any) -> Any | None:
        """The message to hand to Celery's strategy, or None (acknowledged or re-queued here)."""
        headers = message.headers if isinstance(message.headers, dict) else {}
        task_id, name = headers.get("id"), headers.get("task")
        keeper = current_keeper()
        raw = getattr(message, "_raw", None)
        if keeper is None or not isinstance(task_id, str) or not task_id or \
                not isinstance(raw, dict):
            return message  # not a protocol-2 message of the Redis transport: Celery decides
        queue = (message.delivery_info or {}).get("routing_key") or ""
        if self._schedule_foreign(task_id, queue, headers.get("eta"), raw):
            message.ack()
            return None
        reply = retry_transient(lambda: self.ledger.claim(
            task_id=task_id, worker_id=keeper.worker_id, queue=queue,
            message_seq=str(headers.get("rl_seq") or ""),
            adopt=seal_bytes(stored_message(raw), self.keyring), adopt_name=str(name),
            adopt_max_resurrections=self.settings.max_resurrections, adopt_plain=True,
        ), "claim")
        if reply.kind == "claimed":
            return self._verified(message, task_id, str(name), keeper.worker_id, reply)
        if reply.kind == "no_lease":
            log.error("task %s (%s) not started: worker %s holds no live Relier lease; the "
                      "message is put back", task_id, name, keeper.hostname)
            message.reject(requeue=True)
            return None
        log.info("task %s (%s): delivery dropped without running: %s", task_id, name,
                 _why(reply))
        message.ack()
        return None

    def _schedule_foreign(self, task_id: str, queue: str, eta: Any, raw: dict[str, Any]
                          ) -> bool:
        """A future eta on a message the ledger has never seen: schedule it in Redis."""
        if not eta or self.ledger.record_fields(task_id, STATE).state != "unknown":
            return False
        try:
            due = datetime.fromisoformat(str(eta))
        except ValueError:
            due = None  # the recorder dead-letters an unreadable eta
        if due is not None:
            due = due if due.tzinfo else due.replace(tzinfo=UTC)
            if due <= datetime.now(UTC):
                return False
        from relier.tasks.transport import recorder

        recorder().record(queue, raw)
        return True

    def _verified(self, message: Any, task_id: str, name: str, worker_id: str,
                  reply: ClaimReply) -> Any | None:
        """The sealed copy to run, addressed like the delivered one; None if it fails."""
        try:
            payload: dict[str, Any] = msgspec.json.decode(open_bytes(reply.envelope,
                                                                     self.keyring))
            headers = dict(payload["headers"])
            if headers.get("id") != task_id or headers.get("task") != name:
                raise PayloadIntegrityError(
                    f"the sealed message is task {headers.get('task')!r} id "
                    f"{headers.get('id')!r}, delivered as {name!r} id {task_id!r}",
                    reply.envelope)
        except (PayloadIntegrityError, msgspec.DecodeError, KeyError, TypeError) as exc:
            log.error("task %s (%s) dead-lettered unrun: its sealed message does not verify "
                      "(%s)", task_id, name, exc)
            why = str(exc)
            retry_transient(lambda: self.ledger.fail(
                task_id=task_id, worker_id=worker_id, epoch=reply.epoch,
                reason="PayloadIntegrityError", exc_type="relier.PayloadIntegrityError",
                message=f"the task's sealed message failed verification ({why}); it was not "
                        "run. Check RELIER_SIGNING_KEYS on producers and workers",
                outcome="rejected"), "dead-letter")
            message.ack()
            return None
        # The ledger already waited for a countdown/eta (durable scheduling): run it now.
        headers.pop("eta", None)
        headers[EPOCH_HEADER] = reply.epoch
        payload["headers"] = headers
        payload["properties"] = {**(payload.get("properties") or {}),
                                 "delivery_tag": message.delivery_tag,
                                 "delivery_info": message.delivery_info}
        return type(message)(payload, channel=message.channel)


def _why(reply: ClaimReply) -> str:
    if reply.kind == "duplicate":
        return f"the task is {reply.state}" + (f" (owner {reply.owner})" if reply.owner else "")
    if reply.kind == "misnamed":
        return f"the message names another task than its record ({reply.task_name!r}): " \
               "forged or misrouted"
    return reply.kind


_claims: _Claims | None = None
_claims_pid = -1


def _the_claims() -> _Claims:
    """The process's claims (rebuilt in a forked pool child)."""
    global _claims, _claims_pid
    if _claims is None or _claims_pid != os.getpid():
        _claims, _claims_pid = _Claims(), os.getpid()
    return _claims


class PlainGate(bootsteps.StartStopStep):  # type: ignore[misc]
    """Consumer bootstep: every plain task's strategy claims the message first.

    Runs after Celery's ``Tasks`` step has built the strategies (on every consumer restart).
    """

    requires = ("celery.worker.consumer.tasks:Tasks",)
    label = "Relier plain tasks"

    def start(self, c: Any) -> None:
        """Wrap the strategy of every task that is not an ``@rl_task``."""
        skip = set(relier_task_names(c.app.tasks))
        claims = _the_claims()
        for name, strategy in list(c.strategies.items()):
            if name not in skip and not getattr(strategy, "_relier_gated", False):
                c.strategies[name] = _gated(strategy, claims)


def _gated(strategy: Any, claims: _Claims) -> Any:
    def gated(message: Any, body: Any, on_ack: Any, on_reject: Any, *args: Any,
              **kwargs: Any) -> Any:
        run = claims.admit(message)
        if run is None:
            return None
        return strategy(run, body, on_ack, on_reject, *args, **kwargs)

    gated._relier_gated = True  # type: ignore[attr-defined]
    return gated


# -- settling the run ----------------------------------------------------------------------------
def _epoch(task: Any, task_id: str | None) -> int:
    request = getattr(task, "request", None)
    if request is None or getattr(request, "id", None) != task_id:
        return 0
    try:
        return int(getattr(request, EPOCH_HEADER, 0) or 0)
    except (TypeError, ValueError):
        return 0


def _on_postrun(sender: Any = None, task_id: str | None = None, state: str | None = None,
                retval: Any = None, **_: Any) -> None:
    epoch = _epoch(sender, task_id)
    keeper = current_keeper()
    if not epoch or keeper is None or task_id is None:
        return
    ledger = _the_claims().ledger
    if state in (states.SUCCESS, states.IGNORED):
        try:
            result = codec.encode(retval if state == states.SUCCESS else None, "result")
        except TypeError:
            result = codec.encode(None)  # the result backend holds it; the ledger says done
        if not retry_transient(lambda: ledger.complete(
                task_id=task_id, worker_id=keeper.worker_id, epoch=epoch, result=result),
                "complete"):
            log.warning("task %s: run fenced off: epoch %d no longer owns the task (it was "
                        "resurrected); its completion is not recorded", task_id, epoch)
    elif state == states.REJECTED:
        if isinstance(retval, Reject) and retval.requeue:
            # Celery puts the message back only when it was not acknowledged yet; the ledger
            # hands the task back in every case (capped by RELIER_MAX_HANDOFFS).
            keeper.release(task_id, kind="handoff", epoch=epoch,
                           cause=f"the task raised Reject(requeue=True): {retval.reason}")
        else:
            _fail(task_id, keeper.worker_id, epoch, "Rejected",
                  f"the task raised Reject(requeue=False): {getattr(retval, 'reason', '')}",
                  exc_type="celery.exceptions.Reject", outcome="rejected")


def _on_failure(sender: Any = None, task_id: str | None = None,
                exception: BaseException | None = None, einfo: Any = None, **_: Any) -> None:
    keeper = current_keeper()
    if keeper is None or task_id is None or exception is None:
        return
    if isinstance(exception, TimeLimitExceeded):
        # Sent by the main process before billiard kills the child: record the timeout
        # first, so the child's death is not taken for a crash and resurrected.
        rec = _the_claims().ledger.record_fields(task_id, OWNER, EPOCH)
        if rec.owner == keeper.worker_id:
            _fail(task_id, keeper.worker_id, rec.epoch, "TimeoutError",
                  f"hard time limit exceeded ({exception}): Celery killed the pool child",
                  exc_type="celery.exceptions.TimeLimitExceeded", outcome="timeout")
        return
    epoch = _epoch(sender, task_id)
    if not epoch:
        return
    trace = str(getattr(einfo, "traceback", "") or "") or "".join(
        tb.format_exception(exception))
    _fail(task_id, keeper.worker_id, epoch, type(exception).__name__, str(exception),
          exc_type=f"{type(exception).__module__}.{type(exception).__qualname__}",
          traceback=trace)


def _on_revoked(request: Any = None, terminated: bool = False, expired: bool = False,
                signum: Any = None, **_: Any) -> None:
    keeper = current_keeper()
    task_id = getattr(request, "id", None)
    if keeper is None or not task_id:
        return
    # Celery sends the request's context (its headers as attributes), not the Request.
    try:
        epoch = int(getattr(request, EPOCH_HEADER, 0) or 0)
    except (TypeError, ValueError):
        epoch = 0
    if not epoch:
        return
    if expired:
        _fail(task_id, keeper.worker_id, epoch, "Expired",
              f"expired before it ran (expires={getattr(request, 'expires', None)})",
              outcome="expired")
    else:
        how = f"terminated by signal {signum}" if terminated else "before it ran"
        _fail(task_id, keeper.worker_id, epoch, "Revoked", f"revoked {how}",
              outcome="revoked")


def _fail(task_id: str, worker_id: str, epoch: int, reason: str, message: str, *,
          exc_type: str = "", traceback: str = "", outcome: str = "failed") -> None:
    ledger = _the_claims().ledger
    if not retry_transient(lambda: ledger.fail(
            task_id=task_id, worker_id=worker_id, epoch=epoch, reason=reason,
            exc_type=exc_type, message=message, traceback=traceback, outcome=outcome),
            "dead-letter"):
        log.warning("task %s: run fenced off or already finished: %s not recorded", task_id,
                    reason)
    else:
        log.error("task %s dead-lettered: %s: %s (`rl dlq show %s`)", task_id, reason,
                  message, task_id)


def install(app: Celery) -> None:
    """Add the gate to the app's consumer and connect the settling signals (idempotent)."""
    if PlainGate not in app.steps["consumer"]:
        app.steps["consumer"].add(PlainGate)
    task_postrun.connect(_on_postrun, weak=False, dispatch_uid="relier-plain-postrun")
    task_failure.connect(_on_failure, weak=False, dispatch_uid="relier-plain-failure")
    task_revoked.connect(_on_revoked, weak=False, dispatch_uid="relier-plain-revoked")
