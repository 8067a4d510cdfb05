"""Benchmarks of ``rl bench``: every figure measured beside vanilla Celery in the same run.

Each benchmark takes a ``BenchEnv`` (a Redis it may fill and empty: by default a fresh
local ``redis-server`` with AOF and noeviction) and returns a plain dict of figures.
"""

from __future__ import annotations

import os
import platform
import signal
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis

from relier.lab.procs import LocalRedis, ManagedProcess, ResurrectorProcess, WorkerProcess

__all__ = ["BenchEnv", "bench_env", "machine", "percentiles"]


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50, p99, mean and max of ``samples`` (same unit)."""
    ordered = sorted(samples)
    if not ordered:
        return {"p50": 0.0, "p99": 0.0, "mean": 0.0, "max": 0.0, "n": 0}

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]

    return {"p50": statistics.median(ordered), "p99": rank(0.99),
            "mean": statistics.fmean(ordered), "max": ordered[-1], "n": len(ordered)}


def machine() -> dict[str, Any]:
    """Facts about the machine a benchmark ran on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):  # noqa: SIM115
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "os": f"{platform.system()} {platform.release()}",
            "date": time.strftime("%Y-%m-%d")}


@dataclass
class BenchEnv:
    """A Redis to benchmark against, and helpers to start processes on it."""

    url: str
    owned: LocalRedis | None = None
    processes: list[ManagedProcess] = field(default_factory=list)

    @property
    def client(self) -> redis.Redis:
        """A client of the benchmark Redis."""
        return redis.Redis.from_url(self.url)

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for benchmark workers."""
        return {"RELIER_REDIS_URL": self.url, "RELIER_BROKER_URL": "",
                "RELIER_IMPORTS": "relier.lab.bench.tasks", "RELIER_PREFLIGHT": "warn",
                "RELIER_LOG_LEVEL": "WARNING", **extra}

    def worker(self, app: str = "relier.tasks.app", **kwargs: Any) -> WorkerProcess:
        """Start a worker and wait until it is ready."""
        env = self.env(**kwargs.pop("env", {}))
        worker = WorkerProcess(app, env=env, **kwargs)
        self.processes.append(worker)
        worker.start().wait_ready()
        return worker

    def resurrector(self, **env: str) -> ResurrectorProcess:
        """Start a resurrector."""
        proc = ResurrectorProcess(env=self.env(RELIER_LOG_LEVEL="INFO", **env))
        self.processes.append(proc)
        proc.start().wait_ready()
        return proc

    def kill(self, proc: ManagedProcess) -> None:
        """SIGKILL ``proc`` and its whole process group (a worker with its pool), and forget it."""
        proc.kill_group(signal.SIGKILL)
        proc.wait(10)
        self.processes.remove(proc)

    def reset(self) -> None:
        """Stop every process started here and empty the database."""
        for proc in self.processes:
            proc.stop(timeout=5)
        self.processes.clear()
        self.client.flushdb()


@contextmanager
def bench_env(url: str | None = None) -> Iterator[BenchEnv]:
    """A benchmark environment; without ``url``, on a fresh local Redis removed afterwards."""
    owned = None
    if url is None:
        owned = LocalRedis().start()
        url = owned.url
    env = BenchEnv(url, owned)
    try:
        yield env
    finally:
        for proc in env.processes:
            proc.stop(timeout=5)
        if owned is not None:
            owned.cleanup()
