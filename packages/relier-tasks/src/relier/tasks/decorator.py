"""``@rl_task``: declare a Relier task.

Options belong to the middleware that implements them (Phoenix owns ``max_resurrections``,
idempotency owns ``idempotent`` and ``idempotency_ttl``, timeouts own ``soft_timeout``,
``hard_timeout`` and ``on_soft_timeout``); ``rl_task`` itself owns ``queue`` and ``name``. An
option nobody owns is a ``TypeError``, and every owner checks its options when the function is
decorated, so a misconfigured task fails at import, not at 3 a.m.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import MappingProxyType
from typing import Any, Protocol, cast, overload

from celery import Task, shared_task
from celery.local import Proxy

from relier.core.pipeline import TaskOptions
from relier.tasks.dispatch import dispatcher
from relier.tasks.middleware import option_owners
from relier.tasks.receipt import TaskReceipt
from relier.tasks.runtime import TaskSpec, accepts_ctx, runtime

__all__ = [
    "ALL_QUEUES",
    "INTERNAL_QUEUES",
    "PUBLIC_QUEUES",
    "RelierTask",
    "TaskReceipt",
    "rl_task",
]

PUBLIC_QUEUES = ("high_priority", "default", "low_priority")
INTERNAL_QUEUES = ("re-queue",)
ALL_QUEUES = PUBLIC_QUEUES + INTERNAL_QUEUES

_OWN_OPTIONS: dict[str, Any] = {"queue": "default", "name": None}


class RelierTask(Task):  # type: ignore[misc]  # Celery ships no type information
    """The Celery task class behind every ``@rl_task`` function."""

    _relier_spec: TaskSpec
    ignore_result = True
    acks_late = False

    async def apush(self, *args: Any, **kwargs: Any) -> TaskReceipt:
        """Dispatch from async code; returns once the task is durably recorded and queued."""
        return await dispatcher().apush(self._relier_spec, args, kwargs)

    def push(self, *args: Any, **kwargs: Any) -> TaskReceipt:
        """Dispatch from sync code (Flask, Django, scripts, sync or async task bodies)."""
        return dispatcher().push(self._relier_spec, args, kwargs)

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Legacy dispatch (plain, unsigned Celery message); prefer ``apush``/``push``.

        Kept working for existing code: when this process has no Relier-configured Celery
        app, the message goes through the ready-made ``relier.tasks.app``.
        """
        options.setdefault("queue", self._relier_spec.options.queue)
        if not self.app.conf.get("relier_installed"):
            from relier.tasks.app import app

            return app.send_task(self.name, args=args, kwargs=kwargs, **options)
        return super().apply_async(args, kwargs, **options)


class RelierTaskHandle(Protocol):
    """What ``@rl_task`` returns, for type checkers."""

    name: str

    async def apush(self, *args: Any, **kwargs: Any) -> TaskReceipt: ...

    def push(self, *args: Any, **kwargs: Any) -> TaskReceipt: ...

    def delay(self, *args: Any, **kwargs: Any) -> Any: ...

    def apply_async(self, *args: Any, **kwargs: Any) -> Any: ...

    def __wrapped__(self, _self: Any, *args: Any, **kwargs: Any) -> Any: ...


@overload
def rl_task(fn: Callable[..., Any], /) -> RelierTaskHandle: ...


@overload
def rl_task(fn: None = None, /, **options: Any
            ) -> Callable[[Callable[..., Any]], RelierTaskHandle]: ...


def rl_task(fn: Callable[..., Any] | None = None, /, **options: Any
            ) -> RelierTaskHandle | Callable[[Callable[..., Any]], RelierTaskHandle]:
    """Declare a Relier task: ``@rl_task()``, ``@rl_task(queue=..., ...)`` or ``@rl_task``.

    Options: ``queue`` (high_priority, default, low_priority), ``name`` (default
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

    def decorate(func: Callable[..., Any]) -> RelierTaskHandle:
        return _decorate(func, {**known, **options}, owners)

    if fn is not None:
        return decorate(fn)
    return decorate


def _decorate(fn: Callable[..., Any], values: dict[str, Any], owners: list[Any]
              ) -> RelierTaskHandle:
    if isinstance(fn, Proxy | Task) or hasattr(fn, "apush") or hasattr(fn, "_relier_spec"):
        name = getattr(fn, "name", getattr(fn, "__name__", fn))
        raise ValueError(
            f"rl_task is applied twice to {name}: decorate the plain function once"
        )
    if not callable(fn):
        raise TypeError(f"rl_task decorates functions, not {type(fn).__name__}")
    name = values["name"] or f"{fn.__module__}.{fn.__qualname__}"
    queue = values["queue"]
    if queue in INTERNAL_QUEUES:
        raise ValueError(
            f"{name}: queue={queue!r} is Relier's internal queue for resurrected tasks; pick "
            f"one of {', '.join(PUBLIC_QUEUES)}"
        )
    if queue not in PUBLIC_QUEUES:
        raise ValueError(f"{name}: unknown queue {queue!r}; pick one of "
                         f"{', '.join(PUBLIC_QUEUES)}")
    values = {**values, "name": name}
    options = TaskOptions(name=name, queue=queue, is_async=inspect.iscoroutinefunction(fn),
                          values=MappingProxyType(values))
    for owner in owners:
        owner.check_options(options, fn)
    spec = TaskSpec(fn=fn, options=options, accepts_ctx=accepts_ctx(fn))

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
    return cast(RelierTaskHandle, task)
