"""Per-call dispatch options of an ``@rl_task``: ``task.with_options(countdown=..., ...)``.

The options live on a separate object, not in ``push``'s keyword arguments, so they can never
clash with a task's own parameters (a task may well take ``queue`` or ``eta``). Every option is
checked when ``with_options`` is called, so a bad one fails before any call is made:

- ``queue``: one of ``RELIER_QUEUES`` (``re-queue`` is Relier's own and never accepted);
- ``countdown`` (seconds) or ``eta`` (an aware ``datetime``; naive means UTC, as in Celery),
  not both, never negative, at most ``RELIER_MAX_COUNTDOWN`` ahead; the task then waits in
  Redis (scored on the Redis clock) until the resurrector promotes it;
- ``expires``: seconds after the dispatch, or a ``datetime``; a task not started by then is
  dead-lettered with reason ``Expired`` instead of running. The expiry is sealed in the
  envelope, so a forged header cannot extend it.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Any

import msgspec

from relier.core.queues import RECOVERY_QUEUE
from relier.core.settings import Settings

__all__ = ["CallOptions", "call_options", "check_queue"]


class CallOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What one dispatch overrides (every field unset: the task's own declaration).

    Attributes:
        queue: The queue to publish to ('' : the task's declared queue).
        delay_s: Seconds from the dispatch until the task is due (0: now).
        expires_at: Unix time after which an unstarted task is dead-lettered (0: never).
    """

    queue: str = ""
    delay_s: float = 0.0
    expires_at: float = 0.0


def check_queue(task: str, queue: Any, settings: Settings) -> str:
    """``queue`` if an ``@rl_task`` may use it.

    Raises:
        ValueError: the internal ``re-queue``, or a queue ``RELIER_QUEUES`` does not declare.
    """
    declared = settings.queue_names()
    if queue == RECOVERY_QUEUE:
        raise ValueError(f"{task}: queue={queue!r} is Relier's internal queue for resurrected "
                         f"tasks; pick one of RELIER_QUEUES ({', '.join(declared)})")
    if not isinstance(queue, str) or queue not in declared:
        raise ValueError(f"{task}: queue {queue!r} is not declared; pick one of "
                         f"{', '.join(declared)}, or add it to RELIER_QUEUES (comma-separated) "
                         "on producers and workers")
    return queue


def call_options(task: str, settings: Settings, *, queue: str | None = None,
                 countdown: float | None = None, eta: datetime | str | None = None,
                 expires: float | datetime | str | None = None) -> CallOptions:
    """Check per-call options and turn them into a ``CallOptions``.

    Raises:
        ValueError: an option out of range; the message says which and how to fix it.
        TypeError: an option of the wrong type.
    """
    now = time.time()
    delay = 0.0
    if countdown is not None and eta is not None:
        raise ValueError(f"{task}: give countdown or eta, not both")
    if countdown is not None:
        delay = _seconds(task, "countdown", countdown)
        if delay < 0:
            raise ValueError(f"{task}: countdown={countdown!r} is negative; use seconds of 0 "
                             "or more (0 runs it now)")
    elif eta is not None:
        delay = max(0.0, _timestamp(task, "eta", eta) - now)
    if delay > settings.max_countdown:
        raise ValueError(
            f"{task}: countdown/eta {delay:.0f}s from now is beyond RELIER_MAX_COUNTDOWN="
            f"{settings.max_countdown:g}s; schedule it nearer (or raise RELIER_MAX_COUNTDOWN). "
            "Nothing was dispatched."
        )
    expires_at = 0.0
    if expires is not None:
        if isinstance(expires, datetime | str):
            expires_at = _timestamp(task, "expires", expires)
        else:
            seconds = _seconds(task, "expires", expires)
            if seconds <= 0:
                raise ValueError(f"{task}: expires={expires!r}; use seconds above 0 (or a "
                                 "datetime)")
            expires_at = now + seconds
        if expires_at <= now + delay:
            raise ValueError(f"{task}: expires ({expires!r}) falls before the task is due; it "
                             "would expire unrun. Give it a later expiry or an earlier eta")
    return CallOptions(queue=check_queue(task, queue, settings) if queue is not None else "",
                       delay_s=delay, expires_at=expires_at)


def _seconds(task: str, name: str, value: Any) -> float:
    try:
        if isinstance(value, bool) or not isinstance(value, int | float) or \
                not math.isfinite(value):
            raise TypeError
        return float(value)
    except (TypeError, OverflowError):
        raise TypeError(f"{task}: {name}={value!r}; use a (finite) number of seconds") from None


def _timestamp(task: str, name: str, value: Any) -> float:
    if isinstance(value, str):  # Celery also takes an ISO 8601 string
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise TypeError(f"{task}: {name}={value!r} is not an ISO 8601 time; use a "
                            "datetime") from None
    if not isinstance(value, datetime):
        raise TypeError(f"{task}: {name}={value!r}; use a datetime")
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
