"""Recovery time: from SIGKILL to the task running again, for whole workers and pool children."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from relier.core.codec import text
from relier.lab.bench import BenchEnv, percentiles


def _starts(env: BenchEnv, key: str) -> list[tuple[int, int]]:
    out = []
    for raw in env.client.lrange(f"bench:starts:{key}", 0, -1):
        at, pid, _attempt = text(raw).split(":")
        out.append((int(at), int(pid)))
    return out


def _wait(env: BenchEnv, key: str, count: int, timeout: float) -> list[tuple[int, int]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        starts = _starts(env, key)
        if len(starts) >= count:
            return starts
        time.sleep(0.002)
    raise TimeoutError(f"{key}: fewer than {count} starts after {timeout}s")


def _now_ms(env: BenchEnv) -> int:
    seconds, micros = env.client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def run(env: BenchEnv, trials: int = 10) -> dict[str, Any]:
    """Kill ``trials`` whole workers and ``trials`` pool children mid-task; time the re-runs.

    Times are measured on the Redis clock from just before the SIGKILL to the task's next
    start. Defaults throughout (lease TTL, check interval).
    """
    os.environ["RELIER_REDIS_URL"] = env.url
    from relier.core.settings import reset_settings
    from relier.tasks.dispatch import reset_dispatcher

    reset_settings(None)
    reset_dispatcher(None)
    from relier.lab.bench.tasks import sleepy

    env.resurrector()
    env.worker(queues=["re-queue"], concurrency=1)  # the standby that runs resurrected work
    whole: list[float] = []
    for i in range(trials):
        victim = env.worker(queues=["default"], concurrency=1)
        key = f"whole{i}"
        sleepy.push(key, 60)
        _wait(env, key, 1, 30)
        killed_at = _now_ms(env)
        victim.kill_group(signal.SIGKILL)
        victim.wait(10)
        starts = _wait(env, key, 2, 60)
        whole.append((starts[1][0] - killed_at) / 1000)

    child_worker = env.worker(queues=["default", "re-queue"], concurrency=2)
    child: list[float] = []
    for i in range(trials):
        key = f"child{i}"
        sleepy.push(key, 60)
        (_, pid), = _wait(env, key, 1, 30)
        killed_at = _now_ms(env)
        os.kill(pid, signal.SIGKILL)
        starts = _wait(env, key, 2, 30)
        child.append((starts[1][0] - killed_at) / 1000)
        time.sleep(0.3)  # let the pool replace the child
    del child_worker
    return {"unit": "s", "whole_worker_sigkill": percentiles(whole),
            "pool_child_sigkill": percentiles(child), "trials": trials}
