"""The ``idempotent`` and ``idempotency_ttl`` options of ``rl_task``.

The mechanism itself lives in the ledger scripts, so that it costs no extra round trip:
dispatch checks and takes the key in the same call that records the task (a duplicate returns
the first task's receipt, or its cached result, and enqueues nothing); the claim checks that
the key still belongs to the task; the completion commits the result to the key in the same
atomic step that marks the task done; a dead-lettered task releases the key (I5).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from relier.core.keys import Keys
from relier.core.pipeline import Middleware, TaskOptions
from relier.core.settings import Settings, get_settings
from relier.idempotency.keys import idempotency_key

__all__ = ["IdempotencyMiddleware"]


class IdempotencyMiddleware(Middleware):
    """Declares and validates the idempotency options; derives a task's key."""

    name = "idempotency"
    options = MappingProxyType({"idempotent": False, "idempotency_ttl": None})

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings

    @property
    def settings(self) -> Settings:
        """Settings in force (read when first needed, not at import)."""
        return self._settings or get_settings()

    def ttl(self, options: TaskOptions) -> int:
        """Seconds a committed result is cached (the option, else the setting)."""
        value = options.get("idempotency_ttl")
        return self.settings.idempotency_default_ttl if value is None else int(value)

    def check_options(self, options: TaskOptions, fn: Any) -> None:
        """``idempotency_ttl`` must be positive and outlive ``hard_timeout``."""
        ttl = options.get("idempotency_ttl")
        if ttl is None:
            return
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
            raise ValueError(f"{options.name}: idempotency_ttl={ttl!r}; use a whole number of "
                             "seconds above 0")
        hard = options.get("hard_timeout")
        if hard is not None and ttl < hard:
            raise ValueError(
                f"{options.name}: idempotency_ttl ({ttl}s) is shorter than hard_timeout "
                f"({hard}s): the cached result would expire while a run of the same "
                f"arguments may still be going. Raise idempotency_ttl to at least {hard}."
            )

    def key_for(self, options: TaskOptions, arguments: Mapping[str, Any]) -> str:
        """The idempotency key of a call, or '' when the task is not idempotent.

        ``arguments`` is the call bound to the task's signature (see ``idempotency_key``).
        """
        if not options.get("idempotent"):
            return ""
        return idempotency_key(options.name, arguments, Keys(self.settings.key_prefix))
