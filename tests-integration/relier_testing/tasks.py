"""Tasks that real test workers import (``RELIER_IMPORTS=relier_testing.tasks``).

Every task records what it did in Redis under ``test:*`` keys, so a test can count runs and
completions across processes that it kills.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import redis

from relier import TaskContext, rl_task, task_context

_clients: dict[int, redis.Redis] = {}


def r() -> redis.Redis:
    pid = os.getpid()
    if pid not in _clients:
        _clients[pid] = redis.Redis.from_url(os.environ["RELIER_REDIS_URL"])
    return _clients[pid]


def mark(kind: str, key: str) -> int:
    """Count an event (``test:<kind>:<key>``) and log it in order (``test:log``).

    Retries while Redis is down, so that a Redis restart test measures Relier, not the test
    task's own dependency on Redis.
    """
    deadline = time.monotonic() + 60
    while True:
        try:
            pipe = r().pipeline()
            pipe.rpush("test:log", f"{kind}:{key}:{os.getpid()}")
            pipe.incr(f"test:{kind}:{key}")
            return int(pipe.execute()[1])
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@rl_task()
async def add(a: int, b: int, ctx: TaskContext = None) -> dict[str, Any]:  # type: ignore[assignment]
    return {"sum": a + b, "task_id": ctx.task_id, "attempt": ctx.attempt,
            "worker": ctx.worker_id, "args": list(ctx.args), "pid": os.getpid()}


@rl_task()
def multiply(a: int, b: int) -> int:
    return a * b


@rl_task()
async def via_proxy(item: str) -> dict[str, Any]:
    return {"task_id": task_context.task_id, "name": task_context.task_name, "item": item}


@rl_task(queue="high_priority")
async def record(key: str, seconds: float = 0.0) -> str:
    """Count a start, sleep, count a completion."""
    mark("start", key)
    if seconds:
        await asyncio.sleep(seconds)
    mark("done", key)
    return key


@rl_task()
async def nap(seconds: float) -> float:
    """Sleep without touching Redis (for tests where Redis refuses writes)."""
    await asyncio.sleep(seconds)
    return seconds


@rl_task()
def record_sync(key: str, seconds: float = 0.0) -> str:
    mark("start", key)
    time.sleep(seconds)
    mark("done", key)
    return key


@rl_task()
def busy_cpu(key: str, seconds: float) -> str:
    """Hold the GIL in a pure-Python loop (a lease must survive it)."""
    mark("start", key)
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    mark("done", key)
    return key


@rl_task()
async def fan_out(keys: list[str]) -> int:
    for key in keys:
        record.push(key)  # sync convenience inside an async task
    return len(keys)


@rl_task()
def fan_out_sync(keys: list[str]) -> int:
    for key in keys:
        record.push(key)
    return len(keys)


@rl_task()
async def fan_out_async(keys: list[str]) -> int:
    for key in keys:
        await record.apush(key)
    return len(keys)


@rl_task(max_resurrections=2)
async def poison(key: str) -> None:
    """Kills the process running it, every time."""
    mark("start", key)
    os.kill(os.getpid(), signal.SIGKILL)


@rl_task(max_resurrections=3)
async def die_once(key: str) -> str:
    """Kills its own process on the first attempt only."""
    if mark("start", key) == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    mark("done", key)
    return "survived"


@rl_task()
async def fail(message: str) -> None:
    raise ValueError(message)


async def save_progress(ctx: TaskContext) -> None:
    last = ctx.metadata.get("cursor")
    mark("soft", ctx.task_id)
    if last is not None:
        await ctx.set_partial({"last_cursor": last})


@rl_task(soft_timeout=0.5, hard_timeout=1.5, on_soft_timeout=save_progress)
async def slow_with_hook(steps: int) -> int:
    for i in range(steps):
        task_context.metadata["cursor"] = i
        await asyncio.sleep(0.1)
    return steps


async def long_hook(ctx: TaskContext) -> None:
    mark("hook-start", ctx.task_id)
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        mark("hook-cancelled", ctx.task_id)
        raise


@rl_task(soft_timeout=0.3, hard_timeout=0.8, on_soft_timeout=long_hook)
async def hook_outlives_hard(key: str) -> None:
    await asyncio.sleep(10)


@rl_task(hard_timeout=0.5)
async def swallows_cancel(key: str) -> None:
    mark("start", key)
    for _ in range(30):
        try:
            await asyncio.sleep(0.1)
        except asyncio.CancelledError:
            mark("swallowed", key)


@rl_task(hard_timeout=30)
async def checkpointed(total: int, key: str, ctx: TaskContext = None,  # type: ignore[assignment]
                       pause: float = 0.05) -> dict[str, Any]:
    """Pattern 3a: checkpoint after every item; records where each attempt resumed."""
    start = (ctx.partial_result or {}).get("next", 0)
    r().rpush(f"test:resumed:{key}", start)
    for i in range(start, total):
        await asyncio.sleep(pause)
        mark("item", f"{key}:{i}")
        await ctx.set_partial({"next": i + 1})
    mark("done", key)
    return {"processed_from": start}


@rl_task()
async def big_checkpoint(size: int, ctx: TaskContext = None) -> str:  # type: ignore[assignment]
    await ctx.set_partial({"blob": "x" * size})
    return "stored"


@rl_task(idempotent=True, idempotency_ttl=600)
async def charge(customer: str, cents: int, seconds: float = 0.0) -> dict[str, Any]:
    if seconds:
        await asyncio.sleep(seconds)
    n = mark("charge", f"{customer}:{cents}")
    return {"charged": cents, "charge_number": n}


@rl_task(idempotent=True, idempotency_ttl=600, max_resurrections=3)
async def charge_and_die_once(customer: str) -> dict[str, Any]:
    if mark("start", customer) == 1:
        await asyncio.sleep(0.2)
        os.kill(os.getpid(), signal.SIGKILL)
    mark("done", customer)
    return {"customer": customer}


@rl_task()
async def returns_object() -> object:
    mark("done", "object")
    return object()


@rl_task()
async def noop() -> None:
    return None


@rl_task()
def noop_sync() -> None:
    return None


# -- migrations (worker side): `versioned` is at version 3 with no step from 1 (a gap);
# -- `migrating` is at version 2 and its step fails for one argument.
from relier.envelope import migrations  # noqa: E402


@migrations.step("relier_testing.tasks.versioned", from_version=2)
def _versioned_2_to_3(args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    return args, kwargs


@migrations.step("relier_testing.tasks.migrating", from_version=1)
def _migrating_1_to_2(args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    if args[0] == "explode":
        raise KeyError("amount")
    return [f"{args[0]}/v2"], kwargs


@rl_task()
async def versioned(value: str) -> str:
    return value


@rl_task()
async def migrating(value: str) -> str:
    return value


@rl_task()
async def flaky(key: str) -> str:
    """Fails while ``test:broken:<key>`` is set; succeeds once it is deleted."""
    mark("start", key)
    if r().get(f"test:broken:{key}"):
        raise RuntimeError(f"{key} is broken")
    mark("done", key)
    return f"{key} ok"


# -- The cookbook's checkpoint patterns, as written (fetch and handle stand for the user's
# -- data source and per-item work).
class Item:
    def __init__(self, id: str) -> None:
        self.id = id


async def fetch(cursor: str):  # type: ignore[no-untyped-def]
    for n in range(int(cursor), 40):
        yield Item(str(n + 1))


async def handle(item: Item) -> None:
    await asyncio.sleep(0.05)
    mark("handled", item.id)


@rl_task(hard_timeout=60)
async def reprocess_items_3a(start_cursor: str = "0", ctx: TaskContext = None) -> dict:  # type: ignore[type-arg,assignment]
    cursor = (ctx.partial_result or {}).get("last_cursor", start_cursor)
    count = 0
    async for item in fetch(cursor):
        await handle(item)
        # Persist progress after each item.
        await ctx.set_partial({"last_cursor": item.id})
        count += 1
    return {"processed": count}


async def save_progress_3b(ctx: TaskContext) -> None:
    # ctx.metadata holds whatever the task body wrote into it.
    last = ctx.metadata.get("cursor")
    if last is not None:
        await ctx.set_partial({"last_cursor": last})


@rl_task(soft_timeout=0.5, hard_timeout=1.0, on_soft_timeout=save_progress_3b)
async def reprocess_items_3b(start_cursor: str = "0", ctx: TaskContext = None) -> dict:  # type: ignore[type-arg,assignment]
    cursor = (ctx.partial_result or {}).get("last_cursor", start_cursor)
    count = 0
    async for item in fetch(cursor):
        await handle(item)
        ctx.metadata["cursor"] = item.id  # in-memory only
        count += 1
    return {"processed": count}


@rl_task(soft_timeout=55, hard_timeout=60, on_soft_timeout=save_progress_3b)
async def reprocess_items_3c(start_cursor: str = "0", ctx: TaskContext = None) -> dict:  # type: ignore[type-arg,assignment]
    cursor = (ctx.partial_result or {}).get("last_cursor", start_cursor)
    count = 0
    async for item in fetch(cursor):
        await handle(item)
        ctx.metadata["cursor"] = item.id
        count += 1
        # Durable checkpoint every 10 items.
        if count % 10 == 0:
            await ctx.set_partial({"last_cursor": item.id})
    return {"processed": count}


@rl_task(idempotent=True, idempotency_ttl=600)
async def charge_flaky(customer: str) -> str:
    mark("start", f"flaky:{customer}")
    if r().get(f"test:broken:{customer}"):
        raise RuntimeError("card processor down")
    mark("done", f"flaky:{customer}")
    return f"charged {customer}"


# -- Cookbook pattern 2: the webhook payload changes between deliveries; the key does not.
from relier.core.idempotency import idempotency_lock  # noqa: E402


async def handle_event(payload: dict[str, Any]) -> dict[str, Any]:
    n = mark("webhook", str(payload["event"]))
    return {"handled": payload["event"], "runs": n}


@rl_task()
async def process_webhook(event_id: str, payload: dict) -> dict:  # type: ignore[type-arg]
    # event_id is the stable identifier; payload may differ across deliveries.
    async with idempotency_lock(key=f"webhook:{event_id}", ttl=86400) as lock:
        if lock.already_executed:
            return lock.cached_result  # type: ignore[no-any-return]
        result = await handle_event(payload)
        lock.set_result(result)  # sync, committed automatically on exit
        return result
