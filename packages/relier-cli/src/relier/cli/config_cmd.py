"""``rl config``: the settings in force, and a check of the Redis they point at."""

from __future__ import annotations

import typer

from relier.cli._common import (
    JSON_OPTION,
    console,
    escape,
    fail,
    guard,
    ledger,
    print_json,
    settings,
    table,
    to_plain,
)
from relier.core.exceptions import ConfigurationError

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="Show and check the RELIER_* settings.")


@app.command("show")
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


@app.command("validate")
def config_validate(
    load_scripts: bool = typer.Option(False, "--load-scripts",
                                      help="Also load the Lua scripts (writes to Redis)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Check the settings and the Redis they point at; exit 1 if anything fails."""
    import redis

    from relier.core.settings import reset_settings

    try:
        reset_settings(None)
        settings()
    except ConfigurationError as exc:
        fail(str(exc), 1)
    try:
        report = ledger().preflight(write=load_scripts)
    except redis.RedisError as exc:
        fail(str(exc), 1)
    if as_json:
        print_json({"settings": "valid", "preflight": to_plain(report)})
    else:
        console.print("[green]settings valid[/green]")
        for line in report.lines():
            console.print(escape(line))  # `[ok]` and `[WARN]` are text, not rich markup
    raise typer.Exit(0 if report.ok else 1)
