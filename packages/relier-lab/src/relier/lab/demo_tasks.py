"""The tasks ``rl demo`` runs."""

from __future__ import annotations

import asyncio
import os
import random

import redis

from relier.tasks.context import TaskContext
from relier.tasks.decorator import rl_task

_clients: dict[int, redis.Redis] = {}


def _r() -> redis.Redis:
    pid = os.getpid()
    if pid not in _clients:
        _clients[pid] = redis.Redis.from_url(os.environ["RELIER_REDIS_URL"])
    return _clients[pid]


@rl_task(name="demo.process_order", max_resurrections=5)
async def process_order(order_id: str, ctx: TaskContext = None) -> str:  # type: ignore[assignment]
    """A unit of work that takes a little while."""
    _r().hset("demo:started", order_id, ctx.attempt)
    await asyncio.sleep(random.uniform(0.2, 0.6))
    _r().hincrby("demo:completed_bodies", order_id, 1)
    return order_id


@rl_task(name="demo.charge_customer", idempotent=True, idempotency_ttl=3600)
async def charge_customer(customer: str, amount_cents: int) -> dict[str, object]:
    """A charge that must happen once, however often it is dispatched."""
    await asyncio.sleep(0.05)
    charges = _r().hincrby("demo:charges", f"{customer}:{amount_cents}", 1)
    return {"customer": customer, "amount_cents": amount_cents, "charges": charges}
