"""Admission check latency: the standalone check, measured one call at a time."""

from __future__ import annotations

import time
from typing import Any

from relier.core.settings import Settings
from relier.lab.bench import BenchEnv, percentiles


def run(env: BenchEnv, n: int = 10_000, warmup: int = 500) -> dict[str, Any]:
    """Time ``n`` admission checks (microseconds) against a limit that never refuses."""
    from relier.admission import Admission

    settings = Settings.load(environ={"RELIER_REDIS_URL": env.url,
                                      "RELIER_ADMISSION_LIMIT": str(10**9)}, env_file=None)
    admission = Admission(settings)
    for _ in range(warmup):
        admission.check()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        admission.check()
        samples.append((time.perf_counter_ns() - t0) / 1000)
    env.client.delete("rl:adm:global")
    return {"unit": "us", "n": n, "check": percentiles(samples)}
