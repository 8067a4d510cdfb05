"""``rl demo``: Relier's promise, shown end to end in about a minute on this machine.

Starts a Redis under ``.relier/demo`` (unless ``RELIER_REDIS_URL`` or ``--redis`` names one),
two workers and a resurrector; dispatches orders and a batch of idempotent charges with
duplicates among them; SIGKILLs a worker in mid-flight; shows live progress; and ends with a
report read from the ledger. It leaves nothing running.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import statistics
import time
from pathlib import Path
from typing import Any

import typer
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TextColumn

from relier.cli._common import console
from relier.core.queues import ALL_QUEUES
from relier.core.record import STARTED_MS
from relier.lab.procs import LocalRedis, ManagedProcess, ResurrectorProcess, WorkerProcess

QUEUES = list(ALL_QUEUES)


def demo(
    orders: int = typer.Option(300, "--orders", help="Orders to process."),
    charges: int = typer.Option(60, "--charges",
                                help="Charge dispatches (one per 3 distinct charges: the "
                                     "rest are duplicates)."),
    redis_url: str | None = typer.Option(None, "--redis",
                                         help="Use this Redis instead of a local one."),
) -> None:
    """Run the demo: dispatch, kill a worker mid-flight, recover, report."""
    url = redis_url or os.environ.get("RELIER_REDIS_URL")
    base = Path.cwd() / ".relier" / "demo"
    server = None
    procs: list[ManagedProcess] = []
    try:
        if not url:
            shutil.rmtree(base, ignore_errors=True)
            server = LocalRedis(directory=base / "redis").start()
            url = server.url
            console.print(f"started a local Redis at {url} (AOF on, noeviction)")
        report = _run(url, base, procs, orders, charges, own_redis=server is not None)
    finally:
        for proc in procs:
            proc.stop(timeout=10)
        if server is not None:
            server.stop()
            shutil.rmtree(base, ignore_errors=True)
    console.print(report)
    console.print("[dim]nothing left running.[/dim]")


def _run(url: str, base: Path, procs: list[ManagedProcess], orders: int, charges: int,
         *, own_redis: bool) -> Panel:
    os.environ["RELIER_REDIS_URL"] = url
    os.environ.pop("RELIER_BROKER_URL", None)
    os.environ.setdefault("RELIER_PREFLIGHT", "strict")
    # Sign the demo's envelopes with a key made for this run, as production would.
    os.environ.setdefault("RELIER_SIGNING_KEYS", f"demo:{secrets.token_urlsafe(24)}")
    from relier.core.settings import reset_settings
    from relier.tasks.dispatch import reset_dispatcher

    reset_settings(None)
    reset_dispatcher(None)
    from relier.lab.demo_tasks import charge_customer, process_order
    from relier.phoenix import Ledger

    ledger = Ledger()
    from relier.core.connection import redis_client

    client = redis_client(ledger.settings)  # the demo's own counters
    env = {"RELIER_REDIS_URL": url, "RELIER_IMPORTS": "relier.lab.demo_tasks",
           "RELIER_LOG_LEVEL": "WARNING",
           "RELIER_SIGNING_KEYS": os.environ["RELIER_SIGNING_KEYS"]}
    (base / "logs").mkdir(parents=True, exist_ok=True)

    def start_worker(n: int) -> WorkerProcess:
        worker = WorkerProcess("relier.tasks.app", env=env, queues=QUEUES, concurrency=2,
                               hostname=f"demo-worker-{n}@localhost",
                               log_path=base / "logs" / f"worker-{n}.log")
        procs.append(worker)
        worker.start().wait_ready()
        return worker

    console.print("starting 2 workers and a resurrector...")
    workers = [start_worker(1), start_worker(2)]
    resurrector = ResurrectorProcess(env={**env, "RELIER_LOG_LEVEL": "INFO"},
                                     log_path=base / "logs" / "resurrector.log")
    procs.append(resurrector)
    resurrector.start().wait_ready()

    receipts = [process_order.push(f"order-{n:04d}") for n in range(orders)]
    distinct = max(1, charges // 3)
    charge_receipts = [charge_customer.push(f"cus_{n % distinct:03d}", 500 + n % distinct)
                       for n in range(charges)]
    prevented = sum(r.deduplicated for r in charge_receipts)
    console.print(f"dispatched {orders} orders and {charges} charges "
                  f"({prevented} duplicates answered at dispatch, nothing enqueued for them)")

    victim = workers[0]
    kill_at = time.monotonic() + 2.0
    killed: list[str] = []
    killed_ms = 0
    ids = [r.id for r in receipts] + list({r.id for r in charge_receipts})
    columns = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.fields[detail]}"))
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("tasks", total=len(ids), detail="")
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if not killed and time.monotonic() >= kill_at:
                killed = sorted(ledger.worker_tasks(_lease_of(ledger, victim.hostname)))
                killed_ms = ledger.now_ms()
                victim.kill_group(signal.SIGKILL)
                progress.console.print(f"[red]SIGKILL[/red] {victim.hostname} (pid "
                                       f"{victim.pid}) with {len(killed)} task(s) in flight")
                workers.append(start_worker(3))
            states = ledger.states(ids)
            done = states.get("done", 0) + states.get("dead", 0)
            progress.update(bar, completed=done,
                            detail=f"running {states.get('running', 0)}, queued "
                                   f"{states.get('queued', 0)}")
            if done >= len(ids) and killed:
                break
            time.sleep(0.2)

    states = ledger.states(ids)
    delivered = states.get("done", 0)
    lost = len(ids) - delivered - states.get("dead", 0)
    recoveries = []
    for task_id in killed:
        started = ledger.record_fields(task_id, STARTED_MS).started_ms
        if started:
            recoveries.append(started / 1000 - killed_ms / 1000)
    charges_run = sum(int(v) for v in client.hvals("demo:charges"))
    overhead = _overhead(process_order) if own_redis else None
    lines = [
        f"delivered          [bold]{delivered} of {len(ids)}[/bold] tasks",
        f"lost               [bold]{lost}[/bold]",
        f"dead-lettered      {states.get('dead', 0)}",
        f"duplicates stopped {prevented} of {charges} charge dispatches; "
        f"{charges_run} charge(s) ran for {distinct} distinct charges",
        f"worker killed      {victim.hostname} with {len(killed)} task(s) in flight",
    ]
    if recoveries:
        lines.append(f"recovery           killed tasks running again after "
                     f"{statistics.median(recoveries):.2f}s (median), "
                     f"{max(recoveries):.2f}s (slowest)")
    if overhead:
        lines.append(f"dispatch overhead  push p50 {overhead[0]:.0f} µs vs .delay() p50 "
                     f"{overhead[1]:.0f} µs ({overhead[0] / overhead[1]:.2f}x)")
    ok = lost == 0 and delivered == len(ids)
    title = "[green]every task that entered, left[/green]" if ok else "[red]tasks missing[/red]"
    return Panel("\n".join(lines), title=f"Relier demo: {title}", expand=False)


def _lease_of(ledger: Any, hostname: str) -> str:
    return next((w.worker_id for w in ledger.workers() if w.hostname == hostname), "")


def _overhead(task: Any, n: int = 300) -> tuple[float, float]:
    """p50 of ``push`` against vanilla ``.delay()`` on the same Redis, interleaved."""
    from celery import Celery

    url = os.environ["RELIER_REDIS_URL"]
    plain = Celery("demo-vanilla", broker=url, set_as_current=False)
    plain.conf.update(task_serializer="json", broker_connection_retry_on_startup=True)

    def nothing() -> None:
        """A plain Celery task."""

    vanilla = plain.task(name="demo.vanilla", shared=False)(nothing)
    ours, theirs = [], []
    for i in range(n):
        t0 = time.perf_counter_ns()
        task.push(f"bench-{i}-{random.random()}")
        ours.append((time.perf_counter_ns() - t0) / 1000)
        t0 = time.perf_counter_ns()
        vanilla.delay()
        theirs.append((time.perf_counter_ns() - t0) / 1000)
    return statistics.median(ours), statistics.median(theirs)
