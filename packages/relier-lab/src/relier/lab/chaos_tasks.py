"""Tasks ``rl chaos`` dispatches.

Workers import them when ``RELIER_IMPORTS`` names ``relier.lab.chaos_tasks``
(``rl cluster up`` does).
"""

from __future__ import annotations

import asyncio
import os

import redis

from relier.tasks.context import TaskContext
from relier.tasks.decorator import rl_task


@rl_task(name="chaos.long_running", max_resurrections=10)
async def long_running(seconds: float, marker: str,
                       ctx: TaskContext = None) -> dict[str, int]:  # type: ignore[assignment]
    """Record which process runs each attempt, then work for ``seconds``."""
    client = redis.Redis.from_url(os.environ["RELIER_REDIS_URL"])
    try:
        client.rpush(f"rl-chaos:{marker}", f"{ctx.attempt}:{os.getpid()}")
        client.expire(f"rl-chaos:{marker}", 3600)
    except redis.RedisError:
        pass  # only the --watch trail; `rl chaos redis-restart` kills Redis under this line
    await asyncio.sleep(seconds)
    return {"attempt": ctx.attempt, "pid": os.getpid()}


@rl_task(name="chaos.noop")
async def noop() -> None:
    """Does nothing (load spikes, poison pills)."""
