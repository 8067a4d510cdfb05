"""Admission on its own: guard any endpoint of any web app, with or without Celery."""

from __future__ import annotations

import logging
import math
import threading
import uuid

import msgspec
import redis

from relier.admission.policy import AdmissionPolicy
from relier.core import events
from relier.core.connection import async_redis_client, redis_client
from relier.core.exceptions import AdmissionRejectedError
from relier.core.ops import AdmissionScope, Ops
from relier.core.scripts import async_scripts, scripts
from relier.core.settings import Settings

__all__ = ["Admission", "Decision", "counters"]

log = logging.getLogger("relier.admission")


class Decision(msgspec.Struct, frozen=True):
    """The outcome of one check.

    Attributes:
        admitted: True when the call may proceed.
        retry_after: Whole seconds until capacity returns (0 when admitted, else at least 1).
        scope: The refusing scope (``global``, ``queue:<q>``, ``key:<k>``), or ''.
        degraded: True when Redis could not be asked and ``RELIER_ADMISSION_FAIL`` decided.
    """

    admitted: bool
    retry_after: int = 0
    scope: str = ""
    degraded: bool = False


class _Counters:
    """Process-local tallies of decisions (exported as metrics by relier-otel)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values: dict[str, int] = {"admitted": 0, "rejected": 0, "fail_open": 0,
                                       "fail_closed": 0}

    def add(self, name: str, scope: str = "") -> None:
        with self._lock:
            self.values[name] += 1
        events.emit("admission.decision", result=name, scope=scope)


counters = _Counters()


class Admission:
    """Cluster-wide admission checks against the limits of ``RELIER_ADMISSION_*``.

    ``check``/``acheck`` return a ``Decision``; ``admit``/``aadmit`` raise
    ``AdmissionRejectedError`` (with ``retry_after``) instead.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.policy = AdmissionPolicy(settings)
        self.settings = self.policy.settings
        self.ops = Ops(self.policy.keys)

    def _decide(self, reply: tuple[int, int], scopes: tuple[AdmissionScope, ...]) -> Decision:
        wait_ms, position = reply
        if not wait_ms:
            counters.add("admitted")
            return Decision(True)
        counters.add("rejected", scopes[position - 1].name)
        return Decision(False, max(1, math.ceil(wait_ms / 1000)), scopes[position - 1].name)

    def _degraded(self, exc: Exception) -> Decision:
        if self.settings.admission_fail == "closed":
            counters.add("fail_closed")
            log.warning("admission check failed (%s); refusing (RELIER_ADMISSION_FAIL=closed)",
                        exc)
            return Decision(False, 1, "unavailable", degraded=True)
        counters.add("fail_open")
        log.warning("admission check failed (%s); admitting (RELIER_ADMISSION_FAIL=open)", exc)
        return Decision(True, degraded=True)

    def check(self, *, key: str | None = None, queue: str | None = None) -> Decision:
        """Ask for one unit of capacity (sync)."""
        scopes = self.policy.scopes(queue, key)
        if not scopes:
            return Decision(True)
        call = self.ops.admit(member=uuid.uuid4().hex, scopes=scopes)
        try:
            return self._decide(scripts(redis_client(self.settings)).run(call), scopes)
        except redis.RedisError as exc:
            return self._degraded(exc)

    async def acheck(self, *, key: str | None = None, queue: str | None = None) -> Decision:
        """Ask for one unit of capacity (asyncio)."""
        scopes = self.policy.scopes(queue, key)
        if not scopes:
            return Decision(True)
        call = self.ops.admit(member=uuid.uuid4().hex, scopes=scopes)
        try:
            client = async_scripts(async_redis_client(self.settings))
            return self._decide(await client.run(call), scopes)
        except redis.RedisError as exc:
            return self._degraded(exc)

    @staticmethod
    def _raise(decision: Decision) -> None:
        if not decision.admitted:
            raise AdmissionRejectedError(
                f"admission refused: the {decision.scope} limit is reached; retry in "
                f"{decision.retry_after}s", decision.retry_after, decision.scope,
            )

    def admit(self, *, key: str | None = None, queue: str | None = None) -> None:
        """Like ``check``, raising AdmissionRejectedError when refused."""
        self._raise(self.check(key=key, queue=queue))

    async def aadmit(self, *, key: str | None = None, queue: str | None = None) -> None:
        """Like ``acheck``, raising AdmissionRejectedError when refused."""
        self._raise(await self.acheck(key=key, queue=queue))
