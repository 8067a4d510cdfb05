"""Shared fixture code for the example tests (each example runs in its own process)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from relier.lab.procs import WorkerProcess


def start_worker(example_dir: Path, imports: str) -> Iterator[WorkerProcess]:
    """A real worker for an example, importing its task module."""
    env = {
        "RELIER_REDIS_URL": os.environ["RELIER_REDIS_URL"],
        "RELIER_IMPORTS": imports,
        "PYTHONPATH": os.pathsep.join([str(example_dir), str(example_dir.parent)]),
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", ""),
    }
    worker = WorkerProcess("relier.tasks.app", env=env, concurrency=2, cwd=example_dir)
    worker.start().wait_ready()
    try:
        yield worker
    finally:
        worker.stop(timeout=5)


def wait_for_key(key: str, timeout: float = 20.0) -> bytes:
    """Wait until the example's fake side effect (a Redis key) exists."""
    client = redis.Redis.from_url(os.environ["RELIER_REDIS_URL"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = client.get(key)
        if value is not None:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{key} never appeared: the task did not run")
