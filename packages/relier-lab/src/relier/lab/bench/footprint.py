"""Redis cost of a task: bytes and keys per in-flight task, round trips per lifecycle."""

from __future__ import annotations

import os
import time
from typing import Any

from relier.lab.bench import BenchEnv


def _relier_bytes(env: BenchEnv) -> tuple[int, int]:
    """Total MEMORY USAGE and count of Relier's keys (a SCAN: fine in a benchmark)."""
    client = env.client
    total = count = 0
    for key in client.scan_iter(match="rl:*", count=1000):
        total += int(client.memory_usage(key, samples=0) or 0)
        count += 1
    return total, count


def _commands(env: BenchEnv) -> dict[str, int]:
    stats = env.client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def run(env: BenchEnv, in_flight: int = 200, lifecycle_tasks: int = 500) -> dict[str, Any]:
    """Measure Relier's keys with ``in_flight`` tasks running, then commands per task.

    Bytes are the growth of ``MEMORY USAGE`` summed over Relier's keys (``rl:*``) while the
    tasks run, divided by their number: the record, the envelope and index entries, without
    Redis's client buffers (which depend on connection counts, not on tasks).
    """
    os.environ["RELIER_REDIS_URL"] = env.url
    from relier.core.settings import reset_settings
    from relier.tasks.dispatch import reset_dispatcher

    reset_settings(None)
    reset_dispatcher(None)
    from relier.lab.bench.tasks import noop, sleepy

    client = env.client
    env.worker(pool="threads", concurrency=in_flight, queues=["default"])
    time.sleep(1)
    before_bytes, before_keys = _relier_bytes(env)
    receipts = [sleepy.push(f"fp{i}", 30) for i in range(in_flight)]
    deadline = time.monotonic() + 60
    while sum(r.status == "STARTED" for r in receipts) < in_flight:
        if time.monotonic() > deadline:
            raise TimeoutError("tasks did not all start")
        time.sleep(0.1)
    after_bytes, after_keys = _relier_bytes(env)
    sample = receipts[0].id
    record_bytes = int(client.memory_usage(f"rl:t:{{{sample}}}") or 0)
    envelope_bytes = len(client.get(f"rl:e:{{{sample}}}") or b"")
    env.reset()

    # Round trips: commands per task over a batch, minus the idle rate of the same setup.
    env.worker(concurrency=2, queues=["default"])
    time.sleep(1)
    client.config_resetstat()
    time.sleep(3)
    idle = _commands(env)
    idle_rate = {k: v / 3 for k, v in idle.items()}
    client.config_resetstat()
    t0 = time.monotonic()
    batch = [noop.push() for _ in range(lifecycle_tasks)]
    batch[-1].get(timeout=120)
    for receipt in batch:
        receipt.get(timeout=60)
    elapsed = time.monotonic() - t0
    busy = _commands(env)
    per_task = {k: (v - idle_rate.get(k, 0) * elapsed) / lifecycle_tasks
                for k, v in busy.items()}
    per_task = {k: round(v, 2) for k, v in per_task.items() if v > 0.05}
    # Client round trips: Relier's scripts, kombu's BRPOP and its MULTI/EXEC pipelines. The
    # other commands ran inside those (script bodies, pipelines); HMGET is the receipts'
    # polling, which belongs to the benchmark, not to the lifecycle.
    per_task.pop("hmget", None)
    round_trips = {"relier": per_task.get("evalsha", 0.0),
                   "kombu": per_task.get("brpop", 0.0) + per_task.get("multi", 0.0)}
    env.reset()
    return {
        "in_flight": in_flight,
        "bytes_per_in_flight_task": (after_bytes - before_bytes) / in_flight,
        "keys_per_in_flight_task": (after_keys - before_keys) / in_flight,
        "record_bytes": record_bytes,
        "envelope_bytes": envelope_bytes,
        "overhead_bytes_beyond_payload": (after_bytes - before_bytes) / in_flight
        - envelope_bytes,
        "round_trips_per_task": round_trips,
        "redis_commands_per_task": per_task,
    }
