"""Celery beat without double runs: each occurrence of a schedule entry is sent once.

Two beat processes running by accident (an old deploy still up, a second replica with the
same settings) each send every due entry: vanilla Celery then runs every scheduled task
twice. With Relier, a beat send carries the entry's name and the time to its next occurrence;
the dispatch script (``task_dispatch``) records the first send of the entry and answers any
other send of the same entry within 90% of that time as the same occurrence, writing nothing.
The marker lives in Redis (``rl:beat:<entry>``) and expires by itself, so the rule holds
across hosts with no clock of their own involved, and a single beat never loses a run: its
sends of an entry are always a whole period apart.

``relier.install(app)`` makes ``Scheduler`` the app's beat scheduler when the app uses
Celery's default one. A custom scheduler (django-celery-beat's, redbeat) gains the same
guarantee by putting ``BeatOccurrences`` first among its bases::

    class DedupScheduler(BeatOccurrences, DatabaseScheduler): ...
"""

from __future__ import annotations

from typing import Any

from celery.beat import PersistentScheduler, ScheduleEntry

__all__ = ["GAP_FRACTION", "HEADER_ENTRY", "HEADER_GAP", "BeatOccurrences", "Scheduler"]

#: Header naming the beat entry a message was sent for.
HEADER_ENTRY = "rl_beat_entry"
#: Header with the time (ms) within which another send of the entry is the same occurrence.
HEADER_GAP = "rl_beat_gap_ms"
#: Share of the time to the next occurrence that counts as the same occurrence: under a whole
#: period so that one beat's successive sends (a period apart, or later) are never merged.
GAP_FRACTION = 0.9

#: The scheduler ``install`` replaces (Celery's default, named as ``beat_scheduler`` spells it).
CELERY_DEFAULT = "celery.beat:PersistentScheduler"


class BeatOccurrences:
    """Scheduler mixin: tag each send with its entry so a second beat's send is dropped."""

    def apply_async(self, entry: ScheduleEntry, producer: Any = None, advance: bool = True,
                    **kwargs: Any) -> Any:
        """Send ``entry`` as Celery's scheduler does, with its occurrence headers."""
        gap_ms = occurrence_gap_ms(entry)
        if gap_ms > 0:
            options = dict(entry.options or {})
            headers = dict(options.get("headers") or {})
            headers[HEADER_ENTRY] = entry.name
            headers[HEADER_GAP] = gap_ms
            options["headers"] = headers
            entry = _with_options(entry, options)
        return super().apply_async(entry, producer, advance, **kwargs)  # type: ignore[misc]


def occurrence_gap_ms(entry: ScheduleEntry) -> int:
    """90% of the time from this occurrence to the entry's next one (0: not known)."""
    try:
        # Asked as if it ran just now, a schedule answers the time to its next occurrence.
        _, next_seconds = entry.schedule.is_due(entry.default_now())
    except Exception:  # a custom schedule that cannot say: sent without deduplication
        return 0
    try:
        return max(0, round(float(next_seconds) * 1000 * GAP_FRACTION))
    except (TypeError, ValueError):
        return 0


def _with_options(entry: ScheduleEntry, options: dict[str, Any]) -> ScheduleEntry:
    # A copy of the entry with other options: the schedule's own entry is left as it was.
    clone: ScheduleEntry = entry.__class__.__new__(entry.__class__)
    clone.__dict__.update(entry.__dict__)
    clone.options = options
    return clone


class Scheduler(BeatOccurrences, PersistentScheduler):  # type: ignore[misc]
    """Celery's default (file-backed) scheduler, sending each occurrence once."""
