"""Commands other distributions add to ``rl``, through the ``relier.cli`` entry-point group.

relier-lab declares ``rl bench``, ``rl chaos``, ``rl cluster`` and ``rl demo`` this way, so the
shell never imports the harness (nor the task runtime it needs) and works without it. An entry
is a ``typer.Typer`` (added as a command group) or a function (added as one command), named by
the entry point::

    [project.entry-points."relier.cli"]
    chaos = "relier.lab.chaos_cmd:app"
    demo = "relier.lab.demo_cmd:demo"
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

import typer

from relier.cli._common import err

__all__ = ["GROUP", "add_plugins"]

#: The entry-point group ``rl`` reads its plugin commands from.
GROUP = "relier.cli"


def _taken(app: typer.Typer) -> set[str]:
    names = {group.name for group in app.registered_groups if group.name}
    for command in app.registered_commands:
        if command.name:
            names.add(command.name)
        elif command.callback is not None:
            names.add(command.callback.__name__.replace("_", "-"))
    return names


def _where(ep: EntryPoint) -> str:
    dist = ep.dist.name if ep.dist is not None else "an unknown distribution"
    return f"plugin command {ep.name!r} ({ep.value}, from {dist})"


def add_plugins(app: typer.Typer, group: str = GROUP) -> list[str]:
    """Add every command of the entry-point ``group`` to ``app``; returns the names added.

    A plugin that cannot be loaded costs its own command only: one line on stderr says which
    and how to fix it, and every other command keeps working.
    """
    added: list[str] = []
    for ep in entry_points(group=group):
        if ep.name in _taken(app):
            err.print(f"[yellow]rl: {_where(ep)} skipped: the name is taken by a built-in "
                      "command or an earlier plugin; rename the entry point[/yellow]")
            continue
        try:
            obj = ep.load()
        except Exception as exc:  # whatever breaks while importing a plugin is its own
            err.print(f"[yellow]rl: {_where(ep)} could not be loaded ({type(exc).__name__}: "
                      f"{exc}); reinstall that distribution or uninstall it[/yellow]")
            continue
        if isinstance(obj, typer.Typer):
            app.add_typer(obj, name=ep.name)
        elif callable(obj):
            app.command(ep.name)(obj)
        else:
            err.print(f"[yellow]rl: {_where(ep)} skipped: it names a {type(obj).__name__}, "
                      "not a typer.Typer or a command function[/yellow]")
            continue
        added.append(ep.name)
    return added
