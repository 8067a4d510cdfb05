"""``rl dlq``: list, show, release and purge dead-lettered tasks."""

from __future__ import annotations

from typing import Any

import typer

from relier.cli._common import (
    JSON_OPTION,
    console,
    fail,
    guard,
    print_typed,
    settings,
    table,
    when,
)
from relier.cli.tasks_cmd import print_story
from relier.phoenix.schema import dead_letter_json, task_json

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="The dead-letter queue.")


def _dlq() -> Any:
    from relier.phoenix import DeadLetterQueue

    s = settings()
    try:
        from relier.admission import AdmissionPolicy
    except ImportError:
        return DeadLetterQueue(s)
    policy = AdmissionPolicy(s)
    return DeadLetterQueue(s, admission=lambda record: policy.scopes(record.queue))


@app.command("list")
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


@app.command("show")
@guard
def dlq_show(task_id: str, as_json: bool = JSON_OPTION) -> None:
    """One entry, whole: payload, reason, traceback, every attempt, last checkpoint."""
    _dlq().show(task_id)  # raises TaskNotFoundError unless it is dead-lettered
    if as_json:
        from relier.phoenix import task_story

        # The same decoder as `rl tasks show`: arguments decoded, raw bytes only on failure.
        print_typed(task_json(task_story(task_id, settings())))
        return
    print_story(task_id)


@app.command("release")
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


@app.command("purge")
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
