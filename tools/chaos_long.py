"""The long crash variant: 10,000 tasks, 20 whole-worker SIGKILLs, replacements started.

Usage: ``uv run python tools/chaos_long.py [--tasks N] [--kills K] [--redis URL]``

Prints delivered / lost / dead-lettered counts from the ledger; exits 1 if anything was lost.
Without ``--redis`` a fresh local redis-server is started and removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import sys

from relier.lab.bench import bench_env
from relier.lab.chaos import kill_storm


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--redis", default=None)
    args = parser.parse_args()
    with bench_env(args.redis) as env:
        result = kill_storm(env, tasks=args.tasks, kills=args.kills, interval=args.interval,
                            workers=2, concurrency=2, task_seconds=0.02, timeout=1800,
                            progress=lambda msg: print(msg, flush=True))
    print(json.dumps(result, indent=2))
    return 1 if result["lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
