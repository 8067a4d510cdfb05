"""``rl``: look at and act on a Relier cluster from the terminal.

Every listing takes ``--json``. Read-only commands never write to Redis. A user error is one
line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import typer
from rich.markup import escape

# The locked typer (0.29) vendors its own click as ``typer._click``: the ``click`` package
# installed next to it (a Celery dependency) has other classes, so catching those let every
# usage error through as a traceback. pyproject.toml pins typer to the range tested with these.
from typer._click.exceptions import NoArgsIsHelpError, UsageError

from relier.cli._common import (
    JSON_OPTION,
    ago,
    console,
    err,
    fail,
    guard,
    ledger,
    print_json,
    redis_now_ms,
    settings,
    table,
    to_plain,
    when,
    with_redis_errors,
)
from relier.cli.plugins import add_plugins
from relier.cli.schema import (
    InflightJSON,
    WorkerJSON,
    dead_letter_json,
    iso,
    print_typed,
    task_json,
    worker_json,
)
from relier.core.codec import text
from relier.core.exceptions import ConfigurationError, RelierError, TaskNotFoundError
from relier.core.settings import Settings

app = typer.Typer(
    name="rl", no_args_is_help=True, add_completion=False, rich_markup_mode="rich",
    help="Relier: the reliability layer for Celery on Redis.",
)
config_app = typer.Typer(no_args_is_help=True, help="Show and check the RELIER_* settings.")
tasks_app = typer.Typer(no_args_is_help=True, help="What runs now; the story of one task.")
dlq_app = typer.Typer(no_args_is_help=True, help="The dead-letter queue.")
worker_app = typer.Typer(no_args_is_help=True, help="Worker processes and their leases.")
app.add_typer(config_app, name="config")
app.add_typer(tasks_app, name="tasks")
app.add_typer(dlq_app, name="dlq")
app.add_typer(worker_app, name="worker")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        console.print(f"rl (relier-cli) {version('relier-cli')}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", "-v", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Relier: the reliability layer for Celery on Redis."""


# -- doctor ----------------------------------------------------------------------------------------
def envelope_checks(s: Settings) -> list[dict[str, Any]]:
    """Warnings about how much of what workers run is authenticated (from settings only)."""
    checks = []
    if s.signing_keys.strip():
        checks.append({"name": "envelope signing", "status": "ok", "fix": "",
                       "detail": "envelopes are signed (HMAC-SHA256)"})
    else:
        checks.append({
            "name": "envelope signing", "status": "warn",
            "detail": "RELIER_SIGNING_KEYS is empty: envelopes are unsigned; their digest "
                      "catches corruption, not forgery by anyone who can write Redis",
            "fix": "set RELIER_SIGNING_KEYS='kid:secret' on every producer and worker",
        })
    if s.accept_unsigned:
        checks.append({
            "name": "unsigned legacy messages", "status": "warn",
            "detail": "accepted while RELIER_ACCEPT_UNSIGNED is on: plain Celery messages "
                      "(.delay()/.apply_async()) and envelopes sealed before digests run "
                      "without any integrity check",
            "fix": "move callers to push/apush, then set RELIER_ACCEPT_UNSIGNED=false",
        })
    else:
        checks.append({"name": "unsigned legacy messages", "status": "ok", "fix": "",
                       "detail": "refused (RELIER_ACCEPT_UNSIGNED=false): dead-lettered"})
    return checks


def doctor_report() -> dict[str, Any]:
    """Everything ``rl doctor`` checks, as data (read-only)."""
    from relier.core.preflight import run_preflight

    s = settings()
    led = ledger()
    client, keys = led.client, led.keys
    report = run_preflight(client, s, write=False)
    checks = [{"name": c.name, "status": c.status, "detail": c.detail, "fix": c.fix}
              for c in report.checks]
    checks += envelope_checks(s)
    data: dict[str, Any] = {"redis": report.url, "checks": checks, "healthy": report.ok}
    if report.failures and report.checks[0].name == "connection" and \
            report.checks[0].status == "fail":
        return data
    now = redis_now_ms(client)
    live = [text(m) for m in client.zrangebyscore(keys.workers, now, "+inf")]
    expired = [text(m) for m in client.zrangebyscore(keys.workers, "-inf", f"({now}")]
    consumed: set[str] = set()
    for worker_id in live:
        consumed.update(text(client.hget(keys.worker(worker_id), "queues") or b"").split(","))
    resurrectors = client.zrangebyscore(keys.resurrectors, now - 10_000, "+inf")
    queues = sorted({"high_priority", "default", "low_priority", "re-queue",
                     *(text(q) for q in client.hkeys(keys.queue_seq))})
    depths = {q: int(client.llen(keys.broker_list(q))) for q in queues}
    data.update(workers=len(live), expired_workers=len(expired),
                resurrectors=len(resurrectors), queues=depths,
                dead_letters=int(client.zcard(keys.dlq)))

    def add(name: str, ok: bool, detail: str, fix: str, status_if_bad: str = "fail") -> None:
        checks.append({"name": name, "status": "ok" if ok else status_if_bad,
                       "detail": detail, "fix": "" if ok else fix})

    add("workers", bool(live), f"{len(live)} live" + (
        f", {len(expired)} expired (their tasks await the resurrector)" if expired else ""),
        "start workers: celery -A relier.tasks.app worker -Q "
        "high_priority,default,low_priority,re-queue")
    add("resurrector", bool(resurrectors), f"{len(resurrectors)} live",
        "run `rl run-resurrector` (one or two per cluster)")
    checks.append(requeue_consumer_check(len(live), consumed))
    add("dead-letter queue", True, f"{data['dead_letters']} entries", "")
    if live:
        from relier.phoenix.registry import unregistered_queued

        sample = 500
        missing, seen = unregistered_queued(led, queues, sample)
        data["unregistered_tasks"] = missing
        add("registered tasks", not missing,
            f"every queued task has a live worker that registered it "
            f"({seen} queued id(s) checked, at most {sample} per queue)" if not missing else
            "queued tasks no live worker registered: " + ", ".join(
                f"{name} ({n})" for name, n in sorted(missing.items())) +
            f" (of at most {sample} queued ids per queue)",
            "make the workers import the modules of these tasks (RELIER_IMPORTS, --include, "
            "or a tasks.py in their directory); `rl worker list` shows what each registered")
    data["healthy"] = all(c["status"] != "fail" for c in checks)
    return data


def requeue_consumer_check(live: int, consumed: set[str]) -> dict[str, str]:
    """Does a live worker consume ``re-queue``? The status and the text always agree."""
    if "re-queue" in consumed:
        return {"name": "re-queue consumer", "status": "ok",
                "detail": "a live worker consumes re-queue", "fix": ""}
    return {"name": "re-queue consumer", "status": "warn",
            "detail": "nobody consumes it" + ("" if live else " (no live worker)"),
            "fix": "add -Q re-queue to a worker, or resurrected and handed-off tasks never run"}


@app.command()
@guard
def doctor(as_json: bool = JSON_OPTION) -> None:
    """Check Redis, scripts, workers, resurrector, queues; exit 0 when healthy, 1 when not."""
    data = doctor_report()
    if as_json:
        print_json(data)
    else:
        marks = {"ok": "[green]ok  [/green]", "warn": "[yellow]WARN[/yellow]",
                 "fail": "[red]FAIL[/red]"}
        console.print(f"[bold]Relier doctor[/bold] {data['redis']}")
        for c in data["checks"]:
            console.print(f"  {marks[c['status']]} {c['name']}: {escape(c['detail'])}")
            if c["fix"] and c["status"] != "ok":
                console.print(f"       [dim]fix: {escape(c['fix'])}[/dim]")
        if "queues" in data:
            depth = ", ".join(f"{q}={n}" for q, n in data["queues"].items())
            console.print(f"  queues: {depth}")
        console.print("[green]healthy[/green]" if data["healthy"] else "[red]unhealthy[/red]")
    raise typer.Exit(0 if data["healthy"] else 1)


# -- config ----------------------------------------------------------------------------------------
@config_app.command("show")
@guard
def config_show(as_json: bool = JSON_OPTION) -> None:
    """Every setting in force, secrets masked."""
    values = settings().masked()
    if as_json:
        print_json(values)
        return
    from relier.core.settings import setting_infos

    defaults = {i.variable: i.default for i in setting_infos()}
    table("RELIER_* settings", ["variable", "value", "default"],
          [(k, v, defaults.get(k, "")) for k, v in values.items()])


@config_app.command("validate")
def config_validate(
    load_scripts: bool = typer.Option(False, "--load-scripts",
                                      help="Also load the Lua scripts (writes to Redis)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Check the settings and the Redis they point at; exit 1 if anything fails."""
    import redis

    from relier.core.preflight import run_preflight
    from relier.core.settings import reset_settings

    try:
        reset_settings(None)
        s = settings()
    except ConfigurationError as exc:
        fail(str(exc), 1)
    try:
        report = run_preflight(ledger().client, s, write=load_scripts)
    except redis.RedisError as exc:
        fail(str(exc), 1)
    if as_json:
        print_json({"settings": "valid", "preflight": to_plain(report)})
    else:
        console.print("[green]settings valid[/green]")
        for line in report.lines():
            console.print(escape(line))  # `[ok]` and `[WARN]` are text, not rich markup
    raise typer.Exit(0 if report.ok else 1)


# -- tasks -----------------------------------------------------------------------------------------
def inflight_rows(worker: str | None = None) -> list[InflightJSON]:
    """The running tasks of every live worker (read-only)."""
    led = ledger()
    client, keys = led.client, led.keys
    now = redis_now_ms(client)
    ttl_ms = int(led.settings.heartbeat_ttl * 1000)
    rows = []
    leases: list[tuple[bytes, float]] = client.zrangebyscore(  # type: ignore[assignment]
        keys.workers, "-inf", "+inf", withscores=True)
    for raw, score in leases:
        worker_id, deadline = text(raw), int(score)
        hostname = text(client.hget(keys.worker(worker_id), "hostname") or b"")
        if worker and worker not in (hostname, worker_id):
            continue
        renewed = deadline - ttl_ms
        ids = sorted(text(t) for t in client.smembers(keys.worker_tasks(worker_id)))
        pipe = client.pipeline(transaction=False)
        for task_id in ids:
            pipe.hmget(keys.task(task_id), "n", "a", "ts", "k")
            pipe.hstrlen(keys.task(task_id), "ck")
        replies = pipe.execute()
        for task_id, fields, ck in zip(ids, replies[::2], replies[1::2], strict=True):
            name, attempt, started_raw, kills = fields
            started = int(started_raw or 0)
            rows.append(InflightJSON(
                task_id=task_id, task=text(name or b"?"), worker=hostname, lease_id=worker_id,
                attempt=int(attempt or 0), resurrections=int(kills or 0),
                started_at=iso(started), started_ms=started or None,
                age_s=round((now - (started or now)) / 1000, 3),
                lease_renewed_at=iso(renewed), lease_renewed_ms=renewed,
                lease_expires_at=iso(deadline), lease_expires_ms=deadline,
                lease_expired=deadline < now, checkpoint_bytes=int(ck),
            ))
    return rows


def _inflight_table(rows: list[InflightJSON], now_ms: int) -> Any:
    from rich.table import Table

    t = Table(title=f"In-flight tasks ({len(rows)})", title_justify="left",
              header_style="bold")
    for column in ("task id", "task", "worker", "attempt", "age", "lease renewed",
                   "checkpoint"):
        t.add_column(column, no_wrap=column == "task id")
    for r in rows:
        renewed = ago(now_ms - (r.lease_renewed_ms or now_ms)) + (
            " [red](expired)[/red]" if r.lease_expired else "")
        t.add_row(escape(r.task_id), escape(r.task), escape(r.worker), str(r.attempt),
                  ago(r.age_s * 1000), renewed,
                  f"{r.checkpoint_bytes} B" if r.checkpoint_bytes else "")
    return t


def _inflight_now(worker: str | None) -> Any:
    return _inflight_table(inflight_rows(worker), redis_now_ms(ledger().client))


@tasks_app.command("inflight")
@guard
def tasks_inflight(
    follow: bool = typer.Option(False, "--follow", "-f", help="Refresh every second."),
    worker: str | None = typer.Option(None, "--worker", help="Only this worker (hostname)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Running tasks: id, task, worker, attempt, age, last lease renewal, checkpoint size."""
    if as_json:
        print_typed(inflight_rows(worker))
        return
    if not follow:
        console.print(_inflight_now(worker))
        return
    from rich.live import Live

    try:
        with Live(_inflight_now(worker), console=console, refresh_per_second=2) as live:
            while True:
                time.sleep(1)
                live.update(_inflight_now(worker))
    except KeyboardInterrupt:
        return


def _print_story(task_id: str) -> None:
    from rich.panel import Panel

    from relier.phoenix import task_story

    story = task_story(task_id, settings())
    rec = story.record
    state = {"queued": "[yellow]queued[/yellow]", "running": "[cyan]running[/cyan]",
             "done": "[green]done[/green]", "dead": "[red]dead-lettered[/red]"}
    lines = [
        f"state      {state.get(rec.state, rec.state)}"
        + (f" (duplicate of {escape(rec.duplicate_of)})" if rec.duplicate_of else ""),
        f"task       {escape(rec.task_name)}  (queue {escape(rec.queue)}"
        f"{', legacy message' * rec.legacy})",
        f"attempt    {rec.attempt}   epoch {rec.epoch}   resurrections {rec.resurrections}"
        f"/{rec.max_resurrections}",
        f"dispatched {when(rec.dispatched_ms)}",
    ]
    if rec.state == "running":
        lease = story.lease_expires_in_ms
        lines.append(f"running on {escape(story.owner_hostname or rec.owner)}, lease "
                     + (f"expires in {ago(lease)}" if lease and lease > 0 else
                        "[red]expired[/red] (the resurrector will re-queue it)"))
    # Arguments, results and messages are data: escaped, so `[ok]` in them stays visible.
    if story.args is not None:
        lines.append(escape(f"arguments  {story.args} {story.kwargs or ''}".rstrip()))
    elif story.envelope_error:
        lines.append(f"arguments  [red]not shown: {escape(story.envelope_error)}[/red]")
    if story.checkpoint_bytes:
        lines.append(f"checkpoint {story.checkpoint_bytes} B")
    if rec.state == "done":
        lines.append(escape(f"result     {story.result!r}"))
    if rec.state == "dead":
        lines += [escape(f"reason     {rec.reason}"), escape(f"exception  {rec.exc_type}"),
                  escape(f"message    {rec.message}"), f"since      {when(rec.dead_ms)}"]
    console.print(Panel("\n".join(lines), title=f"task {task_id}", expand=False))
    table("attempts", ["#", "worker", "started", "ended", "outcome", "cause"],
          [(a.attempt, a.worker, when(a.started_ms), when(a.ended_ms), a.outcome, a.cause)
           for a in rec.history], empty="none finished yet")
    if rec.traceback:
        console.print(Panel(escape(rec.traceback.rstrip()), title="traceback", expand=False))


@tasks_app.command("show")
@guard
def tasks_show(task_id: str, as_json: bool = JSON_OPTION) -> None:
    """The whole story of one task: states, attempts, workers, times, kill causes, outcome."""
    if as_json:
        from relier.phoenix import task_story

        print_typed(task_json(task_story(task_id, settings())))
        return
    _print_story(task_id)


# -- dead-letter queue -----------------------------------------------------------------------------
def _dlq() -> Any:
    from relier.phoenix import DeadLetterQueue

    s = settings()
    try:
        from relier.admission import AdmissionPolicy
    except ImportError:
        return DeadLetterQueue(s)
    policy = AdmissionPolicy(s)
    return DeadLetterQueue(s, admission=lambda record: policy.scopes(record.queue))


@dlq_app.command("list")
@guard
def dlq_list(
    reason: str | None = typer.Option(None, "--reason", help="Only this reason."),
    task: str | None = typer.Option(None, "--task", help="Only this task name."),
    limit: int = typer.Option(100, "--limit", help="At most this many (newest first)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Dead-lettered tasks, newest first."""
    entries = _dlq().list(reason=reason, task=task, limit=limit)
    if as_json:
        print_typed([dead_letter_json(e) for e in entries])
        return
    table("Dead-letter queue", ["task id", "task", "reason", "attempts", "dead since",
                                "message"],
          [(e.task_id, e.task_name, e.reason, len(e.history), when(e.dead_ms),
            (e.message[:70] + "...") if len(e.message) > 70 else e.message) for e in entries],
          empty="empty")


@dlq_app.command("show")
@guard
def dlq_show(task_id: str, as_json: bool = JSON_OPTION) -> None:
    """One entry, whole: payload, reason, traceback, every attempt, last checkpoint."""
    _dlq().show(task_id)  # raises TaskNotFoundError unless it is dead-lettered
    if as_json:
        from relier.phoenix import task_story

        # The same decoder as `rl tasks show`: arguments decoded, raw bytes only on failure.
        print_typed(task_json(task_story(task_id, settings())))
        return
    _print_story(task_id)


@dlq_app.command("release")
@guard
def dlq_release(
    task_id: str | None = typer.Argument(None, help="The entry to release."),
    release_all: bool = typer.Option(False, "--all", help="Release every matching entry."),
    reason: str | None = typer.Option(None, "--reason", help="With --all: only this reason."),
    task: str | None = typer.Option(None, "--task", help="With --all: only this task name."),
) -> None:
    """Send entries back to their own queue (fencing restarts; history kept; admission applies)."""
    dlq = _dlq()
    if release_all:
        count = dlq.release_all(reason=reason, task=task)
        console.print(f"released {count} task(s)")
        return
    if not task_id:
        fail("name a task id, or pass --all")
    if not dlq.release(task_id):
        fail(f"task {task_id} is not in the dead-letter queue", 1)
    console.print(f"released {task_id}")


@dlq_app.command("purge")
@guard
def dlq_purge(
    task_id: str | None = typer.Argument(None, help="One entry; all entries when omitted."),
    yes: bool = typer.Option(False, "--yes", help="Confirm: purged entries are gone for good."),
) -> None:
    """Delete entries for good (requires --yes)."""
    dlq = _dlq()
    target = f"task {task_id}" if task_id else f"all {dlq.count()} entries"
    if not yes:
        fail(f"refusing to purge {target} without --yes (this cannot be undone)")
    if task_id:
        if not dlq.purge(task_id):
            fail(f"task {task_id} is not in the dead-letter queue", 1)
        console.print(f"purged {task_id}")
        return
    console.print(f"purged {dlq.purge_all()} entries")


# -- workers ---------------------------------------------------------------------------------------
def worker_rows() -> list[WorkerJSON]:
    """Every registered worker process with its lease (read-only)."""
    led = ledger()
    client, keys = led.client, led.keys
    now = redis_now_ms(client)
    leases: list[tuple[bytes, float]] = client.zrange(  # type: ignore[assignment]
        keys.workers, 0, -1, withscores=True)
    return [worker_json(text(raw), client.hgetall(keys.worker(text(raw))),
                        deadline_ms=int(deadline), now_ms=now,
                        running=int(client.scard(keys.worker_tasks(text(raw)))))
            for raw, deadline in leases]


@worker_app.command("list")
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


@worker_app.command("drain")
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

    s = settings()
    asked = request_drain(name, timeout, s)
    if not asked:
        fail(f"no live worker named {name!r} (see `rl worker list`)", 1)
    grace: float = s.graceful_shutdown_timeout if timeout is None else timeout
    console.print(f"asked {name} to drain ({len(asked)} process(es), {grace:g}s for running "
                  "tasks)")
    if not wait:
        return
    client, keys = ledger().client, ledger().keys
    deadline = time.monotonic() + grace + 30
    # A terminal gets one status line rewritten in place; a pipe or a log gets one clean line
    # per change (a `\r` there leaves remnants and glues the lines together).
    progress = _Progress(console.is_terminal)
    while time.monotonic() < deadline:
        left = [w for w in asked if client.zscore(keys.workers, w) is not None]
        if not left:
            progress.done(f"[green]{escape(name)} drained and exited[/green]")
            return
        running = sum(int(client.scard(keys.worker_tasks(w))) for w in left)
        progress.show(f"  waiting: {running} task(s) still running")
        time.sleep(0.5)
    progress.done("")
    fail(f"{name} has not exited after {grace + 30:g}s; check its log", 1)


class _Progress:
    """A status line: rewritten in place on a terminal, one line per change elsewhere."""

    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self.last = ""

    def show(self, line: str) -> None:
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
        if self.tty and self.last:
            sys.stdout.write("\r" + " " * len(self.last) + "\r")
            sys.stdout.flush()
        self.last = ""
        if final:
            console.print(final)


# -- resurrector -----------------------------------------------------------------------------------
@app.command("run-resurrector")
@guard
def run_resurrector(
    interval: float | None = typer.Option(None, "--interval",
                                   help="Longest sleep between passes, seconds (default "
                                        "RELIER_RESURRECTION_CHECK_INTERVAL)."),
    loglevel: str | None = typer.Option(None, "--loglevel",
                                        help="Log level (default RELIER_LOG_LEVEL)."),
) -> None:
    """Run a resurrector (any number of replicas is safe) until SIGTERM or Ctrl-C."""
    import dataclasses

    from relier.core.connection import redis_client
    from relier.core.preflight import preflight
    from relier.phoenix.resurrector import serve

    s = settings()
    if interval is not None:
        if interval <= 0:
            fail("--interval must be above 0 seconds")
        s = dataclasses.replace(s, resurrection_check_interval=interval)

    def before(s: Settings) -> None:
        # The checks a worker makes: re-queueing from the ledger of an evicting Redis could
        # resurrect tasks whose records were partly evicted.
        preflight(redis_client(s), s)
        _start_telemetry(s)

    serve(s, loglevel=loglevel, before=before)


def _start_telemetry(s: Settings) -> None:
    """Resurrections, recovery times and dead letters as metrics, when telemetry is on."""
    if not s.otel_enabled:
        return
    try:
        from relier.otel import start
    except ImportError:
        console.print("[yellow]RELIER_OTEL_ENABLED is true but relier-otel is not installed: "
                      "no telemetry (pip install 'relier-otel[sdk]')[/yellow]")
        return
    start(s)


# bench, chaos, cluster and demo come from relier-lab (entry-point group "relier.cli"): the
# shell never imports the harness or the task runtime, and works without them.
add_plugins(app)


def usage_line(exc: UsageError) -> str:
    """A usage error as one line: what is wrong, and the command whose help says more."""
    ctx = exc.ctx
    command = ctx.command_path if ctx is not None else "rl"
    if isinstance(exc, NoArgsIsHelpError):
        # Its message is the whole help page; the line names what was missing instead.
        names: list[str] = (getattr(ctx.command, "list_commands", lambda _ctx: [])(ctx)
                            if ctx is not None else [])
        what = "missing command" + (f" (one of: {', '.join(names)})" if names else "")
    else:
        what = " ".join(exc.format_message().split()).rstrip(".")
        what = what[:1].lower() + what[1:]
    return f"{command}: {what}; see '{command} --help'"


def main() -> None:
    """Console entry point: exit codes, and one line instead of a traceback."""
    try:
        result = app(standalone_mode=False)
    except typer.Exit as exc:  # before RuntimeError: typer's Exit and Abort subclass it
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except UsageError as exc:
        err.print(f"[red]rl: error:[/red] {escape(usage_line(exc))}")
        sys.exit(2)
    except typer.TyperException as exc:  # any other error typer's click reports itself
        err.print(f"[red]rl: error:[/red] {escape(' '.join(exc.format_message().split()))}")
        sys.exit(exc.exit_code)
    except TaskNotFoundError as exc:
        err.print(f"[red]rl: error:[/red] {escape(str(exc))}")
        sys.exit(1)
    except with_redis_errors(RelierError, RuntimeError, OSError) as exc:
        err.print(f"[red]rl: error:[/red] {escape(str(exc))}")
        sys.exit(2)
    sys.exit(result if isinstance(result, int) else 0)
