"""Generate the reference pages that must never drift from the code.

- ``docs/cli.md`` from the ``rl`` typer app (``relier.cli.main:app``);
- ``docs/configuration.md`` from ``relier.core.settings.setting_infos()``.

    uv run python tools/gen_docs.py           # rewrite both pages
    uv run python tools/gen_docs.py --check   # exit 1 when a committed page is stale (CI)

The output depends on the code only: no dates, no paths of this machine, no terminal width
(help texts are read from the command objects, never rendered by rich).
"""

from __future__ import annotations

import argparse
import ast
import inspect
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer
from rich.text import Text

from relier.core import settings as settings_module
from relier.core.exceptions import ConfigurationError
from relier.core.settings import SettingInfo, Settings, setting_infos

ROOT = Path(__file__).resolve().parents[1]
REGENERATE = "uv run python tools/gen_docs.py"

GENERATED_NOTE = f"""\
!!! note "Generated page"
    This page is generated from the code by `{REGENERATE}`. Do not edit it by
    hand: change the code, run that command and commit both. CI fails when the page is out
    of date."""

# Typer vendors its own copy of click, so the objects below are not `click.Command` instances:
# they are walked by their attributes (`commands`, `params`, `help`, ...) instead.
Command = Any
Param = Any


# -- Markdown helpers ------------------------------------------------------------------------------
_CODE_SPAN = re.compile(r"(`+).+?\1", re.S)
# Environment variable names read better as code, and their underscores then need no escaping.
_VARIABLE = re.compile(r"\bRELIER_[A-Z0-9_]*[A-Z0-9](?:_\*)?|\bRELIER_\*")


def _escape(prose: str, *, cell: bool) -> str:
    prose = prose.replace("\\", "\\\\")
    for char in "*_[]" + ("|" if cell else ""):
        prose = prose.replace(char, "\\" + char)
    # `<master>` would be swallowed as an HTML tag.
    return prose.replace("<", "&lt;")


def md(text: str, *, cell: bool = False) -> str:
    """Prose as Markdown: code spans kept, RELIER_* names made code, the rest escaped.

    In a table cell the text is folded onto one line and pipes outside code are escaped
    (Python-Markdown already ignores pipes inside code spans).
    """
    if cell:
        text = " ".join(text.split())
    parts, pos = [], 0
    for span in [*_CODE_SPAN.finditer(text), None]:
        prose = text[pos:span.start() if span else len(text)]
        last = 0
        for variable in _VARIABLE.finditer(prose):
            parts.append(_escape(prose[last:variable.start()], cell=cell))
            parts.append(code(variable.group(0)))
            last = variable.end()
        parts.append(_escape(prose[last:], cell=cell))
        if span:
            parts.append(span.group(0))
            pos = span.end()
    return "".join(parts)


def code(value: str) -> str:
    """``value`` as an inline code span, whatever backticks it holds."""
    fence = "``" if "`" in value else "`"
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def page(lines: list[str]) -> str:
    """Join lines into a page: no trailing spaces, no runs of blank lines, one final newline."""
    text = "\n".join(line.rstrip() for line in "\n".join(lines).split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


# -- CLI reference ---------------------------------------------------------------------------------
CLI_INTRO = """\
# CLI reference

{note}

`rl` looks at and acts on a Relier cluster from the terminal. It is installed with the
`relier-cli` package; `chaos`, `bench`, `cluster` and `demo` come from `relier-lab`, which plugs
them into `rl` (both come with `pip install relier`). `rl COMMAND --help` prints the same
information as this page. In the usage lines, `{{name}}` is a required argument and `[name]` an
optional one.

- Every listing takes `--json` and then prints one JSON document instead of a table, for
  scripts and `jq`; the shapes are one typed schema (see [JSON output](#json-output)).
- Read-only commands (`doctor`, the listings and the `show` commands) never write to Redis.
- A user error (an unknown task id, a missing `--yes`) is one line on stderr and a non-zero
  exit code, never a traceback. Exit codes: 0 success; 1 when what you asked about was not
  found or is unhealthy; 2 for a usage, configuration or connection error.
- Commands read the same `RELIER_*` settings as workers (see [Configuration](configuration.md)).
  With `RELIER_REDIS_URL` unset, they use the Redis of the local `rl cluster up` stack when
  one is running.
"""


CLI_JSON = """\
## JSON output

`rl tasks inflight`, `rl tasks show`, `rl dlq list`, `rl dlq show` and `rl worker list` print
one typed schema with `--json` (the structs of `relier.phoenix.schema`, encoded by `msgspec`):

- Numbers are JSON numbers, flags are booleans, lists are arrays: nothing to parse out of a
  string.
- Every instant is two fields: `<x>_at`, ISO 8601 in UTC with milliseconds
  (`2026-11-28T08:15:11.431Z`), and `<x>_ms`, the same instant in Unix epoch milliseconds.
  Both are `null` while the instant has not happened (`ended_at` of a running task).
- A duration ends in `_s` and is in seconds (`age_s`, `lease_expires_in_s`; negative once a
  lease has lapsed).
- The same name means the same thing everywhere: `task` is the task name, `worker` a Celery
  node name, `lease_id` and `owner` a worker process's lease id.
- `rl tasks show` and `rl dlq show` print the same object, from the same decoder: `args` and
  `kwargs` decoded, `result` decoded once the task is done. Only when the stored payload cannot
  be decoded (tampered, truncated, not a Relier envelope, signed with an unknown key) are `args`
  and `kwargs` `null`, `payload_error` says why, and `payload_base64` holds the exact stored
  bytes; otherwise both are `null`.
- `rl worker list`: `tasks` holds the task names the worker registered, `null` for a worker
  that does not publish them; `state` is `running`, `draining`, or `expired` once its lease has
  lapsed.

The fields, in order (a `?` marks a field that may be `null`):
"""


def _json_type(info: Any) -> str:
    import msgspec

    if isinstance(info, msgspec.inspect.UnionType):
        kinds = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
        return " or ".join(_json_type(t) for t in kinds) + "?"
    names = {"StrType": "string", "IntType": "integer", "FloatType": "number",
             "BoolType": "boolean", "AnyType": "any", "DictType": "object",
             "StructType": "object"}
    if isinstance(info, msgspec.inspect.ListType):
        return f"array of {_json_type(info.item_type)}"
    return names.get(type(info).__name__, type(info).__name__)


def cli_json_section() -> list[str]:
    """The JSON schema of the `--json` outputs: conventions by hand, fields from the structs."""
    import msgspec

    from relier.phoenix import schema

    lines = [CLI_JSON]
    for commands, struct in (
        ("`rl tasks show ID` and `rl dlq show ID` (one object)", schema.TaskJSON),
        ("`history` items of the above", schema.AttemptJSON),
        ("`rl dlq list` (an array of)", schema.DeadLetterJSON),
        ("`rl tasks inflight` (an array of)", schema.InflightJSON),
        ("`rl worker list` (an array of)", schema.WorkerJSON),
    ):
        fields = msgspec.inspect.type_info(struct).fields  # type: ignore[attr-defined]
        lines.append(f"- {commands}: " + ", ".join(
            f"{code(f.name)} ({_json_type(f.type)})" for f in fields) + ".")
    return lines


def _plain_help(raw: str | None) -> list[str]:
    """A command's help as plain paragraphs, the way typer shows it in `--help`."""
    text = inspect.cleandoc(raw or "").partition("\f")[0]
    # The app uses rich markup mode: `[bold]x[/bold]` prints as `x`, so the page does too.
    text = Text.from_markup(text).plain
    # click's `\b` line (keep the next paragraph unwrapped) means nothing in Markdown.
    text = "\n".join(line for line in text.splitlines() if line.strip() != "\b")
    return [md(p.strip()) for p in text.split("\n\n") if p.strip()]


def _summary(raw: str | None) -> str:
    paragraphs = _plain_help(raw)
    return " ".join(paragraphs[0].split()) if paragraphs else ""


def _anchor(path: str) -> str:
    # What the toc extension makes of the heading `rl dlq release`: words joined by dashes.
    return re.sub(r"[^\w-]+", "-", path.lower()).strip("-")


def _walk(command: Command, ctx: typer.Context) -> Iterator[tuple[Command, typer.Context]]:
    """Every visible command under ``command``, depth first, in `--help` order."""
    yield command, ctx
    for name, sub in getattr(command, "commands", {}).items():
        if not sub.hidden:
            yield from _walk(sub, typer.Context(sub, info_name=name, parent=ctx))


def _param_type(param: Param, ctx: typer.Context) -> str:
    if getattr(param, "is_flag", False):
        return "flag"
    label = param.display_type(ctx).strip("<>")
    if "|" in label and not label.startswith(("list[", "%")):
        return "one of " + ", ".join(code(choice) for choice in label.split("|"))
    return label


def _param_default(param: Param) -> str:
    if param.required:
        return "required"
    if getattr(param, "is_flag", False):
        if param.secondary_opts:
            return code(param.opts[0] if param.default else param.secondary_opts[0])
        return "on" if param.default else "off"
    if param.default is None or callable(param.default):
        return "—"
    return code(str(param.default))


def _param_rows(command: Command, ctx: typer.Context) -> list[list[str]]:
    params = [p for p in command.params if not getattr(p, "hidden", False)]
    # Arguments first, in order, as the usage line shows them; options after, in code order.
    params.sort(key=lambda p: p.param_type_name != "argument")
    rows = []
    for param in params:
        if param.param_type_name == "argument":
            name = code(param.name)
        else:
            name = " / ".join(
                ", ".join(code(opt) for opt in opts)
                for opts in (param.opts, param.secondary_opts) if opts
            )
        rows.append([name, _param_type(param, ctx), _param_default(param),
                     md(param.help or "", cell=True)])
    return rows


def cli_page() -> str:
    # Importing the module adds the plugin commands (relier-lab's chaos, bench, cluster and
    # demo, through the "relier.cli" entry points): the app below is the whole of `rl`,
    # exactly what the console script runs.
    from relier.cli.main import app

    root = typer.main.get_command(app)
    root_ctx = typer.Context(root, info_name="rl")
    commands = list(_walk(root, root_ctx))

    lines = [CLI_INTRO.format(note=GENERATED_NOTE), "## Commands", ""]
    lines += table(
        ["Command", "What it does"],
        [[f"[{code(ctx.command_path)}](#{_anchor(ctx.command_path)})", _summary(cmd.help)]
         for cmd, ctx in commands[1:]],
    )
    for cmd, ctx in commands:
        depth = ctx.command_path.count(" ")
        heading = "##" if depth <= 1 else "###"
        usage = " ".join([ctx.command_path, *cmd.collect_usage_pieces(ctx)])
        lines += ["", f"{heading} {code(ctx.command_path)}", ""]
        if getattr(cmd, "deprecated", False):
            lines += ["**Deprecated.**", ""]
        for paragraph in _plain_help(cmd.help):
            lines += [paragraph, ""]
        lines += ["```text", usage, "```", ""]
        rows = _param_rows(cmd, ctx)
        if rows:
            lines += table(["Argument or option", "Type", "Default", "Description"], rows)
        subcommands = [c for c, sub_ctx in commands if sub_ctx.parent is ctx]
        if subcommands and ctx.parent is not None:
            lines += ["", "Commands: " + ", ".join(
                f"[{code(c.name)}](#{_anchor(f'{ctx.command_path} {c.name}')})"
                for c in subcommands) + "."]
    lines += ["", *cli_json_section()]
    return page(lines)


# -- Configuration reference -----------------------------------------------------------------------
CONFIG_INTRO = """\
# Configuration

{note}

Every setting is a `RELIER_*` environment variable. A process reads them once, the first time
it needs them, from three places, the first one that has a value winning:

1. the environment of the process;
2. a `.env` file in the working directory of the process (`KEY=value` lines; `#` comments,
   quotes and a leading `export` are allowed);
3. the defaults listed below.

So a variable set both in the environment and in `.env` takes the environment's value. A
change applies to processes started after it.

How values are read: `bool` settings accept `true`/`false`, `1`/`0`, `yes`/`no` and
`on`/`off`; choices (`strict | warn`) are case-insensitive; `int` settings take whole numbers
and `float` settings may have decimals (durations are in seconds); an empty value leaves an
optional setting unset.

Every value is checked when the settings load, before a worker or a dispatch uses any of them:
types, ranges and the rules between settings (a soft timeout below the hard one, for
instance). A bad value fails at load with a `ConfigurationError` that names the variable, the
value and the accepted form (secret values are shown as `***`):

```text
{example}
```

Two commands help:

- `rl config show` prints every setting in force, secrets masked, beside its default
  (`--json` for scripts);
- `rl config validate` loads the settings and checks the Redis they point at (version,
  persistence, eviction policy, scripts); it exits 1 if anything fails.

Settings marked *secret* are shown as `***` by `rl config show` and in error messages;
`rl config show` also masks the password of a Redis URL.
"""

# Section titles and one line of context per group (the `group` of each setting's metadata).
# A group missing here still gets a section, titled after its name.
GROUPS: dict[str, tuple[str, str]] = {
    "redis": ("Redis", "Where Relier keeps its ledger, leases and dead-letter queue, and how it "
                       "connects to it."),
    "envelope": ("Envelope signing", "How task payloads are signed, and whether plain Celery "
                                     "messages are accepted."),
    "tasks": ("Tasks and workers", "Defaults of every task, and how workers import and stop "
                                   "them."),
    "phoenix": ("Leases, resurrection and checkpoints", "How fast a dead worker is noticed, how "
                "its tasks come back, and where checkpoints are kept."),
    "idempotency": ("Idempotency", "How long idempotent results and in-flight claims live."),
    "admission": ("Admission control", "Cluster-wide limits on how fast tasks may be "
                                       "dispatched."),
    "otel": ("OpenTelemetry", "Spans and metrics."),
}


def _config_error_example() -> str:
    # A real error from the loader, so the example shows the message users actually get.
    try:
        Settings.load({"RELIER_HEARTBEAT_TTL": "3s"}, env_file=None)
    except ConfigurationError as exc:
        return f"relier.core.exceptions.ConfigurationError: {exc}"
    raise AssertionError("RELIER_HEARTBEAT_TTL=3s was accepted; pick another example")


def _default(info: SettingInfo) -> str:
    if info.default == "(unset)":
        return "unset"
    try:
        value = ast.literal_eval(info.default)
    except (ValueError, SyntaxError):
        value = info.default
    if value == "":
        return "empty"
    if info.secret:
        return code("***")
    if isinstance(value, bool):
        return code(str(value).lower())  # what one writes in the variable
    return code(str(value))


def config_page() -> str:
    infos = setting_infos()
    groups: dict[str, list[SettingInfo]] = {}
    for info in infos:
        groups.setdefault(info.group, []).append(info)

    lines = [CONFIG_INTRO.format(note=GENERATED_NOTE, example=_config_error_example())]
    for group, members in groups.items():
        title, blurb = GROUPS.get(group, (group.replace("_", " ").capitalize(), ""))
        lines += ["", f"## {title}", ""]
        if blurb:
            lines += [blurb, ""]
        rows = []
        for info in members:
            # An explicit anchor per variable, so other pages can link to one setting.
            variable = f'<a id="{info.variable.lower()}"></a>{code(info.variable)}'
            kind = code(info.type) + (", *secret*" if info.secret else "")
            rows.append([variable, kind, _default(info), md(info.doc, cell=True)])
        lines += table(["Variable", "Type", "Default", "Description"], rows)

    # Private on purpose in settings.py (it is not API), but the list belongs on this page.
    retired: dict[str, str] = settings_module._RETIRED
    if retired:
        lines += ["", "## Retired variables", "",
                  "Variables of earlier versions that Relier no longer reads. Setting one is an "
                  "error at load, not a silent no-op, so an upgrade cannot quietly drop a "
                  "value.", ""]
        lines += table(["Variable", "Instead"],
                       [[code(name), md(instead, cell=True)] for name, instead in retired.items()])
    return page(lines)


# -- Entry point -----------------------------------------------------------------------------------
PAGES: dict[str, Callable[[], str]] = {
    "docs/cli.md": cli_page,
    "docs/configuration.md": config_page,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a committed page differs")
    args = parser.parse_args(argv)

    stale = []
    for relative, build in PAGES.items():
        path = ROOT / relative
        expected = build()
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == expected:
            print(f"{relative}: up to date")
        elif args.check:
            stale.append(relative)
            what = "is missing" if current is None else "is out of date"
            print(f"{relative} {what}: run {REGENERATE}", file=sys.stderr)
        else:
            path.write_text(expected, encoding="utf-8", newline="\n")
            print(f"{relative}: written")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
