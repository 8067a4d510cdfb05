"""Per-task schema versions and the migration chain that upgrades old payloads.

A task's current version is one more than its highest registered step (1 with no step).
Producers stamp it on every envelope; workers upgrade older payloads one step at a time::

    from relier.envelope import migrations

    @migrations.step("billing.send_invoice", from_version=1)
    def add_currency(args, kwargs):
        return args, {**kwargs, "currency": "EUR"}

Three distinct failures, each dead-lettered with the original payload kept:
a missing step (``MigrationMissingError``), a step that raises
(``SchemaMigrationError``) and a payload newer than the worker
(``SchemaVersionTooNewError``, a producer deployed before its
workers).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import msgspec

from relier.core.exceptions import (
    MigrationMissingError,
    SchemaMigrationError,
    SchemaVersionTooNewError,
)
from relier.envelope.model import Envelope, check_arguments

__all__ = ["MigrationStep", "Migrations", "migrations"]

MigrationStep = Callable[[list[Any], dict[str, Any]], tuple[list[Any], dict[str, Any]]]


class Migrations:
    """A registry of migration steps, keyed by task name and starting version."""

    def __init__(self) -> None:
        self._steps: dict[str, dict[int, MigrationStep]] = {}
        self._lock = threading.Lock()

    def step(self, task_name: str, from_version: int) -> Callable[[MigrationStep], MigrationStep]:
        """Register ``fn(args, kwargs) -> (args, kwargs)`` upgrading ``from_version`` by one.

        Raises:
            ValueError: the version is below 1, or a step from it is already registered.
        """
        if from_version < 1:
            raise ValueError(f"from_version must be 1 or more, got {from_version}")

        def register(fn: MigrationStep) -> MigrationStep:
            with self._lock:
                steps = self._steps.setdefault(task_name, {})
                if from_version in steps:
                    raise ValueError(
                        f"a migration of {task_name!r} from version {from_version} is already "
                        f"registered ({steps[from_version].__qualname__}); each step is unique"
                    )
                steps[from_version] = fn
            return fn

        return register

    def current_version(self, task_name: str) -> int:
        """The version producers stamp for ``task_name``."""
        steps = self._steps.get(task_name)
        return max(steps) + 1 if steps else 1

    def gaps(self) -> dict[str, list[int]]:
        """Missing steps per task: versions no registered step starts from."""
        found = {}
        for task, steps in self._steps.items():
            missing = [v for v in range(1, max(steps) + 1) if v not in steps]
            if missing:
                found[task] = missing
        return found

    def upgrade(self, envelope: Envelope, raw: bytes = b"") -> Envelope:
        """Bring ``envelope`` to the current version of its task.

        Raises:
            SchemaVersionTooNewError: the payload is newer than this worker's code.
            MigrationMissingError: a step on the way is not registered.
            SchemaMigrationError: a step raised or returned something unusable.
        """
        current = self.current_version(envelope.task)
        if envelope.version > current:
            raise SchemaVersionTooNewError(envelope.task, envelope.version, current, raw)
        args, kwargs, version = envelope.args, envelope.kwargs, envelope.version
        steps = self._steps.get(envelope.task, {})
        while version < current:
            fn = steps.get(version)
            if fn is None:
                raise MigrationMissingError(envelope.task, version, raw)
            try:
                args, kwargs = fn(list(args), dict(kwargs))
                check_arguments(envelope.task, args, kwargs)
            except Exception as exc:
                raise SchemaMigrationError(
                    envelope.task, version, f"{type(exc).__name__}: {exc}", raw
                ) from exc
            version += 1
        if version == envelope.version:
            return envelope
        return msgspec.structs.replace(envelope, version=version, args=list(args),
                                       kwargs=dict(kwargs))


#: The process-wide registry that ``rl_task`` producers and workers use.
migrations = Migrations()
