"""``rl cluster up | down | status``."""

from __future__ import annotations

import os
import time

import typer

from relier.cli._common import console, fail, print_json, table
from relier.core.settings import mask_url

app = typer.Typer(no_args_is_help=True,
                  help="A local development stack: Redis, workers, resurrector.")

IMPORTS = "relier.lab.chaos_tasks,relier.lab.demo_tasks"


@app.command("up")
def up(
    workers: int = typer.Option(2, "--workers", help="Workers for the user queues."),
    concurrency: int = typer.Option(2, "--concurrency", help="Pool size of each worker."),
    compose: bool = typer.Option(False, "--compose",
                                 help="Use docker compose (needs a Docker engine)."),
) -> None:
    """Start Redis (when none answers), workers for every queue and a resurrector."""
    from relier.lab import cluster

    if compose:
        raise typer.Exit(cluster.compose("up", "-d"))
    imports = ",".join(filter(None, [os.environ.get("RELIER_IMPORTS", ""), IMPORTS]))
    try:
        state = cluster.cluster_up(workers=workers, concurrency=concurrency, imports=imports,
                                   progress=lambda msg: console.print(f"  {msg}"))
    except (RuntimeError, FileNotFoundError, TimeoutError) as exc:
        fail(str(exc))
    console.print(f"[green]cluster up[/green]: {len(state.members)} processes on "
                  f"{mask_url(state.redis_url)}. `rl doctor`, `rl cluster status`, "
                  "`rl cluster down`.")


@app.command("down")
def down(
    compose: bool = typer.Option(False, "--compose", help="Use docker compose."),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds workers get to drain."),
) -> None:
    """Stop the local stack (workers drain first)."""
    from relier.lab import cluster

    if compose:
        raise typer.Exit(cluster.compose("down"))
    stopped = cluster.cluster_down(timeout, progress=lambda msg: console.print(f"  {msg}"))
    console.print(f"stopped {stopped} process(es)" if stopped else "no local cluster here")


@app.command("status")
def status(
    follow: bool = typer.Option(False, "--follow", "-f", help="Refresh every second."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    compose: bool = typer.Option(False, "--compose", help="Use docker compose."),
) -> None:
    """The local stack's processes, and the cluster's health."""
    from relier.lab import cluster

    if compose:
        raise typer.Exit(cluster.compose("ps"))
    state = cluster.load_state()
    if state is None:
        if as_json:
            print_json({"running": False})
            return
        fail("no local cluster here (`rl cluster up` starts one)", 1)
    rows = cluster.describe(state)
    if as_json:
        print_json({"running": True, "redis_url": mask_url(state.redis_url), "processes": rows})
        return
    while True:
        table(f"Local cluster ({mask_url(state.redis_url)})", ["role", "pid", "alive", "detail"],
              [(r["role"], r["pid"], "yes" if r["alive"] else "[red]no[/red]", r["detail"])
               for r in rows])
        if not follow:
            return
        try:
            time.sleep(1)
        except KeyboardInterrupt:
            return
        console.clear()
        rows = cluster.describe(state)
