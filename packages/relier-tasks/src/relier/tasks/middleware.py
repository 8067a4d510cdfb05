"""The runtime's own middleware, and the chain every delivery goes through.

Chain order: Phoenix (claim / commit / dead-letter), the envelope (verify, migrate), then the
options-only middleware (idempotency; timeouts are enforced around the body itself).
Telemetry is added in front when enabled.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from relier.core.exceptions import PayloadIntegrityError, TaskExpiredError
from relier.core.pipeline import Job, Middleware, TaskOptions
from relier.core.settings import Settings, get_settings
from relier.envelope import Keyring, migrations, open_envelope
from relier.idempotency import IdempotencyMiddleware
from relier.phoenix import Ledger, PhoenixMiddleware

__all__ = ["EnvelopeMiddleware", "TimeoutMiddleware", "build_chain", "option_owners"]


class EnvelopeMiddleware(Middleware):
    """Open the run's sealed envelope: verify the signature, then migrate old payloads.

    A failure raises (``PayloadIntegrityError``, ``SchemaMigrationError``,
    ``SchemaVersionTooNewError``, ``TaskExpiredError`` past the sealed expiry) before the body
    runs; Phoenix then dead-letters the task
    with the original bytes, which stay in its record.
    """

    name = "envelope"

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def before_run(self, job: Job) -> None:
        """Verify and migrate; fill ``job.args``, ``job.kwargs`` and ``job.trace``."""
        envelope = open_envelope(job.sealed, self.keyring)
        if envelope.id != job.task_id or envelope.task != job.options.name:
            raise PayloadIntegrityError(
                f"envelope of {envelope.task}[{envelope.id}] delivered as "
                f"{job.options.name}[{job.task_id}]", job.sealed,
            )
        if envelope.headers.expires_at and time.time() > envelope.headers.expires_at:
            raise TaskExpiredError(job.options.name, envelope.headers.expires_at, job.attempt)
        envelope = migrations.upgrade(envelope, job.sealed)
        job.args, job.kwargs, job.trace = envelope.args, envelope.kwargs, envelope.headers.trace


class TimeoutMiddleware(Middleware):
    """Owns and checks ``soft_timeout``, ``hard_timeout`` and ``on_soft_timeout``.

    The runtime enforces them around the body (they need the body's coroutine).
    """

    name = "timeouts"
    options = MappingProxyType({"soft_timeout": None, "hard_timeout": None,
                                "on_soft_timeout": None})

    def check_options(self, options: TaskOptions, fn: Callable[..., Any]) -> None:
        """Timeouts need an async body; soft below hard; the hook async and with a soft."""
        soft, hard = options.get("soft_timeout"), options.get("hard_timeout")
        hook = options.get("on_soft_timeout")
        set_ = [n for n, v in (("soft_timeout", soft), ("hard_timeout", hard),
                               ("on_soft_timeout", hook)) if v is not None]
        if set_ and not options.is_async:
            raise ValueError(
                f"{options.name}: {', '.join(set_)} need an `async def` task: timeouts cancel "
                "a coroutine, and a plain function cannot be cancelled. Make it async and run "
                "blocking calls with `await asyncio.to_thread(...)`."
            )
        for label, value in (("soft_timeout", soft), ("hard_timeout", hard)):
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, int | float) or value <= 0):
                raise ValueError(f"{options.name}: {label}={value!r}; use seconds above 0")
        if soft is not None and hard is not None and soft >= hard:
            raise ValueError(
                f"{options.name}: soft_timeout ({soft}s) must be below hard_timeout ({hard}s); "
                "the soft hook runs in the time between the two."
            )
        if hook is not None:
            if soft is None:
                raise ValueError(f"{options.name}: on_soft_timeout needs soft_timeout (when "
                                 "should it run?)")
            if not inspect.iscoroutinefunction(hook):
                raise ValueError(f"{options.name}: on_soft_timeout must be an `async def "
                                 "hook(ctx)`; it runs on the task's event loop")


def option_owners() -> list[Middleware]:
    """One instance of every middleware that declares ``rl_task`` options (no I/O)."""
    return [PhoenixMiddleware(), IdempotencyMiddleware(), TimeoutMiddleware()]


def build_chain(settings: Settings | None = None) -> list[Middleware]:
    """The worker chain for this process."""
    settings = settings or get_settings()
    ledger = Ledger(settings)
    chain: list[Middleware] = []
    if settings.otel_enabled:
        from relier.otel import TracingMiddleware

        chain.append(TracingMiddleware())
    chain += [
        PhoenixMiddleware(ledger),
        EnvelopeMiddleware(Keyring.from_settings(settings)),
        IdempotencyMiddleware(settings),
    ]
    return chain
