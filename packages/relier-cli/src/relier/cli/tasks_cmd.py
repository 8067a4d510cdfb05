"""``rl tasks``: what runs now, and the story of one task (read-only)."""

from __future__ import annotations

import time
from typing import Any

import typer

from relier.cli._common import (
    JSON_OPTION,
    ago,
    console,
    escape,
    guard,
    ledger,
    print_typed,
    settings,
    table,
    when,
)
from relier.phoenix.schema import InflightJSON, inflight_json, task_json

__all__ = ["app", "inflight_rows", "print_story"]

app = typer.Typer(no_args_is_help=True, help="What runs now; the story of one task.")


def inflight_rows(worker: str | None = None) -> list[InflightJSON]:
    """The running tasks of every live worker (read-only)."""
    led = ledger()
    now = led.now_ms()
    ttl_ms = int(led.settings.heartbeat_ttl * 1000)
    return [inflight_json(t, now_ms=now, ttl_ms=ttl_ms) for t in led.inflight(worker)]


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
    return _inflight_table(inflight_rows(worker), ledger().now_ms())


@app.command("inflight")
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


def print_story(task_id: str) -> None:
    """``rl tasks show`` (and ``rl dlq show``) as text."""
    from rich.panel import Panel

    from relier.phoenix import task_story

    story = task_story(task_id, settings())
    rec = story.record
    state = {"scheduled": "[blue]scheduled[/blue]", "queued": "[yellow]queued[/yellow]",
             "running": "[cyan]running[/cyan]",
             "done": "[green]done[/green]", "dead": "[red]dead-lettered[/red]"}
    lines = [
        f"state      {state.get(rec.state, rec.state)}"
        + (f" (duplicate of {escape(rec.duplicate_of)})" if rec.duplicate_of else ""),
        f"task       {escape(rec.task_name)}  (queue {escape(rec.queue)}"
        f"{', legacy message' * rec.legacy}{', plain Celery task' * rec.plain})",
        f"attempt    {rec.attempt}   epoch {rec.epoch}   resurrections {rec.resurrections}"
        f"/{rec.max_resurrections}",
        f"dispatched {when(rec.dispatched_ms)}",
    ]
    if rec.state == "scheduled" and rec.due_ms:
        # Due on the Redis clock; the resurrector promotes it onto its queue then.
        lines.append(f"due        {when(rec.due_ms)}")
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


@app.command("show")
@guard
def tasks_show(task_id: str, as_json: bool = JSON_OPTION) -> None:
    """The whole story of one task: states, attempts, workers, times, kill causes, outcome."""
    if as_json:
        from relier.phoenix import task_story

        print_typed(task_json(task_story(task_id, settings())))
        return
    print_story(task_id)
