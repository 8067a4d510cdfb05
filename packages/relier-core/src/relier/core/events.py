"""Events: what Relier reports as it works, for telemetry to turn into metrics and spans.

Packages call ``emit`` at the moments that matter (a task dead-lettered, resurrected, an
admission decision, a timeout). Observers (relier-otel) ``subscribe``. With nobody
subscribed, ``emit`` is one check of an empty list; an observer that raises is logged and
never breaks the work that emitted.

Events and their fields:

- ``task.finished``: task, task_id, queue, attempt, outcome (completed, failed, timeout,
  fenced, duplicate), seconds
- ``task.dead_lettered``: task, task_id, queue, reason
- ``task.resurrected``: task, task_id, kind (killed, lease_expired, handoff), cause,
  outcome (done, dead), recovery_seconds (from the lease deadline, when known)
- ``task.timeout``: task, task_id, kind (soft, hard)
- ``admission.decision``: result (admitted, rejected, fail_open, fail_closed), scope
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["Observer", "emit", "subscribe", "unsubscribe"]

log = logging.getLogger("relier.events")

Observer = Callable[[str, dict[str, Any]], None]

_observers: list[Observer] = []


def subscribe(observer: Observer) -> None:
    """Call ``observer(name, fields)`` for every event (idempotent)."""
    if observer not in _observers:
        _observers.append(observer)


def unsubscribe(observer: Observer) -> None:
    """Stop calling ``observer``."""
    if observer in _observers:
        _observers.remove(observer)


def emit(name: str, **fields: Any) -> None:
    """Report an event to every observer."""
    if not _observers:
        return
    for observer in _observers:
        try:
            observer(name, fields)
        except Exception:
            log.exception("event observer failed on %s", name)
