"""``rl worker``: worker processes, their leases, and a remote drain."""

from __future__ import annotations

import math
import sys
import time

import typer

from relier.cli._common import (
    JSON_OPTION,
    ago,
    console,
    escape,
    fail,
    guard,
    ledger,
    print_typed,
    settings,
    table,
    when,
)
from relier.phoenix.schema import WorkerJSON, worker_json

__all__ = ["app", "worker_rows"]

app = typer.Typer(no_args_is_help=True, help="Worker processes and their leases.")


def worker_rows() -> list[WorkerJSON]:
    """Every registered worker process with its lease (read-only)."""
    led = ledger()
    now = led.now_ms()
    return [worker_json(w, now_ms=now) for w in led.workers(running=True)]


@app.command("list")
@guard
def worker_list(as_json: bool = JSON_OPTION) -> None:
    """Worker processes, their queues, tasks and leases."""
    rows = worker_rows()
    if as_json:
        print_typed(rows)
        return
    table("Workers", ["hostname", "pid", "host", "queues", "pool", "running", "state",
                      "lease", "started", "tasks"],
          [(r.hostname, r.pid or "", r.host, ",".join(r.queues),
            f"{r.pool} x{r.concurrency or '?'}", r.running, r.state,
            ago((r.lease_expires_in_s or 0) * 1000) if (r.lease_expires_in_s or 0) > 0
            else "expired",
            when(r.started_ms or 0),
            "?" if r.tasks is None else ", ".join(r.tasks) or "NONE registered")
           for r in rows], empty="no worker registered")


@app.command("drain")
@guard
def worker_drain(
    name: str = typer.Argument(..., help="The worker's Celery node name (celery@host)."),
    timeout: float | None = typer.Option(None, "--timeout",
                                  help="Seconds running tasks get (default "
                                       "RELIER_GRACEFUL_SHUTDOWN_TIMEOUT)."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait until it has exited."),
) -> None:
    """Drain a worker: stop intake, let tasks finish, hand off the rest, exit 0."""
    from relier.phoenix import request_drain

    if timeout is not None and not (math.isfinite(timeout) and timeout >= 0):
        # nan or a negative number would hand off every run at once; inf never ends.
        fail(f"rl worker drain: --timeout must be a finite number of seconds, 0 or more "
             f"(got {timeout!r})")
    s = settings()
    asked = request_drain(name, timeout, s)
    if not asked:
        fail(f"no live worker named {name!r} (see `rl worker list`)", 1)
    grace: float = s.graceful_shutdown_timeout if timeout is None else timeout
    console.print(f"asked {name} to drain ({len(asked)} process(es), {grace:g}s for running "
                  "tasks)")
    if not wait:
        return
    led = ledger()
    deadline = time.monotonic() + grace + 30
    # A terminal gets one status line rewritten in place; a pipe or a log gets one clean line
    # per change (a `\r` there leaves remnants and glues the lines together).
    progress = Progress(console.is_terminal)
    while time.monotonic() < deadline:
        left = [w for w in led.workers(running=True) if w.worker_id in asked]
        if not left:
            progress.done(f"[green]{escape(name)} drained and exited[/green]")
            return
        running = sum(w.running for w in left)
        progress.show(f"  waiting: {running} task(s) still running")
        time.sleep(0.5)
    progress.done("")
    fail(f"{name} has not exited after {grace + 30:g}s; check its log", 1)


class Progress:
    """A status line: rewritten in place on a terminal, one line per change elsewhere."""

    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self.last = ""

    def show(self, line: str) -> None:
        """Show ``line`` (nothing when it did not change)."""
        if line == self.last:
            return
        if self.tty:
            # Pad to the previous length so a shorter line leaves no remnant of a longer one.
            sys.stdout.write("\r" + line.ljust(len(self.last)))
            sys.stdout.flush()
        else:
            console.print(line)
        self.last = line

    def done(self, final: str) -> None:
        """Clear the status line and print ``final`` (when not empty)."""
        if self.tty and self.last:
            sys.stdout.write("\r" + " " * len(self.last) + "\r")
            sys.stdout.flush()
        self.last = ""
        if final:
            console.print(final)
