"""The main job on a fresh machine (interim): start a local Redis and run Relier's preflight.

A local ``redis-server`` (AOF on, noeviction) is started under ``.relier/`` unless
``RELIER_REDIS_URL`` is set, the preflight report is printed, and the server is stopped.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis

from relier.core import Settings, run_preflight

ROOT = Path(__file__).resolve().parents[1]


def start_local_redis() -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found: run ./dev setup, or set RELIER_REDIS_URL")
    data = ROOT / ".relier" / "redis"
    data.mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
         "--appendonly", "yes", "--maxmemory-policy", "noeviction", "--maxmemory", "512mb",
         "--save", "", "--logfile", "redis.log"],
        start_new_session=True,
    )
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    return proc, f"redis://127.0.0.1:{port}/0"


def main() -> int:
    proc = None
    url = os.environ.get("RELIER_REDIS_URL")
    if not url:
        proc, url = start_local_redis()
        print(f"started a local Redis for this run at {url} (data in .relier/redis)")
    try:
        settings = Settings.load(environ={**os.environ, "RELIER_REDIS_URL": url})
        report = run_preflight(redis.Redis.from_url(url), settings, write=True)
        print("\n".join(report.lines()))
        return 0 if report.ok else 1
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)


if __name__ == "__main__":
    sys.exit(main())
