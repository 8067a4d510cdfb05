"""No-op throughput of one worker with Relier against vanilla Celery, in the same run."""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery

from relier.lab.bench import BenchEnv


def _drain(env: BenchEnv, key: str, n: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    t0 = time.monotonic()
    while int(env.client.get(key) or 0) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{key}: only {env.client.get(key)!r} of {n} after {timeout}s")
        time.sleep(0.01)
    return time.monotonic() - t0


def run(env: BenchEnv, n: int = 3000, concurrency: int = 2) -> dict[str, Any]:
    """Fill the queue with ``n`` one-INCR tasks, start one worker, time until all ran.

    The same for Relier (``push``), vanilla Celery and vanilla Celery with ``acks_late``.
    """
    os.environ["RELIER_REDIS_URL"] = env.url
    from relier.core.settings import reset_settings
    from relier.tasks.dispatch import reset_dispatcher

    reset_settings(None)
    reset_dispatcher(None)
    from relier.lab.bench.tasks import incr

    plain = Celery("vanilla-fill", broker=env.url, set_as_current=False)
    plain.conf.update(task_serializer="json", broker_connection_retry_on_startup=True)
    results: dict[str, Any] = {"n": n, "concurrency": concurrency}
    runs: tuple[tuple[str, str, str, str, dict[str, str]], ...] = (
        # label, app the worker runs, queue, counter key, extra worker environment
        ("relier", "relier.tasks.app", "default", "count:relier", {}),
        ("vanilla", "relier.lab.bench.vanilla", "celery", "count:vanilla", {}),
        ("vanilla_acks_late", "relier.lab.bench.vanilla", "celery", "count:late",
         {"VANILLA_ACKS_LATE": "1"}),
    )
    for label, app, queue, key, extra in runs:
        for _ in range(n):
            if label == "relier":
                incr.push(key)
            else:
                plain.send_task("vanilla.incr", (key,))
        env.worker(app, concurrency=concurrency, queues=[queue], env=extra)
        elapsed = _drain(env, key, n, 300)
        results[label] = {"seconds": elapsed, "tasks_per_second": n / elapsed}
        env.reset()
    results["relier_vs_vanilla"] = (results["relier"]["tasks_per_second"]
                                    / results["vanilla"]["tasks_per_second"])
    results["relier_vs_vanilla_acks_late"] = (
        results["relier"]["tasks_per_second"]
        / results["vanilla_acks_late"]["tasks_per_second"])
    return results
