"""The worker pipeline's shared vocabulary: a job and the middleware that handle it.

The runtime (``relier.tasks``) runs every delivered message through a chain of middleware:
each ``before_run`` in order, then the task body, then each ``after_run`` in reverse order
(for the middleware whose ``before_run`` ran). Hooks are plain functions run in the thread
Celery gave the task (blocking there is what that thread is for); only an ``async def`` body
goes to the process's event loop, so a run costs no thread hop beyond the body's own.

Phoenix (claim, complete, dead-letter), the envelope (verify, migrate), idempotency and
telemetry plug in here without the runtime knowing them. The classes live in core so that
feature packages can implement them without importing the runtime (dependencies point one
way: core <- features <- relier).

A middleware also declares the ``rl_task`` options it owns; ``rl_task`` rejects any option no
installed middleware claims.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["Job", "Middleware", "SkipRun", "TaskOptions"]


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """The options a task was declared with, as every middleware sees them.

    Attributes:
        name: Registered task name.
        queue: Queue the task is dispatched to.
        is_async: The body is an ``async def``.
        values: Every ``rl_task`` option, by name (defaults filled in by their owners).
    """

    name: str
    queue: str
    is_async: bool
    values: Mapping[str, Any] = field(default_factory=dict)

    def get(self, option: str, default: Any = None) -> Any:
        """One option's value."""
        return self.values.get(option, default)


class SkipRun(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by a ``before_run`` hook: do not run the body.

    Attributes:
        reason: Why (logged), e.g. ``duplicate delivery``.
        result: For a short-circuit that has a result (an idempotent duplicate), that result.
    """

    def __init__(self, reason: str, result: Any = None) -> None:
        self.reason = reason
        self.result = result
        super().__init__(reason)


@dataclass(slots=True, eq=False)
class Job:
    """Everything known about one delivery while it moves through the pipeline.

    The runtime fills the delivery facts; middleware fill the rest (Phoenix the claim, the
    envelope middleware the arguments). It never leaves the process.
    """

    task_id: str
    options: TaskOptions
    delivery_queue: str
    worker_id: str
    hostname: str
    message_args: tuple[Any, ...] = ()
    message_kwargs: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, Any] = field(default_factory=dict)
    legacy: bool = False
    # -- set by the claim ----------------------------------------------------------------------
    epoch: int = 0
    attempt: int = 1
    resurrections: int = 0
    max_resurrections: int = 0
    sealed: bytes = b""
    checkpoint: Any = None
    dispatched_at_ms: int = 0
    idem_key: str = ""
    idem_ttl: int = 0
    # -- set by the envelope middleware ----------------------------------------------------------
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    trace: dict[str, str] = field(default_factory=dict)
    # -- set by the runtime --------------------------------------------------------------------
    started_at: float = 0.0
    result: Any = None
    timed_out: bool = False
    #: Stores a checkpoint for this job (bound by Phoenix to the job's epoch).
    checkpointer: Callable[[Any], Awaitable[None]] | None = None
    #: Free-form space for middleware to share per-job state (keyed by middleware name).
    scratch: dict[str, Any] = field(default_factory=dict)


class Middleware:
    """A step of the worker pipeline. Every hook is optional.

    Attributes:
        name: Short name, for logs and ``scratch`` keys.
        options: The ``rl_task`` options this middleware owns, with their defaults.
    """

    name: ClassVar[str] = "middleware"
    options: ClassVar[Mapping[str, Any]] = {}

    def check_options(self, options: TaskOptions, fn: Callable[..., Any]) -> None:
        """Validate this middleware's options at decoration time; raise ValueError to refuse."""

    def before_run(self, job: Job) -> None:
        """Called before the body, in chain order. Raise SkipRun to not run the body."""

    def after_run(self, job: Job, error: BaseException | None) -> None:
        """Called after the body (or a later hook's failure), in reverse order.

        ``error`` is the exception that ended the run, or None on success (``job.result`` then
        holds the result).
        """
