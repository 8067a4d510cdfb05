"""Chaos scenarios on local processes (no Docker): kill workers, children, Redis; count.

Each scenario dispatches real tasks to real workers, breaks something on purpose, and returns
what the ledger says afterwards: delivered (completed), lost (never completed) and bodies
that ran more than once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from relier.core.keys import Keys
from relier.core.record import STATE
from relier.lab.bench import BenchEnv


def _use(env: BenchEnv) -> None:
    os.environ["RELIER_REDIS_URL"] = env.url
    os.environ.pop("RELIER_BROKER_URL", None)
    # A storm dispatches faster than any sensible admission limit: measure delivery, not
    # refusals.
    os.environ["RELIER_ADMISSION_LIMIT"] = "0"
    from relier.core.settings import reset_settings
    from relier.tasks.dispatch import reset_dispatcher

    reset_settings(None)
    reset_dispatcher(None)


def ledger_counts(env: BenchEnv, ids: list[str]) -> dict[str, int]:
    """How many of ``ids`` are in each ledger state."""
    client = env.client
    counts: dict[str, int] = {}
    for start in range(0, len(ids), 1000):
        pipe = client.pipeline(transaction=False)
        for task_id in ids[start:start + 1000]:
            pipe.hget(Keys().task(task_id), STATE)
        for state in pipe.execute():
            key = state.decode() if state else "missing"
            counts[key] = counts.get(key, 0) + 1
    return counts


def kill_storm(
    env: BenchEnv,
    *,
    tasks: int = 500,
    kills: int = 5,
    interval: float = 1.2,
    workers: int = 2,
    concurrency: int = 2,
    task_seconds: float = 0.05,
    timeout: float = 300.0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """SIGKILL whole workers (main process and pool) while tasks run, replacing each one.

    Returns delivered/lost counts from the ledger, how many bodies ran twice, and how long
    the whole run took.
    """
    _use(env)
    from relier.lab.bench.tasks import sleepy

    say = progress or (lambda _msg: None)
    env.resurrector()
    pool = [env.worker(concurrency=concurrency) for _ in range(workers)]
    t0 = time.monotonic()
    ids = [sleepy.push(f"storm{i}", task_seconds).id for i in range(tasks)]
    say(f"dispatched {tasks} tasks")
    for n in range(kills):
        time.sleep(interval)
        victim = pool.pop(0)
        env.kill(victim)
        pool.append(env.worker(concurrency=concurrency))
        say(f"kill {n + 1}/{kills}: SIGKILLed worker {victim.pid}, started a replacement")
    deadline = time.monotonic() + timeout
    while True:
        counts = ledger_counts(env, ids)
        if counts.get("done", 0) + counts.get("dead", 0) >= tasks:
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.25)
    elapsed = time.monotonic() - t0
    client = env.client
    runs_twice = 0
    for start in range(0, tasks, 1000):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(tasks, start + 1000)):
            pipe.llen(f"bench:starts:storm{i}")
        runs_twice += sum(1 for n in pipe.execute() if n > 1)
    delivered = counts.get("done", 0)
    return {
        "tasks": tasks, "kills": kills, "delivered": delivered,
        "dead_lettered": counts.get("dead", 0), "lost": tasks - delivered - counts.get("dead", 0),
        "bodies_started_more_than_once": runs_twice, "seconds": elapsed, "states": counts,
    }
