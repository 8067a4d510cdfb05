"""``rl run-resurrector``: run one resurrector (any number of replicas is safe)."""

from __future__ import annotations

import typer

from relier.cli._common import console, fail, guard, settings
from relier.core.settings import Settings

__all__ = ["run_resurrector"]


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
