"""The envelope: what a task message carries, as a msgspec struct with a compact JSON form."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from relier.core.codec import check_json_value

__all__ = ["Envelope", "Headers", "check_arguments"]


class Headers(msgspec.Struct, array_like=True, frozen=True, omit_defaults=True):
    """Facts about a dispatch that are not arguments.

    Attributes:
        enqueued_at: Unix time of the dispatch, in seconds.
        producer: ``host:pid`` of the dispatching process.
        trace: W3C trace context (``traceparent``, ``tracestate``) of the dispatching span, so
            the task's span becomes its child.
        expires_at: Unix time after which the task must not start (0: never). It comes last:
            a worker of an older release decodes a newer envelope and ignores it, and an
            older envelope decodes here with 0.
    """

    enqueued_at: float = 0.0
    producer: str = ""
    trace: dict[str, str] = {}
    expires_at: float = 0.0


class Envelope(msgspec.Struct, array_like=True, frozen=True):
    """One task invocation.

    Encoded as a JSON array (``array_like``): field names are not repeated in every message,
    and any process (or ``redis-cli``) can still read it.

    Attributes:
        task: Registered task name.
        id: Task id, stable across every attempt.
        version: Schema version of this task's arguments (see ``relier.envelope.migrations``).
        args: Positional arguments.
        kwargs: Keyword arguments.
        headers: Dispatch facts.
    """

    task: str
    id: str
    version: int
    args: list[Any]
    kwargs: dict[str, Any]
    headers: Headers = Headers()

    @classmethod
    def new(
        cls,
        task: str,
        task_id: str,
        args: tuple[Any, ...] | list[Any],
        kwargs: dict[str, Any],
        *,
        version: int = 1,
        producer: str = "",
        trace: dict[str, str] | None = None,
        expires_at: float = 0.0,
    ) -> Envelope:
        """Build an envelope stamped with the current time, after checking the arguments."""
        check_arguments(task, args, kwargs)
        return cls(
            task, task_id, version, list(args), dict(kwargs),
            Headers(time.time(), producer, trace or {}, expires_at),
        )


def check_arguments(task: str, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]) -> None:
    """Refuse arguments that would not arrive as the same values, naming the argument.

    Raises:
        TypeError: an argument (or something inside it) is not a JSON value.
    """
    for i, value in enumerate(args):
        check_json_value(value, f"{task}: positional argument {i}")
    for name, value in kwargs.items():
        check_json_value(value, f"{task}: argument {name!r}")
