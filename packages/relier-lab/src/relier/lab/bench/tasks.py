"""Tasks the benchmark workers run (``RELIER_IMPORTS=relier.lab.bench.tasks``)."""

from __future__ import annotations

import asyncio
import os

import redis

from relier.tasks.context import TaskContext
from relier.tasks.decorator import rl_task

_client: dict[int, redis.Redis] = {}


def _r() -> redis.Redis:
    pid = os.getpid()
    if pid not in _client:
        _client[pid] = redis.Redis.from_url(os.environ["RELIER_REDIS_URL"])
    return _client[pid]


@rl_task(name="bench.noop")
async def noop() -> None:
    """Does nothing (dispatch cost)."""


@rl_task(name="bench.noop_idempotent", idempotent=True)
async def noop_idempotent(n: int) -> None:
    """Does nothing, once per argument (dispatch cost with dedup)."""


@rl_task(name="bench.incr")
def incr(key: str) -> None:
    """One INCR: the same work the vanilla throughput task does."""
    _r().incr(key)


@rl_task(name="bench.sleepy", max_resurrections=100)
async def sleepy(key: str, seconds: float, ctx: TaskContext = None) -> int:  # type: ignore[assignment]
    """Record each start (time, pid); sleep only on the first attempt."""
    _r().rpush(f"bench:starts:{key}", f"{_now_ms()}:{os.getpid()}:{ctx.attempt}")
    if ctx.attempt == 1:
        await asyncio.sleep(seconds)
    return ctx.attempt


def _now_ms() -> int:
    seconds, micros = _r().time()
    return int(seconds) * 1000 + int(micros) // 1000
