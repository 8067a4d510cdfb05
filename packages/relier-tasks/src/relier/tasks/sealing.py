"""What dispatch and legacy adoption both make of a call: its idempotency key and its envelope.

``push``/``apush`` (``Dispatcher.prepare``) and the adoption of a plain Celery message by the
worker (``Runtime._adopt``) record the same two things for a call; both come from here, so a
task's key and envelope cannot differ by the way it arrived.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from relier.core.settings import Settings
from relier.envelope import Envelope, Keyring, migrations, seal
from relier.idempotency import IdempotencyMiddleware

if TYPE_CHECKING:
    from relier.tasks.runtime import TaskSpec

__all__ = ["CallSealer"]


class CallSealer:
    """The idempotency key and the sealed envelope of a call, under one process's settings."""

    def __init__(self, settings: Settings) -> None:
        self.keyring = Keyring.from_settings(settings)
        self.idempotency = IdempotencyMiddleware(settings)

    def key(self, spec: TaskSpec, args: Sequence[Any], kwargs: Mapping[str, Any], *,
            strict: bool = True) -> tuple[str, int]:
        """``(idempotency key, its TTL)``, or ``("", 0)`` for a task that is not idempotent.

        The key is hashed over the call bound to the signature, never over how the caller
        spelled it (see ``relier.tasks.calls``).

        Args:
            spec: The task.
            args: Positional arguments.
            kwargs: Keyword arguments (without ``ctx``).
            strict: Dispatch: every call is bound (the check that it can run at all), and a
                call the function cannot take raises. Adoption (``strict=False``): such a
                call gets no key, since the body raises the same TypeError and the task is
                dead-lettered with it, instead of being dropped here.

        Raises:
            TypeError: (strict) the task cannot take these arguments; nothing is written.
            IdempotencyKeyError: an idempotent task's argument has no canonical form.
        """
        if not strict and not spec.options.get("idempotent"):
            return "", 0
        try:
            arguments = spec.binder.bind(args, kwargs)
        except TypeError:
            if strict:
                raise
            return "", 0
        key = self.idempotency.key_for(spec.options, arguments)
        return key, self.idempotency.ttl(spec.options) if key else 0

    def seal(self, spec: TaskSpec, task_id: str, args: Sequence[Any],
             kwargs: dict[str, Any], *, producer: str,
             trace: dict[str, str] | None = None, expires_at: float = 0.0) -> bytes:
        """The call's envelope at the task's current version, sealed with this keyring.

        Raises:
            TypeError: an argument is not a JSON value (the message names it).
        """
        envelope = Envelope.new(spec.name, task_id, list(args), kwargs,
                                version=migrations.current_version(spec.name),
                                producer=producer, trace=trace, expires_at=expires_at)
        return seal(envelope, self.keyring)
