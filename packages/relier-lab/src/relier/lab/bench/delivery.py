"""Delivery under kills: Relier beside vanilla Celery (default and acks_late), same storm."""

from __future__ import annotations

import time
from typing import Any

from celery import Celery

from relier.lab.bench import BenchEnv
from relier.lab.chaos import kill_storm


def _vanilla_storm(env: BenchEnv, *, acks_late: bool, tasks: int, kills: int,
                   interval: float, settle: float) -> dict[str, Any]:
    plain = Celery("vanilla-fill", broker=env.url, set_as_current=False)
    plain.conf.update(task_serializer="json", broker_connection_retry_on_startup=True)
    extra = {"VANILLA_ACKS_LATE": "1"} if acks_late else {}

    def start() -> Any:
        return env.worker("relier.lab.bench.vanilla", concurrency=2, queues=["celery"],
                          env=extra)

    pool = [start(), start()]
    for i in range(tasks):
        plain.send_task("vanilla.record", (f"v{i}",))
    for _ in range(kills):
        time.sleep(interval)
        env.kill(pool.pop(0))
        pool.append(start())
    client = env.client
    last, quiet_since = -1, time.monotonic()
    # Lost messages never come back within the run (kombu restores them after its 1 h
    # visibility timeout): stop once nothing has completed for `settle` seconds.
    while time.monotonic() - quiet_since < settle:
        done = int(client.scard("bench:vanilla:done"))
        if done >= tasks:
            break
        if done != last:
            last, quiet_since = done, time.monotonic()
        time.sleep(0.25)
    done = int(client.scard("bench:vanilla:done"))
    pipe = client.pipeline(transaction=False)
    for i in range(tasks):
        pipe.get(f"bench:vanilla:runs:v{i}")
    twice = sum(1 for n in pipe.execute() if n and int(n) > 1)
    env.reset()
    return {"tasks": tasks, "kills": kills, "delivered": done, "lost": tasks - done,
            "bodies_run_more_than_once": twice}


def run(env: BenchEnv, tasks: int = 500, kills: int = 5, interval: float = 1.2,
        settle: float = 15.0) -> dict[str, Any]:
    """The same kill storm against Relier, vanilla Celery and vanilla with acks_late."""
    relier = kill_storm(env, tasks=tasks, kills=kills, interval=interval)
    relier.pop("states", None)
    env.reset()
    results = {
        "relier": relier,
        "vanilla": _vanilla_storm(env, acks_late=False, tasks=tasks, kills=kills,
                                  interval=interval, settle=settle),
        "vanilla_acks_late": _vanilla_storm(env, acks_late=True, tasks=tasks, kills=kills,
                                            interval=interval, settle=settle),
    }
    for data in results.values():
        data["delivery_rate"] = data["delivered"] / data["tasks"]
    return results
