"""``@rl_task``: declare a Relier task.

Options belong to the middleware that implements them (Phoenix owns ``max_resurrections``,
idempotency owns ``idempotent`` and ``idempotency_ttl``, timeouts own ``soft_timeout``,
``hard_timeout`` and ``on_soft_timeout``); ``rl_task`` itself owns ``queue`` and ``name``. An
option nobody owns is a ``TypeError``, and every owner checks its options when the function is
decorated, so a misconfigured task fails at import, not at 3 a.m.

Typing: ``rl_task`` returns a ``RelierTaskHandle[P, R]`` carrying the function's parameters
``P`` and its result ``R`` (the awaited result for an ``async def``), so a type checker checks
``push``/``apush`` arguments like a call of the function and types ``receipt.get()`` as ``R``.
``P`` is the signature as declared, ``ctx`` included: Python's typing cannot remove a named
parameter from a ``ParamSpec`` (``Concatenate`` only strips leading positional parameters, and
Relier passes ``ctx`` by keyword, so a leading ``ctx`` cannot be called positionally anyway).
Declare ``ctx`` with a default (``ctx: TaskContext = task_context``) and every other argument
is checked; a ``ctx`` passed by the caller is refused at ``push`` at run time (TypeError,
nothing enqueued), not by the type checker. See docs/concepts.md ("Typed handles").
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from datetime import datetime
from types import MappingProxyType
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, cast, overload

from celery import Task, shared_task
from celery.local import Proxy

from relier.core.pipeline import TaskOptions
from relier.core.queues import ALL_QUEUES, DEFAULT_QUEUE, PUBLIC_QUEUES, RECOVERY_QUEUE
from relier.core.settings import get_settings
from relier.tasks.dispatch import dispatcher
from relier.tasks.middleware import option_owners
from relier.tasks.options import CallOptions, call_options, check_queue
from relier.tasks.receipt import TaskReceipt
from relier.tasks.runtime import TaskSpec, accepts_ctx, runtime
from relier.tasks.transport import RELIER_TASK_NAMES

__all__ = [
    "ALL_QUEUES",
    "INTERNAL_QUEUES",
    "PUBLIC_QUEUES",
    "BoundCall",
    "RelierTask",
    "RelierTaskHandle",
    "TaskReceipt",
    "rl_task",
]

INTERNAL_QUEUES = (RECOVERY_QUEUE,)

_OWN_OPTIONS: dict[str, Any] = {"queue": DEFAULT_QUEUE, "name": None}

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class RelierTask(Task):  # type: ignore[misc]  # Celery ships no type information
    """The Celery task class behind every ``@rl_task`` function."""

    _relier_spec: TaskSpec
    ignore_result = True
    acks_late = False

    async def apush(self, *args: Any, **kwargs: Any) -> TaskReceipt[Any]:
        """Dispatch from async code; returns once the task is durably recorded and queued."""
        return await dispatcher().apush(self._relier_spec, args, kwargs)

    def push(self, *args: Any, **kwargs: Any) -> TaskReceipt[Any]:
        """Dispatch from sync code (Flask, Django, scripts, sync or async task bodies)."""
        return dispatcher().push(self._relier_spec, args, kwargs)

    def with_options(self, *, queue: str | None = None, countdown: float | None = None,
                     eta: datetime | None = None, expires: float | datetime | None = None
                     ) -> BoundCall:
        """This task with per-call options; its ``push``/``apush`` take the task's arguments.

        ``queue`` (one of ``RELIER_QUEUES``), ``countdown`` (seconds) or ``eta`` (a
        ``datetime``, naive meaning UTC), ``expires`` (seconds after dispatch, or a
        ``datetime``). Checked here, before any call.

        Raises:
            ValueError: an undeclared queue, a negative or too distant countdown, an expiry
                before the due time (the message says how to fix it).
            TypeError: an option of the wrong type.
        """
        return BoundCall(self, call_options(self.name, get_settings(), queue=queue,
                                            countdown=countdown, eta=eta, expires=expires))

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Celery's dispatch, kept for existing code; ``push``/``apush`` are the typed doors.

        With no options beyond ``queue``, ``countdown``, ``eta`` and ``expires`` (``.delay()``
        passes none) the call is a ``push``: recorded, deduplicated and admitted at dispatch,
        and the ``TaskReceipt`` returned has Celery's ``id``, ``get()``, ``status`` and
        ``ready()``. Anything else (``link``, ``task_id``, ``headers``, a canvas) sends a plain
        Celery message, adopted by the worker that picks it up; with no Relier-configured
        Celery app in this process it goes through the ready-made ``relier.tasks.app``.
        """
        given = {k: v for k, v in options.items() if v is not None}
        if set(given) <= _PUSH_OPTIONS:
            call = call_options(self.name, get_settings(), **given)
            return dispatcher().push(self._relier_spec, tuple(args or ()), dict(kwargs or {}),
                                     call, celery_call=True)
        options.setdefault("queue", self._relier_spec.options.queue)
        if not self.app.conf.get("relier_installed"):
            from relier.tasks.app import app

            return app.send_task(self.name, args=args, kwargs=kwargs, **options)
        return super().apply_async(args, kwargs, **options)


#: The ``apply_async`` options a ``push`` honours (``with_options``).
_PUSH_OPTIONS = frozenset({"queue", "countdown", "eta", "expires"})


class BoundCall:
    """An ``@rl_task`` with per-call options (``task.with_options(...)``)."""

    __slots__ = ("options", "task")

    def __init__(self, task: RelierTask, options: CallOptions) -> None:
        self.task, self.options = task, options

    async def apush(self, *args: Any, **kwargs: Any) -> TaskReceipt[Any]:
        """``task.apush`` with these options."""
        return await dispatcher().apush(self.task._relier_spec, args, kwargs, self.options)

    def push(self, *args: Any, **kwargs: Any) -> TaskReceipt[Any]:
        """``task.push`` with these options."""
        return dispatcher().push(self.task._relier_spec, args, kwargs, self.options)


class BoundHandle(Protocol, Generic[P, R_co]):
    """What ``with_options`` returns, for type checkers: the same ``push`` / ``apush``."""

    async def apush(self, *args: P.args, **kwargs: P.kwargs) -> TaskReceipt[R_co]:
        """Dispatch from async code, with the function's arguments."""
        ...

    def push(self, *args: P.args, **kwargs: P.kwargs) -> TaskReceipt[R_co]:
        """Dispatch from sync code, with the function's arguments."""
        ...


class RelierTaskHandle(Protocol, Generic[P, R_co]):
    """What ``@rl_task`` returns, for type checkers.

    ``P`` is the function's parameters and ``R`` its result (awaited, for an ``async def``).
    At run time the handle is the ``RelierTask`` Celery registered.
    """

    name: str

    async def apush(self, *args: P.args, **kwargs: P.kwargs) -> TaskReceipt[R_co]:
        """Dispatch from async code, with the function's arguments."""
        ...

    def push(self, *args: P.args, **kwargs: P.kwargs) -> TaskReceipt[R_co]:
        """Dispatch from sync code, with the function's arguments."""
        ...

    def with_options(self, *, queue: str | None = None, countdown: float | None = None,
                     eta: datetime | None = None, expires: float | datetime | None = None
                     ) -> BoundHandle[P, R_co]:
        """The task with per-call options (queue, countdown or eta, expires)."""
        ...

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        """Celery's dispatch: a ``push`` (returns its ``TaskReceipt``)."""
        ...

    def apply_async(self, *args: Any, **kwargs: Any) -> Any:
        """Celery's legacy dispatch with options."""
        ...

    def __wrapped__(self, _self: Any, *args: Any, **kwargs: Any) -> Any:
        """The undecorated function (unit tests pass ``ctx=`` themselves)."""
        ...


class _Decorator(Protocol):
    """``rl_task(**options)``: the decorator it returns keeps the function's types."""

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /
                 ) -> RelierTaskHandle[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R], /) -> RelierTaskHandle[P, R]: ...


# The coroutine overload comes first: an ``async def`` returning R is typed as returning R,
# since that is what ``receipt.get()`` gives back (the runtime awaits the body).
@overload
def rl_task(fn: Callable[P, Coroutine[Any, Any, R]], /) -> RelierTaskHandle[P, R]: ...


@overload
def rl_task(fn: Callable[P, R], /) -> RelierTaskHandle[P, R]: ...


@overload
def rl_task(fn: None = None, /, **options: Any) -> _Decorator: ...


def rl_task(fn: Callable[..., Any] | None = None, /, **options: Any
            ) -> RelierTaskHandle[..., Any] | _Decorator:
    """Declare a Relier task: ``@rl_task()``, ``@rl_task(queue=..., ...)`` or ``@rl_task``.

    Options: ``queue`` (one of ``RELIER_QUEUES``: high_priority, default, low_priority unless
    set otherwise), ``name`` (default
    ``module.qualname``), ``idempotent``, ``idempotency_ttl``, ``soft_timeout``,
    ``hard_timeout``, ``on_soft_timeout``, ``max_resurrections``.

    Raises:
        TypeError: an unknown option.
        ValueError: an invalid combination (each message says how to fix it).
    """
    owners = option_owners()
    known = dict(_OWN_OPTIONS)
    for owner in owners:
        known.update(owner.options)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(
            f"rl_task() got unknown option(s) {', '.join(map(repr, unknown))}; known options: "
            f"{', '.join(sorted(known))}"
        )

    def decorate(func: Callable[..., Any]) -> RelierTaskHandle[..., Any]:
        return _decorate(func, {**known, **options}, owners)

    if fn is not None:
        return decorate(fn)
    return cast(_Decorator, decorate)


def _decorate(fn: Callable[..., Any], values: dict[str, Any], owners: list[Any]
              ) -> RelierTaskHandle[..., Any]:
    if isinstance(fn, Proxy | Task) or hasattr(fn, "apush") or hasattr(fn, "_relier_spec"):
        name = getattr(fn, "name", getattr(fn, "__name__", fn))
        raise ValueError(
            f"rl_task is applied twice to {name}: decorate the plain function once"
        )
    if not callable(fn):
        raise TypeError(f"rl_task decorates functions, not {type(fn).__name__}")
    name = values["name"] or f"{fn.__module__}.{fn.__qualname__}"
    queue = check_queue(name, values["queue"], get_settings())
    values = {**values, "name": name}
    options = TaskOptions(name=name, queue=queue, is_async=inspect.iscoroutinefunction(fn),
                          values=MappingProxyType(values))
    for owner in owners:
        owner.check_options(options, fn)
    spec = TaskSpec(fn=fn, options=options, accepts_ctx=accepts_ctx(fn))
    # A plain Celery message of it (send_task, a canvas) is adopted by the worker that picks
    # it up, from its own signature; the recording transport leaves it alone.
    RELIER_TASK_NAMES.add(name)

    def run(self: RelierTask, *args: Any, **kwargs: Any) -> None:
        runtime().execute(spec, self.request, args, kwargs)

    def bare(_self: Any, *args: Any, **kwargs: Any) -> Any:
        # The undecorated function, for unit tests: task.__wrapped__(None, *args, ctx=...).
        return fn(*args, **kwargs)

    run.__name__ = getattr(fn, "__name__", "task")
    run.__qualname__ = getattr(fn, "__qualname__", run.__name__)
    run.__module__ = fn.__module__
    run.__doc__ = fn.__doc__
    task = shared_task(name=name, bind=True, base=RelierTask, _relier_spec=spec,
                       __wrapped__=staticmethod(bare))(run)
    return cast(RelierTaskHandle[..., Any], task)
