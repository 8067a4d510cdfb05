"""Celery beat without double runs: each occurrence of a schedule entry is sent once.

Two beat processes running by accident (an old deploy still up, a second replica with the
same settings) each send every due entry: vanilla Celery then runs every scheduled task
twice. With Relier, the scheduler tells the recording transport (in-process, never through
the message) which entry it is sending and the time to the entry's next occurrence; the
dispatch script (``task_dispatch``) records the first send of the entry and answers any other
send of the same task and entry within 90% of that time as the same occurrence, writing
nothing. The marker lives in Redis (``rl:beat:<task>:<entry>``) and expires by itself, so the
rule holds across hosts with no clock of their own involved, and a single beat never loses a
run: its sends of an entry are always a whole period apart (a marker left by a longer period
before a schedule change is ignored).

``relier.install(app)`` makes ``Scheduler`` the app's beat scheduler when the app uses
Celery's default one. A custom scheduler (django-celery-beat's, redbeat) gains the same
guarantee by putting ``BeatOccurrences`` first among its bases::

    class DedupScheduler(BeatOccurrences, DatabaseScheduler): ...
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery.beat import PersistentScheduler, ScheduleEntry

__all__ = ["GAP_FRACTION", "BeatOccurrences", "Scheduler", "current_occurrence",
           "occurrence_gap_ms"]

#: Share of the time to the next occurrence that counts as the same occurrence: under a whole
#: period so that one beat's successive sends (a period apart, or later) are never merged.
GAP_FRACTION = 0.9
#: The longest gap kept (one year): a schedule answering more is sent without deduplication.
MAX_GAP_MS = 365 * 86_400_000

#: The scheduler ``install`` replaces (Celery's default, named as ``beat_scheduler`` spells it).
CELERY_DEFAULT = "celery.beat:PersistentScheduler"

# The occurrence being sent by this thread's scheduler, read by the recording transport in the
# same call. Process-local on purpose: a message header would let any publisher (or a Celery
# retry, which copies a request's headers) pass for a beat send and silence the entry.
_sending: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar(
    "relier_beat_occurrence", default=None)


class BeatOccurrences:
    """Scheduler mixin: each send of an entry is recorded as that entry's occurrence."""

    def apply_async(self, entry: ScheduleEntry, producer: Any = None, advance: bool = True,
                    **kwargs: Any) -> Any:
        """Send ``entry`` as Celery's scheduler does, as one occurrence of it."""
        with _occurrence(entry.name, occurrence_gap_ms(entry)):
            return super().apply_async(entry, producer, advance, **kwargs)  # type: ignore[misc]


def current_occurrence() -> tuple[str, int]:
    """``(entry name, gap ms)`` of the beat send in progress in this thread, else ``("", 0)``."""
    return _sending.get() or ("", 0)


@contextmanager
def _occurrence(entry: str, gap_ms: int) -> Iterator[None]:
    token = _sending.set((entry, gap_ms) if gap_ms > 0 else None)
    try:
        yield
    finally:
        _sending.reset(token)


def occurrence_gap_ms(entry: ScheduleEntry) -> int:
    """90% of the time from this occurrence to the entry's next one (0: not known)."""
    try:
        # Asked as if it ran just now, a schedule answers the time to its next occurrence.
        _, next_seconds = entry.schedule.is_due(entry.default_now())
        gap = float(next_seconds) * 1000 * GAP_FRACTION
    except Exception:  # a custom schedule that cannot say: sent without deduplication
        return 0
    if not math.isfinite(gap) or gap <= 0 or gap > MAX_GAP_MS:
        return 0
    return round(gap)


class Scheduler(BeatOccurrences, PersistentScheduler):  # type: ignore[misc]
    """Celery's default (file-backed) scheduler, sending each occurrence once."""
