"""What every ``rl`` command shares: settings, the ledger, output (tables or JSON), errors."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import msgspec
import typer
from rich.console import Console
from rich.markup import escape as _markup_escape
from rich.table import Table

from relier.core.settings import Settings, get_settings

if TYPE_CHECKING:
    from relier.phoenix import Ledger

# Piped output (scripts, logs) gets wide lines: a task id folded across two lines cannot be
# copied back into the next command.
_WIDTH = None if sys.stdout.isatty() else 220
console = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True, width=_WIDTH)

# C0 controls but newline and tab, DEL and C1 controls: bytes that drive a terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def escape(value: str) -> str:
    r"""Data made safe to print: rich markup escaped, control characters shown as ``\xNN``.

    Task names, reasons and messages can come from unsigned message headers (a plain Celery
    message, one for a task nobody registered): printed raw, an escape sequence in them would
    drive the operator's terminal (clear it, retitle it, write the clipboard with OSC 52).
    """
    return _markup_escape(_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value))


JSON_OPTION = typer.Option(False, "--json", help="Print JSON (one document) instead of a table.")


def fail(message: str, code: int = 2) -> NoReturn:
    """One clear line on stderr and a non-zero exit; never a traceback."""
    err.print(f"[red]rl: error:[/red] {escape(message)}")
    raise typer.Exit(code)


def settings() -> Settings:
    """The settings in force (``RELIER_*``, ``.env``, or the local cluster's Redis)."""
    from relier.cli.local import adopt_local_cluster

    adopt_local_cluster()
    return get_settings()


def ledger() -> Ledger:
    """A ledger over the settings in force."""
    from relier.phoenix import Ledger

    return Ledger(settings())


def print_json(data: Any) -> None:
    """Write ``data`` as JSON to stdout."""
    sys.stdout.write(json.dumps(to_plain(data), indent=2, default=str) + "\n")


def to_plain(data: Any) -> Any:
    """Msgspec structs and bytes into JSON-friendly values."""
    if isinstance(data, msgspec.Struct):
        return to_plain(msgspec.to_builtins(data, enc_hook=repr))
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    if isinstance(data, dict):
        return {str(k): to_plain(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [to_plain(v) for v in data]
    return data


def table(title: str, columns: Sequence[str], rows: list[Sequence[Any]],
          empty: str = "nothing to show") -> None:
    """Print a rich table, or a line saying it is empty."""
    if not rows:
        console.print(f"[dim]{title}: {empty}[/dim]")
        return
    t = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        t.add_column(column, overflow="fold", no_wrap=column.endswith("id"))
    for row in rows:
        t.add_row(*[escape(str(c)) for c in row])  # cells are data, never rich markup
    console.print(t)


def when(ms: int) -> str:
    """A Redis-clock time in ms as local ISO time ('' for 0)."""
    if not ms:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000).isoformat(sep=" ", timespec="milliseconds")


def ago(ms: float) -> str:
    """A duration in ms, compact (``850ms``, ``12.3s``, ``4m05s``, ``2h10m``)."""
    if ms < 1000:
        return f"{ms:.0f}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def with_redis_errors(*kinds: type[Exception]) -> tuple[type[Exception], ...]:
    """``kinds`` plus redis-py's error class once a command has imported redis-py.

    For ``except with_redis_errors(...)``, which Python evaluates only when an exception
    reaches it. Importing redis-py up front would cost every ``rl`` call half a second (its
    package imports redis.asyncio), and ``rl --help`` needs no Redis at all; before a command
    imports redis-py, no redis-py error can be raised.
    """
    module = sys.modules.get("redis")
    return (*kinds, module.RedisError) if module is not None else kinds


def guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn Relier and Redis errors raised by a command into one line and an exit code.

    Exit codes: 0 success, 1 "not found" or an unhealthy verdict, 2 a usage, configuration
    or connection error.
    """
    import functools

    from relier.core.exceptions import RelierError, TaskNotFoundError

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TaskNotFoundError as exc:
            fail(str(exc), 1)  # a lookup that found nothing: 1, like grep
        except with_redis_errors(RelierError, FileNotFoundError) as exc:
            fail(str(exc))

    return wrapper


def _fallback(value: Any) -> Any:
    # A decoded argument or result of a type JSON has no word for: its repr, never a crash.
    return repr(value)


def print_typed(data: Any) -> None:
    """Write a schema struct of ``relier.phoenix.schema`` (or a list) as indented JSON."""
    raw = msgspec.json.encode(data, enc_hook=_fallback)
    sys.stdout.write(msgspec.json.format(raw, indent=2).decode() + "\n")
