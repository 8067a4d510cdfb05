"""The publish side of the drop-in: every task message an installed app sends becomes a record.

``relier.install(app)`` sets the app's ``broker_transport`` to one of the classes here, which
are kombu's own Redis (or Sentinel) transport with one method replaced: ``Channel._put``, the
operation every virtual kombu transport implements to put one message on one queue. Every task
message the app publishes passes there, whatever sent it: ``.delay()``, ``apply_async``,
``send_task``, signatures and canvas (chain, group, chord, links and callbacks), retries,
``self.replace`` and Celery beat (each occurrence once: ``relier.tasks.beat``). Nothing of
Celery is patched; a custom transport class is how kombu is meant to be extended.

For a task message (Celery protocol 2: ``task`` and ``id`` headers) ``_put`` runs the same
single dispatch script as ``push`` (``task_dispatch``): the record, the sealed copy of the
message and the message itself (or, for a countdown/eta, its scheduled copy) in one atomic
call, with admission where configured. Everything else (remote-control replies, a doorbell of
an ``@rl_task``, protocol 1) goes through kombu untouched.

- A retry or ``self.replace`` publishes the running task's own id: the script moves the record
  back to queued or scheduled, fenced on the publishing run's epoch (a zombie cannot).
- A message kombu hands back (``Reject(requeue=True)``, a shutdown returning prefetched
  messages) is not sealed again from the copy in hand, which may be a forged one the worker
  never ran: the ledger re-publishes its own sealed copy instead (``Ledger.redeliver``).
- ``.delay()`` of an ``@rl_task`` is a ``push`` (``RelierTask.apply_async``); a plain
  message of one sent another way is adopted by the worker at pickup.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from datetime import UTC, datetime
from typing import Any

from kombu.transport import redis as kombu_redis

from relier.core.exceptions import (
    AdmissionRejectedError,
    ConfigurationError,
    EpochFencedError,
)
from relier.core.ops import DispatchRequest
from relier.core.plain import stored_message
from relier.core.settings import Settings, get_settings
from relier.envelope import Keyring, seal_bytes
from relier.phoenix import Ledger
from relier.phoenix.broker import RELIER_HEADER
from relier.tasks.beat import current_occurrence

__all__ = ["PlainRecorder", "SentinelTransport", "Transport", "recorder", "transport_for"]

log = logging.getLogger("relier.tasks.transport")

#: Names of the ``@rl_task`` functions of this process. Their ``.delay()`` is a ``push``; a
#: plain message of one (``send_task``, a canvas) is adopted at pickup, where the envelope is
#: built from the function's signature.
RELIER_TASK_NAMES: set[str] = set()


class PlainRecorder:
    """Records plain Celery messages in the ledger (one per process, built on first use)."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.ledger = Ledger(self.settings)
        self.keyring = Keyring.from_settings(self.settings)
        self.host = f"{socket.gethostname()}:{os.getpid()}"
        from relier.admission import AdmissionPolicy

        self.admission = AdmissionPolicy(self.settings)

    @staticmethod
    def handles(message: dict[str, Any]) -> bool:
        """A Celery protocol-2 task message that is not a Relier doorbell or an @rl_task's."""
        headers = message.get("headers")
        if not isinstance(headers, dict):
            return False
        name, task_id = headers.get("task"), headers.get("id")
        return (isinstance(name, str) and isinstance(task_id, str) and bool(task_id)
                and RELIER_HEADER not in headers and name not in RELIER_TASK_NAMES)

    def record(self, queue: str, message: dict[str, Any], *, priority: int = 0) -> None:
        """Record and publish (or schedule) one task message; raises instead of dropping it.

        Raises:
            AdmissionRejectedError: an admission limit refused the task (nothing written).
            EpochFencedError: a run that is no longer current published its own task again.
            ValueError: the eta lies beyond ``RELIER_MAX_COUNTDOWN`` (nothing written).
            redis.RedisError: Redis refused or could not be reached (kombu's publish retry
                policy applies; nothing was written).
        """
        headers = message["headers"]
        task_id, name = headers["id"], headers["task"]
        redelivered = message.get("redelivered") or (message.get("properties") or {}).get(
            "delivery_info", {}).get("redelivered")
        if redelivered and self.ledger.redeliver(task_id):
            return
        try:
            delay_ms = self._delay_ms(name, headers.get("eta"))
        except _BadEtaError as exc:
            self._dead_letter_bad_eta(task_id, name, queue, message, str(exc))
            return
        stored = stored_message(message)
        scopes = self.admission.scopes(queue) if self.admission.enabled else ()
        entry, gap_ms = current_occurrence()
        request = DispatchRequest(
            task_id=task_id, task_name=name, queue=queue,
            envelope=seal_bytes(stored, self.keyring),
            max_resurrections=self.settings.max_resurrections, admission=scopes,
            delay_ms=delay_ms, plain=True, from_epoch=_publishing_epoch(task_id),
            priority=priority, occurrence=f"{name}:{entry}" if entry else "",
            occurrence_gap_ms=gap_ms,
        )
        prepared = self.ledger.prepare_dispatch(request, stored)
        reply = self.ledger.record_dispatch(prepared)
        if reply.kind == "rejected":
            scope = scopes[reply.scope_position - 1]
            raise AdmissionRejectedError(
                f"{name} not dispatched: the {scope.name} admission limit ({scope.limit} per "
                f"{scope.window_ms / 1000:g}s) is reached",
                math.ceil(reply.retry_after_ms / 1000), scope.name,
            )
        if reply.kind == "occurred":
            log.info("beat entry %r: this occurrence was already sent as task %s (another "
                     "beat process is running); %s not sent", entry, reply.task_id, task_id)
            return
        if reply.kind == "fenced":
            raise EpochFencedError(task_id, request.from_epoch, "re-dispatch (retry)")
        if reply.kind == "accepted":
            self.ledger.publish_accepted(prepared, reply.seq)

    def _delay_ms(self, name: str, eta: Any) -> int:
        if not eta:
            return 0
        try:
            due = datetime.fromisoformat(str(eta))
        except ValueError:
            raise _BadEtaError(f"eta {eta!r} is not an ISO 8601 time") from None
        if due.tzinfo is None:
            due = due.replace(tzinfo=UTC)  # Celery's default timezone (enable_utc)
        seconds = (due - datetime.now(UTC)).total_seconds()
        limit = self.settings.max_countdown
        if seconds > limit:
            raise ValueError(
                f"{name}: countdown/eta {seconds:.0f}s from now is beyond RELIER_MAX_COUNTDOWN="
                f"{limit:g}s; schedule it nearer (or raise RELIER_MAX_COUNTDOWN). Nothing was "
                "dispatched."
            )
        # The due time is the producer's eta, carried over to the Redis clock as a delay: a
        # worker whose clock runs behind then waits for the Redis clock, never runs early.
        return max(0, math.ceil(seconds * 1000))

    def _dead_letter_bad_eta(self, task_id: str, name: str, queue: str,
                             message: dict[str, Any], why: str) -> None:
        log.error("task %s (%s) dead-lettered: %s", task_id, name, why)
        self.ledger.fail(
            task_id=task_id, worker_id="", epoch=0, reason="BadEta", exc_type="ValueError",
            message=f"{why}; the message was kept here unpublished: fix the producer and "
                    f"release it (`rl dlq show {task_id}`)",
            outcome="rejected", raw=stored_message(message), task_name=name, queue=queue,
        )


class _BadEtaError(ValueError):
    """An eta header that no clock can read."""


def _publishing_epoch(task_id: str) -> int:
    """The epoch of the run publishing its own id again (retry, replace), else 0."""
    from celery import current_task

    task = current_task
    request = getattr(task, "request", None) if task else None
    if request is None or getattr(request, "id", None) != task_id:
        return 0
    try:
        return int(getattr(request, "rl_epoch", 0) or 0)
    except (TypeError, ValueError):
        return 0


_recorder: PlainRecorder | None = None
_recorder_pid = -1


def recorder() -> PlainRecorder:
    """The process's recorder (rebuilt in a forked child)."""
    global _recorder, _recorder_pid
    if _recorder is None or _recorder_pid != os.getpid():
        _recorder, _recorder_pid = PlainRecorder(), os.getpid()
    return _recorder


def reset_recorder() -> None:
    """Forget the process's recorder (tests, or after changing settings)."""
    global _recorder
    _recorder = None


class _RecordingChannel:
    """``_put`` of a task message records it; every other message goes to kombu as is."""

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        rec = recorder()
        if not rec.handles(message):
            super()._put(queue, message, **kwargs)  # type: ignore[misc]
            return
        kwargs.pop("_publish_batch", None)  # recorded one by one: each is its own script call
        rec.record(queue, message,
                   priority=self._get_message_priority(message, reverse=False))  # type: ignore[attr-defined]


class Channel(_RecordingChannel, kombu_redis.Channel):
    """kombu's Redis channel, recording task messages in the ledger."""


class SentinelChannel(_RecordingChannel, kombu_redis.SentinelChannel):
    """kombu's Sentinel channel, recording task messages in the ledger."""


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with Relier's recording channel (``redis://``, ``rediss://``)."""

    Channel = Channel


class SentinelTransport(kombu_redis.SentinelTransport):
    """kombu's Sentinel transport with Relier's recording channel (``sentinel://``)."""

    Channel = SentinelChannel


def transport_for(broker_url: str) -> str:
    """The ``broker_transport`` class path for a broker URL.

    Raises:
        ConfigurationError: the broker is not Redis (Relier records messages in Redis).
    """
    scheme = broker_url.split("://", 1)[0].lower()
    if scheme in ("redis", "rediss", "redis+socket", "socket"):
        return "relier.tasks.transport:Transport"
    if scheme == "sentinel":
        return "relier.tasks.transport:SentinelTransport"
    raise ConfigurationError("broker_url", scheme, "a redis://, rediss:// or sentinel:// URL "
                             "(Relier keeps its ledger beside kombu's Redis lists)")
