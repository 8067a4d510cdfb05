"""Worker memory and cold start: Relier beside vanilla Celery."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from celery import Celery

from relier.lab.bench import BenchEnv
from relier.lab.procs import WorkerProcess


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _first_task_ms(env: BenchEnv, app: str, queue: str, dispatch: Any, key: str,
                   extra: dict[str, str]) -> tuple[float, float, float]:
    """Dispatch one task, start a worker, time until it ran; then its memory."""
    dispatch()
    worker = WorkerProcess(app, env=env.env(**extra), concurrency=2, queues=[queue])
    env.processes.append(worker)
    t0 = time.monotonic()
    worker.start()
    client = env.client
    while not client.exists(key):
        if time.monotonic() - t0 > 60:
            raise TimeoutError(f"{app}: first task not done after 60s")
        time.sleep(0.005)
    cold = (time.monotonic() - t0) * 1000
    worker.wait_ready()
    time.sleep(1.0)
    main = _rss_mb(worker.pid)
    children = [_rss_mb(p) for p in worker.children()]
    per_process = (main + sum(children)) / (1 + len(children))
    env.reset()
    return cold, per_process, main + sum(children)


def run(env: BenchEnv, rounds: int = 3) -> dict[str, Any]:
    """Cold start (process start to first task done) and RSS per worker process."""
    os.environ["RELIER_REDIS_URL"] = env.url
    from relier.core.settings import reset_settings
    from relier.tasks.dispatch import reset_dispatcher

    reset_settings(None)
    reset_dispatcher(None)
    from relier.lab.bench.tasks import incr

    plain = Celery("vanilla-fill", broker=env.url, set_as_current=False)
    plain.conf.update(task_serializer="json", broker_connection_retry_on_startup=True)
    out: dict[str, Any] = {}
    for label, app, queue, dispatch, key in (
        ("relier", "relier.tasks.app", "default", lambda: incr.push("cold:relier"),
         "cold:relier"),
        ("vanilla", "relier.lab.bench.vanilla", "celery",
         lambda: plain.send_task("vanilla.incr", ("cold:vanilla",)), "cold:vanilla"),
    ):
        samples = [_first_task_ms(env, app, queue, dispatch, key, {}) for _ in range(rounds)]
        samples.sort()
        cold, per_process, total = samples[len(samples) // 2]
        out[label] = {"cold_start_ms": cold, "rss_mb_per_process": per_process,
                      "rss_mb_worker_total": total}
    out["rss_delta_mb_per_process"] = (out["relier"]["rss_mb_per_process"]
                                       - out["vanilla"]["rss_mb_per_process"])
    return out
