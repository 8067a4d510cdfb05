"""TaskReceipt: the handle ``apush``/``push`` return, backed by the ledger."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Generic, TypeVar

from relier.core import codec
from relier.core.exceptions import TaskDeadLetteredError, TaskNotFoundError
from relier.core.record import DEAD_REASON, DUPLICATE_OF, EXC_MESSAGE, RESULT, STATE, TaskRecord
from relier.phoenix.ledger import Ledger

__all__ = ["TaskReceipt"]

#: Ledger states as the familiar Celery names.
STATUS = {"scheduled": "PENDING", "queued": "PENDING", "running": "STARTED",
          "done": "SUCCESS", "dead": "FAILURE"}
_MISSING: Any = object()
_FIELDS = (STATE, RESULT, DUPLICATE_OF, DEAD_REASON, EXC_MESSAGE)

#: What ``get``/``aget`` return: the task function's result (awaited, for an ``async def``).
#: Only a type checker's view: the value is whatever the record's JSON decodes to.
R_co = TypeVar("R_co", covariant=True)


class TaskReceipt(Generic[R_co]):
    """The receipt of a dispatched task; ``TaskReceipt[R]`` for a task returning ``R``.

    Attributes:
        id: The task id (the same for every attempt).
        task_name: The registered task name.
        deduplicated: True when this dispatch was an idempotent duplicate: nothing was
            enqueued and the receipt is the original task's.
    """

    __slots__ = ("_ledger", "_result", "_state", "deduplicated", "id", "task_name")

    def __init__(self, task_id: str, task_name: str, ledger: Ledger, *,
                 state: str = "queued", result: Any = _MISSING,
                 deduplicated: bool = False) -> None:
        self.id = task_id
        self.task_name = task_name
        self.deduplicated = deduplicated
        self._ledger = ledger
        self._state = state
        self._result = result

    def __repr__(self) -> str:
        dedup = ", deduplicated" if self.deduplicated else ""
        return f"<TaskReceipt {self.task_name}[{self.id}] {STATUS.get(self._state)}{dedup}>"

    # -- sync ----------------------------------------------------------------------------------
    def _fetch(self) -> TaskRecord:
        return self._ledger.record_fields(self.id, *_FIELDS)

    @property
    def status(self) -> str:
        """PENDING (queued), STARTED (running), SUCCESS (done) or FAILURE (dead-lettered)."""
        if self._state not in ("done", "dead"):
            self._absorb(self._fetch())
        return STATUS.get(self._state, "UNKNOWN")

    def ready(self) -> bool:
        """True once the task completed or was dead-lettered."""
        return self.status in ("SUCCESS", "FAILURE")

    def get(self, timeout: float | None = None) -> R_co:
        """Wait for the result.

        Raises:
            TimeoutError: not finished within ``timeout`` seconds.
            TaskDeadLetteredError: the task ended in the dead-letter queue.
            TaskNotFoundError: the ledger does not know the task (or its result expired).
            TypeError: the task completed but returned a value JSON cannot hold.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.005
        while True:
            if self._result is not _MISSING:
                return self._result  # type: ignore[no-any-return]
            finished, value, follow = self._settle(self._fetch())
            if follow:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                return TaskReceipt[R_co](follow, self.task_name, self._ledger).get(left)
            if finished:
                return value  # type: ignore[no-any-return]
            if deadline is not None and time.monotonic() + delay > deadline:
                raise TimeoutError(f"task {self.id} not finished after {timeout}s "
                                   f"(status {STATUS.get(self._state)})")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.1)

    # -- asyncio -------------------------------------------------------------------------------
    async def astatus(self) -> str:
        """``status`` without blocking the event loop."""
        if self._state not in ("done", "dead"):
            self._absorb(await self._ledger.arecord_fields(self.id, *_FIELDS))
        return STATUS.get(self._state, "UNKNOWN")

    async def aget(self, timeout: float | None = None) -> R_co:
        """``get`` without blocking the event loop."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.005
        while True:
            if self._result is not _MISSING:
                return self._result  # type: ignore[no-any-return]
            fields = await self._ledger.arecord_fields(self.id, *_FIELDS)
            finished, value, follow = self._settle(fields)
            if follow:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                return await TaskReceipt[R_co](follow, self.task_name, self._ledger).aget(left)
            if finished:
                return value  # type: ignore[no-any-return]
            if deadline is not None and time.monotonic() + delay > deadline:
                raise TimeoutError(f"task {self.id} not finished after {timeout}s "
                                   f"(status {STATUS.get(self._state)})")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.1)

    # -- shared ----------------------------------------------------------------------------------
    def _absorb(self, rec: TaskRecord) -> None:
        self._state = "missing" if rec.state == "unknown" else rec.state

    def _settle(self, rec: TaskRecord) -> tuple[bool, Any, str]:
        """``(finished, result, follow)`` from a record; raises for a dead or unknown task.

        ``follow`` names the task whose result this one shares (an idempotent duplicate
        recorded at claim time before the first one finished).
        """
        self._absorb(rec)
        if rec.state == "unknown":
            raise TaskNotFoundError(self.id)
        if rec.state == "dead":
            raise TaskDeadLetteredError(self.id, rec.reason, rec.message)
        if rec.state != "done":
            return False, None, ""
        if rec.result is None and rec.duplicate_of:
            return False, None, rec.duplicate_of
        value = codec.decode(rec.result) if rec.result is not None else None
        if isinstance(value, dict) and "__relier_unstored_result__" in value:
            raise TypeError(value["__relier_unstored_result__"])
        self._result = value
        return True, value, ""
