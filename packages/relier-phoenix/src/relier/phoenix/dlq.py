"""The dead-letter queue: tasks that ended without completing, kept whole until you act.

An entry is the task's own record, kept without expiry: the original signed envelope bytes,
the task name and queue, the reason, exception type, message and traceback, every attempt
(worker, start, end, outcome, kill cause) and the last checkpoint. Entries are indexed by the
time they were dead-lettered.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from relier.core.exceptions import AdmissionRejectedError, TaskNotFoundError
from relier.core.ops import AdmissionScope
from relier.core.settings import Settings
from relier.phoenix.ledger import Ledger
from relier.phoenix.records import TaskRecord

__all__ = ["DeadLetterQueue"]

log = logging.getLogger("relier.phoenix.dlq")

#: Returns the admission scopes a release must pass (set by relier-admission when installed).
AdmissionHook = Callable[[TaskRecord], tuple[AdmissionScope, ...]]


class DeadLetterQueue:
    """List, inspect, release and purge dead-lettered tasks.

    Args:
        settings: Settings to use (default: the process's).
        admission: Scopes a release must be admitted by; releases then count against the same
            limits as dispatches (installed by relier-admission).
    """

    def __init__(self, settings: Settings | None = None,
                 admission: AdmissionHook | None = None) -> None:
        self.ledger = Ledger(settings)
        self.admission = admission

    def count(self) -> int:
        """Number of entries."""
        return self.ledger.dlq_count()

    def list(
        self, *, reason: str | None = None, task: str | None = None, limit: int | None = 100
    ) -> list[TaskRecord]:
        """Entries, newest first, optionally filtered by exact reason and task name."""
        found: list[TaskRecord] = []
        batch: list[str] = []

        def flush() -> bool:
            for record in self.ledger.records(batch):
                if record.state != "dead":
                    continue
                if reason and record.reason != reason:
                    continue
                if task and record.task_name != task:
                    continue
                found.append(record)
                if limit is not None and len(found) >= limit:
                    return True
            batch.clear()
            return False

        for task_id in self.ledger.dlq_ids():
            batch.append(task_id)
            if len(batch) >= 200 and flush():
                return found
        if batch:
            flush()
        return found

    def show(self, task_id: str) -> TaskRecord:
        """One entry, whole.

        Raises:
            TaskNotFoundError: the task is not in the dead-letter queue.
        """
        record = self.ledger.record(task_id)
        if record.state == "unknown":
            raise TaskNotFoundError(task_id)
        if record.state != "dead":
            raise TaskNotFoundError(
                task_id, f"task {task_id} is not in the dead-letter queue (it is "
                         f"{record.state}; `rl tasks show {task_id}`)")
        return record

    def release(self, task_id: str) -> bool:
        """Send one entry back to the queue it was dispatched to.

        Its fencing restarts cleanly (a new epoch, the death count back to 0) while its
        history is kept. With an ``admission`` hook (``rl dlq release`` installs one) the
        release passes admission control like a dispatch would; without one it does not.

        Returns:
            True when released; False when the task was not dead-lettered.

        Raises:
            AdmissionRejectedError: the cluster is at capacity; retry after ``retry_after``.
        """
        if self.admission is not None:
            record = self.show(task_id)
            scopes = self.admission(record)
            if scopes:
                wait, position = self.ledger.admit(member=f"release:{task_id}",
                                                   scopes=scopes)
                if wait:
                    scope = scopes[position - 1]
                    raise AdmissionRejectedError(
                        f"release of {task_id} refused: {scope.name} is at capacity",
                        math.ceil(wait / 1000), scope.name)
        released = self.ledger.release(task_id).kind == "done"
        if released:
            log.info("task %s released from the dead-letter queue", task_id)
        return released

    def release_all(self, *, reason: str | None = None, task: str | None = None) -> int:
        """Release every matching entry (oldest first); returns how many were released.

        Raises:
            AdmissionRejectedError: the cluster reached capacity part-way; the message says how
                many were released, and running the same call again releases the rest.
        """
        count = 0
        for record in reversed(self.list(reason=reason, task=task, limit=None)):
            try:
                released = self.release(record.task_id)
            except AdmissionRejectedError as exc:
                raise AdmissionRejectedError(
                    f"{exc}; {count} task(s) released before the refusal, the rest are still "
                    f"dead-lettered: run the same release again in {exc.retry_after}s",
                    exc.retry_after, exc.scope,
                ) from exc
            count += released
        return count

    def purge(self, task_id: str) -> bool:
        """Delete one entry for good (and its checkpoint file)."""
        purged = self.ledger.purge(task_id)
        if purged:
            self.ledger.checkpoints.discard(task_id)
        return purged

    def purge_all(self) -> int:
        """Delete every entry; returns how many."""
        return sum(self.purge(task_id) for task_id in list(self.ledger.dlq_ids()))
