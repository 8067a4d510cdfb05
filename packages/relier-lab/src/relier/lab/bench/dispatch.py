"""Dispatch cost: ``push``, ``apush`` and vanilla ``.delay()`` in one run, interleaved."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from celery import Celery

from relier.lab.bench import BenchEnv, percentiles

BLOCK = 100


def run(env: BenchEnv, n: int = 2000, warmup: int = 200) -> dict[str, Any]:
    """Time ``n`` dispatches of each kind (microseconds), interleaved in blocks of 100.

    Baselines: vanilla ``.delay()`` on a plain Celery app with no result backend (the
    stricter baseline) and with the Redis result backend (the common setup, whose
    ``.delay()`` also subscribes for the result).
    """
    os.environ["RELIER_REDIS_URL"] = env.url
    os.environ.pop("RELIER_BROKER_URL", None)
    # Admission on (every dispatch checked in the same script) with a limit this run never
    # reaches: its cost is measured, never a refusal.
    os.environ["RELIER_ADMISSION_LIMIT"] = str(10**9)
    from relier.core.settings import reset_settings
    from relier.tasks.dispatch import reset_dispatcher

    reset_settings(None)
    reset_dispatcher(None)
    from relier.lab.bench.tasks import noop, noop_idempotent

    plain = Celery("vanilla-plain", broker=env.url, set_as_current=False)
    plain.conf.update(task_serializer="json", broker_connection_retry_on_startup=True)
    backed = Celery("vanilla-backend", broker=env.url, backend=env.url, set_as_current=False)
    backed.conf.update(task_serializer="json", broker_connection_retry_on_startup=True)
    def vanilla_noop() -> None:
        """A plain Celery task that does nothing."""

    plain_noop = plain.task(name="vanilla.noop", shared=False)(vanilla_noop)
    backed_noop = backed.task(name="vanilla.noop", shared=False)(vanilla_noop)

    samples: dict[str, list[float]] = {"push": [], "apush": [], "push_idempotent": [],
                                       "delay": [], "delay_with_backend": []}
    counter = iter(range(10**9))

    def push_idempotent() -> None:
        noop_idempotent.push(next(counter))  # a new key each time: check + take the key

    def timed(fn: Any, count: int, into: list[float] | None) -> None:
        for _ in range(count):
            t0 = time.perf_counter_ns()
            fn()
            if into is not None:
                into.append((time.perf_counter_ns() - t0) / 1000)

    async def apush_block(count: int, into: list[float] | None) -> None:
        for _ in range(count):
            t0 = time.perf_counter_ns()
            await noop.apush()
            if into is not None:
                into.append((time.perf_counter_ns() - t0) / 1000)

    loop = asyncio.new_event_loop()
    try:
        for phase, count in (("warmup", warmup), ("measure", n)):
            done = 0
            while done < count:
                size = min(BLOCK, count - done)
                keep = phase == "measure"
                timed(noop.push, size, samples["push"] if keep else None)
                timed(push_idempotent, size, samples["push_idempotent"] if keep else None)
                timed(plain_noop.delay, size, samples["delay"] if keep else None)
                loop.run_until_complete(apush_block(size, samples["apush"] if keep else None))
                timed(backed_noop.delay, size, samples["delay_with_backend"] if keep else None)
                done += size
                env.client.delete("default", "celery")  # keep the lists short
    finally:
        loop.close()
        env.client.flushdb()
    stats = {name: percentiles(values) for name, values in samples.items()}
    base = stats["delay"]
    result: dict[str, Any] = {"n": n, "unit": "us", "stats": stats}
    for name in ("push", "apush", "push_idempotent"):
        result[f"{name}_vs_delay_p50"] = stats[name]["p50"] / base["p50"]
        result[f"{name}_vs_delay_p99"] = stats[name]["p99"] / base["p99"]
        result[f"{name}_vs_delay_with_backend_p50"] = (
            stats[name]["p50"] / stats["delay_with_backend"]["p50"])
    return result
