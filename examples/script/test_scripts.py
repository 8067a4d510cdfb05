from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from conftest_shared import start_worker, wait_for_key  # noqa: E402


@pytest.fixture(scope="module")
def worker() -> Iterator[object]:
    yield from start_worker(HERE, "tasks")


@pytest.mark.parametrize("script", ["replay_sync.py", "replay_async.py"])
def test_replay_script_dispatches_every_invoice(worker: object, script: str) -> None:
    client = redis.Redis.from_url(os.environ["RELIER_REDIS_URL"])
    client.delete(*[f"example:charged:INV-10{n}" for n in (1, 2, 3)])
    client.delete("rl:adm:global")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent)])}
    subprocess.run([sys.executable, script], cwd=HERE, env=env, check=True, timeout=60)
    for n in (1, 2, 3):
        assert wait_for_key(f"example:charged:INV-10{n}") == b"1"
