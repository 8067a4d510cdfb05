"""``rl``: look at and act on a Relier cluster from the terminal.

Every listing takes ``--json``. Read-only commands never write to Redis. A user error is one
line on stderr and a non-zero exit code, never a traceback.

This module only assembles the app: each command group lives in its own module
(``doctor_cmd``, ``config_cmd``, ``tasks_cmd``, ``dlq_cmd``, ``worker_cmd``,
``resurrector_cmd``), which formats what the ledger (``relier.phoenix.Ledger``) returns.
"""

from __future__ import annotations

import sys

import typer

# The locked typer (0.29) vendors its own click as ``typer._click``: the ``click`` package
# installed next to it (a Celery dependency) has other classes, so catching those let every
# usage error through as a traceback. pyproject.toml pins typer to the range tested with these.
from typer._click.exceptions import NoArgsIsHelpError, UsageError

from relier.cli import config_cmd, dlq_cmd, tasks_cmd, worker_cmd
from relier.cli._common import console, err, escape, with_redis_errors
from relier.cli.doctor_cmd import doctor
from relier.cli.plugins import add_plugins
from relier.cli.resurrector_cmd import run_resurrector
from relier.core.exceptions import RelierError, TaskNotFoundError

__all__ = ["app", "main", "usage_line"]

app = typer.Typer(
    name="rl", no_args_is_help=True, add_completion=False, rich_markup_mode="rich",
    help="Relier: the reliability layer for Celery on Redis.",
)


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


app.command()(doctor)
app.add_typer(config_cmd.app, name="config")
app.add_typer(tasks_cmd.app, name="tasks")
app.add_typer(dlq_cmd.app, name="dlq")
app.add_typer(worker_cmd.app, name="worker")
app.command("run-resurrector")(run_resurrector)


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
