"""``rl bench``: measure Relier beside vanilla Celery in the same run."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import typer

from relier.cli._common import console, fail, print_json

SUITES = ("dispatch", "admission", "recovery", "throughput", "footprint", "delivery",
          "startup", "envelope")
QUICK = ("dispatch", "admission", "recovery", "throughput")


def bench(
    which: str = typer.Argument("all", help=f"One of: all, {', '.join(SUITES)}."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
    markdown: Path | None = typer.Option(None, "--markdown",
                                  help="Also write the benchmarks page to this file."),
    redis_url: str | None = typer.Option(None, "--redis",
                                  help="Benchmark against this Redis (it is FLUSHED); by "
                                       "default a fresh local redis-server is started."),
) -> None:
    """Benchmarks beside vanilla Celery, measured in the same run.

    Dispatch, admission, recovery, throughput, footprint (bytes, keys, round trips),
    delivery under kills, worker memory, cold start, and the envelope's seal/open cost.
    """
    names = SUITES if which == "all" else (which,)
    if any(n not in SUITES for n in names):
        fail(f"unknown benchmark {which!r}; choose all or one of {', '.join(SUITES)}")
    import redis

    from relier.lab.bench import bench_env, machine

    results: dict[str, Any] = {}
    try:
        with bench_env(redis_url) as env:
            info = env.client.info("server")
            host = machine()
            host["redis"] = f"Redis {info.get('redis_version')}"
            for name in names:
                if not as_json:
                    console.print(f"[bold]running {name}...[/bold]")
                module = importlib.import_module(f"relier.lab.bench.{name}")
                results[name] = module.run(env)
                env.reset()
                if not as_json:
                    console.print_json(json.dumps(results[name], default=str))
    except (redis.RedisError, FileNotFoundError) as exc:
        fail(str(exc))
    if markdown is not None:
        from relier.lab.bench.report import markdown as render

        command = "rl bench " + which + f" --markdown {markdown}"
        markdown.write_text(render(results, host, command), encoding="utf-8")
        if not as_json:
            console.print(f"wrote {markdown}")
    if as_json:
        print_json({"machine": host, "results": results})
    sys.stdout.flush()
