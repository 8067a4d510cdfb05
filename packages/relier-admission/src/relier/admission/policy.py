"""Which limits apply to a call: global, per queue, per key (tenant).

Limits are sliding windows: at most ``limit`` admitted calls in *any* window of ``window``
seconds. A fixed window would let twice the limit through around its boundary, and a token
bucket would let a full burst through after an idle spell and then the steady rate on top; a
sliding window holds the stated promise exactly. A refused call consumes nothing in any scope.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from relier.core.keys import Keys
from relier.core.ops import AdmissionScope
from relier.core.settings import Settings, get_settings

__all__ = ["AdmissionPolicy", "admission_key", "current_admission_key"]

_key: ContextVar[str | None] = ContextVar("relier_admission_key", default=None)


@contextlib.contextmanager
def admission_key(key: str) -> Iterator[None]:
    """Count the dispatches inside this block against ``key`` (a tenant, a customer...).

    ``RELIER_ADMISSION_KEY_LIMIT`` then applies per key, on top of the global and queue
    limits::

        with admission_key(f"tenant:{tenant_id}"):
            await send_invoice.apush(invoice_id)
    """
    token = _key.set(key)
    try:
        yield
    finally:
        _key.reset(token)


def current_admission_key() -> str | None:
    """The key set by the innermost ``admission_key`` block, if any."""
    return _key.get()


class AdmissionPolicy:
    """Builds the admission scopes of a call from ``RELIER_ADMISSION_*`` settings."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.keys = Keys(self.settings.key_prefix)
        self.window_ms = int(self.settings.admission_window * 1000)
        self.queue_limits = self.settings.admission_queue_limit_map()

    @property
    def enabled(self) -> bool:
        """False when no limit at all is configured."""
        s = self.settings
        return bool(s.admission_limit or self.queue_limits or s.admission_key_limit)

    def scopes(self, queue: str | None = None, key: str | None = None
               ) -> tuple[AdmissionScope, ...]:
        """The scopes a call must pass, most general first."""
        s, window = self.settings, self.window_ms
        found: list[AdmissionScope] = []
        if s.admission_limit:
            found.append(AdmissionScope(self.keys.admission("global"), s.admission_limit,
                                        window, "global"))
        if queue is not None and queue in self.queue_limits:
            found.append(AdmissionScope(self.keys.admission(f"queue:{queue}"),
                                        self.queue_limits[queue], window, f"queue:{queue}"))
        key = key if key is not None else current_admission_key()
        if key is not None and s.admission_key_limit:
            found.append(AdmissionScope(self.keys.admission(f"key:{key}"),
                                        s.admission_key_limit, window, f"key:{key}"))
        return tuple(found)
