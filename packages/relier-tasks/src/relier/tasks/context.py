"""TaskContext: what a running task knows about itself, and the ``task_context`` proxy."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any, cast

__all__ = ["TaskContext", "task_context"]


@dataclass(eq=False)
class TaskContext:
    """The live context of one run of a task.

    Reach it by declaring a ``ctx`` parameter (Relier finds it by signature and passes it) or
    through ``task_context`` anywhere inside the run.

    Attributes:
        task_id: Stable across every attempt of the task.
        task_name: Registered task name.
        args: Positional arguments (after migration).
        kwargs: Keyword arguments (after migration; without ``ctx``).
        worker_id: Celery node name of the worker running it.
        attempt: 1 for the first run; one more per resurrection, hand-off or release.
        partial_result: The last checkpoint of an earlier run, else None.
        metadata: In-memory scratch space, shared with the soft-timeout hook; never stored.
        started_at: Unix time this run started.
        resurrections: How many times an earlier run's worker died.
        epoch: The run's fencing token: it grows with every run, and only the current one may
            write. Pass it to your own storage to fence your own writes (compare-and-set).
    """

    task_id: str
    task_name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    worker_id: str = ""
    attempt: int = 1
    partial_result: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    resurrections: int = 0
    epoch: int = 0
    _checkpointer: Callable[[Any], Awaitable[None]] | None = field(default=None, repr=False)

    @property
    def full_name(self) -> str:
        """``task_name[task_id]``, for logs."""
        return f"{self.task_name}[{self.task_id}]"

    @property
    def fence_token(self) -> int:
        """Alias of ``epoch``."""
        return self.epoch

    @property
    def is_resurrection(self) -> bool:
        """True when an earlier run of this task died under its worker."""
        return self.resurrections > 0

    async def set_partial(self, data: Any) -> None:
        """Store a checkpoint that a later run of this task receives as ``partial_result``.

        The write is fenced: a run that was superseded (its worker presumed dead) gets
        ``EpochFencedError`` instead of overwriting the newer
        run's progress. Outside a worker (a unit test) it only sets ``partial_result``.

        Raises:
            CheckpointTooLargeError: over ``RELIER_CHECKPOINT_MAX_INLINE_BYTES`` with the
                inline backend.
            TypeError: ``data`` is not JSON.
        """
        if self._checkpointer is not None:
            await self._checkpointer(data)
        self.partial_result = data


_current: ContextVar[TaskContext] = ContextVar("relier_task_context")


def bind(ctx: TaskContext) -> Token[TaskContext]:
    """Make ``ctx`` the current context (runtime use)."""
    return _current.set(ctx)


def unbind(token: Token[TaskContext]) -> None:
    """Restore the previous context (runtime use)."""
    _current.reset(token)


class _TaskContextProxy:
    """Forwards attribute access to the context of the running task."""

    __slots__ = ()

    @staticmethod
    def _target() -> TaskContext:
        ctx = _current.get(None)
        if ctx is None:
            raise RuntimeError(
                "task_context is only available while a Relier task runs (inside the task "
                "body or its soft-timeout hook). In a unit test, pass ctx=TaskContext(...) "
                "to task.__wrapped__ instead."
            )
        return ctx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._target(), name, value)

    def __repr__(self) -> str:
        ctx = _current.get(None)
        return f"<task_context of {ctx.full_name}>" if ctx else "<task_context (no task)>"


#: The context of the task running in the current thread or coroutine.
task_context: TaskContext = cast(TaskContext, _TaskContextProxy())
