"""``idempotency_lock``: run a block at most once per key you choose.

For calls whose arguments are not a stable identity (a webhook payload whose timestamp changes
between deliveries), key the effect yourself::

    async with idempotency_lock(key=f"webhook:{event_id}", ttl=86400) as lock:
        if lock.already_executed:
            return lock.cached_result
        result = await handle_event(payload)
        lock.set_result(result)

On entry the key is claimed (or found committed, or found held). While the block runs the
claim is renewed every third of ``RELIER_IDEMPOTENCY_INFLIGHT_TTL``, so a long block never
loses it to its TTL; it lapses only if the holder dies. A clean exit commits the staged result
for ``ttl`` seconds; an exception releases the claim so a retry can run. Every step is a
compare-and-set on a random token held by this block (``lock_*.lua``).

Works as ``async with`` in async code and as ``with`` in sync code.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from types import TracebackType
from typing import Any

from relier.core import codec
from relier.core.connection import async_redis_client, redis_client
from relier.core.exceptions import IdempotencyInFlightError, RelierError
from relier.core.keys import Keys
from relier.core.ops import LockReply, Ops
from relier.core.scripts import async_scripts, scripts
from relier.core.settings import Settings, get_settings

__all__ = ["IdempotencyLock", "IdempotencyResult", "idempotency_lock"]

# Named after its module: relier.idempotency is another distribution (relier-idempotency).
log = logging.getLogger(__name__)


class IdempotencyResult:
    """What the block sees: whether it already ran, and its cached result.

    Attributes:
        already_executed: True when an earlier holder committed this key (skip the work).
        cached_result: That holder's result (None otherwise).
    """

    __slots__ = ("_staged", "already_executed", "cached_result", "key")

    def __init__(self, key: str) -> None:
        self.key = key
        self.already_executed = False
        self.cached_result: Any = None
        self._staged: bytes | None = None

    def set_result(self, value: Any) -> None:
        """Stage the result committed when the block exits cleanly (checked for JSON now)."""
        self._staged = codec.encode(value, "idempotency result")


class IdempotencyLock:
    """The context manager behind ``idempotency_lock``."""

    def __init__(self, key: str, ttl: int | None = None,
                 settings: Settings | None = None) -> None:
        if not key:
            raise ValueError("idempotency_lock needs a non-empty key, e.g. f'webhook:{id}'")
        self.settings = settings or get_settings()
        self.key = key
        self.ttl = int(ttl if ttl is not None else self.settings.idempotency_default_ttl)
        if self.ttl <= 0:
            raise ValueError(f"idempotency_lock ttl must be above 0 seconds, got {ttl}")
        self.inflight_ms = self.settings.idempotency_inflight_ttl * 1000
        self.ops = Ops(Keys(self.settings.key_prefix))
        self.token = uuid.uuid4().hex
        self.result = IdempotencyResult(key)
        self._held = False
        self._renewer: asyncio.Task[None] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _entered(self, reply: LockReply) -> IdempotencyResult:
        if reply.kind == "held":
            raise IdempotencyInFlightError(self.key)
        if reply.kind == "committed":
            self.result.already_executed = True
            self.result.cached_result = codec.decode(reply.result) if reply.result else None
        else:
            self._held = True
        return self.result

    def _exit_call(self, failed: bool) -> Any:
        if failed:
            return self.ops.lock_release(key=self.key, token=self.token)
        if self.result._staged is None:
            log.warning("idempotency_lock %r exited without set_result(); committing None so "
                        "the block still runs only once", self.key)
        return self.ops.lock_commit(key=self.key, token=self.token,
                                    result=self.result._staged or codec.encode(None),
                                    ttl_s=self.ttl)

    def _check_exit(self, failed: bool, ok: bool) -> None:
        if not ok and not failed:
            raise RelierError(
                f"idempotency_lock {self.key!r}: the claim was lost before the commit (the "
                "holder was unreachable longer than RELIER_IDEMPOTENCY_INFLIGHT_TTL), so the "
                "result was not recorded and another run may follow"
            )

    # -- async ---------------------------------------------------------------------------------
    async def __aenter__(self) -> IdempotencyResult:
        client = async_scripts(async_redis_client(self.settings))
        reply = await client.run(self.ops.lock_acquire(key=self.key, token=self.token,
                                                       ttl_ms=self.inflight_ms))
        result = self._entered(reply)
        if self._held:
            self._renewer = asyncio.ensure_future(self._arenew())
        return result

    async def _arenew(self) -> None:
        client = async_scripts(async_redis_client(self.settings))
        call = self.ops.lock_renew(key=self.key, token=self.token, ttl_ms=self.inflight_ms)
        while True:
            await asyncio.sleep(self.inflight_ms / 3000)
            try:
                if not await client.run(call):
                    log.error("idempotency_lock %r: claim lost while the block ran", self.key)
                    return
            except Exception as exc:
                log.warning("idempotency_lock %r: renewal failed (%s); retrying", self.key, exc)

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
        if not self._held:
            return
        failed = exc_type is not None
        client = async_scripts(async_redis_client(self.settings))
        self._check_exit(failed, bool(await client.run(self._exit_call(failed))))

    # -- sync ----------------------------------------------------------------------------------
    def __enter__(self) -> IdempotencyResult:
        client = scripts(redis_client(self.settings))
        result = self._entered(client.run(self.ops.lock_acquire(
            key=self.key, token=self.token, ttl_ms=self.inflight_ms)))
        if self._held:
            self._thread = threading.Thread(target=self._renew, daemon=True,
                                            name="relier-idempotency-lock")
            self._thread.start()
        return result

    def _renew(self) -> None:
        client = scripts(redis_client(self.settings))
        call = self.ops.lock_renew(key=self.key, token=self.token, ttl_ms=self.inflight_ms)
        while not self._stop.wait(self.inflight_ms / 3000):
            try:
                if not client.run(call):
                    log.error("idempotency_lock %r: claim lost while the block ran", self.key)
                    return
            except Exception as exc:
                log.warning("idempotency_lock %r: renewal failed (%s); retrying", self.key, exc)

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if not self._held:
            return
        failed = exc_type is not None
        client = scripts(redis_client(self.settings))
        self._check_exit(failed, bool(client.run(self._exit_call(failed))))


def idempotency_lock(key: str, ttl: int | None = None,
                     settings: Settings | None = None) -> IdempotencyLock:
    """Guard a block so it completes at most once per ``key`` within ``ttl`` seconds.

    Args:
        key: Your stable identity of the effect; prefix it by feature (``webhook:{id}``).
        ttl: Seconds a committed result is kept (default ``RELIER_IDEMPOTENCY_DEFAULT_TTL``).
        settings: Settings to use (default: the process's).

    Raises:
        IdempotencyInFlightError: another holder is running the block right now.
    """
    return IdempotencyLock(key, ttl, settings)
