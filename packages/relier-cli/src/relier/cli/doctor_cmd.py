"""``rl doctor``: is this cluster healthy (read-only; the facts come from the ledger)?"""

from __future__ import annotations

from typing import Any

import typer

from relier.cli._common import JSON_OPTION, console, escape, guard, ledger, print_json, settings
from relier.core.queues import RECOVERY_QUEUE
from relier.core.settings import Settings

__all__ = ["doctor", "doctor_report", "envelope_checks", "requeue_consumer_check"]


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
    s = settings()
    led = ledger()
    report = led.preflight(write=False)
    checks = [{"name": c.name, "status": c.status, "detail": c.detail, "fix": c.fix}
              for c in report.checks]
    checks += envelope_checks(s)
    data: dict[str, Any] = {"redis": report.url, "checks": checks, "healthy": report.ok}
    if report.failures and report.checks[0].name == "connection" and \
            report.checks[0].status == "fail":
        return data
    health = led.health()
    live, expired = health.live_workers, health.expired_workers
    data.update(workers=len(live), expired_workers=len(expired),
                resurrectors=health.resurrectors, queues=health.queue_depths,
                dead_letters=health.dead_letters, scheduled=health.scheduled)

    def add(name: str, ok: bool, detail: str, fix: str, status_if_bad: str = "fail") -> None:
        checks.append({"name": name, "status": "ok" if ok else status_if_bad,
                       "detail": detail, "fix": "" if ok else fix})

    add("workers", bool(live), f"{len(live)} live" + (
        f", {len(expired)} expired (their tasks await the resurrector)" if expired else ""),
        "start workers: celery -A relier.tasks.app worker -Q "
        + ",".join([*s.queue_names(), RECOVERY_QUEUE]))
    add("resurrector", bool(health.resurrectors), f"{health.resurrectors} live",
        "run `rl run-resurrector` (one or two per cluster)")
    checks.append(requeue_consumer_check(len(live), set(health.consumed_queues)))
    add("dead-letter queue", True, f"{data['dead_letters']} entries", "")
    add("scheduled tasks", bool(health.resurrectors) or not health.scheduled,
        f"{health.scheduled} waiting in Redis for their countdown or eta",
        "run `rl run-resurrector`: it promotes scheduled tasks when due; without one they "
        "never run")
    if live:
        from relier.phoenix.registry import unregistered_queued

        sample = 500
        missing, seen = unregistered_queued(led, list(health.queue_depths), sample)
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
    if RECOVERY_QUEUE in consumed:
        return {"name": "re-queue consumer", "status": "ok",
                "detail": f"a live worker consumes {RECOVERY_QUEUE}", "fix": ""}
    return {"name": "re-queue consumer", "status": "warn",
            "detail": "nobody consumes it" + ("" if live else " (no live worker)"),
            "fix": f"add -Q {RECOVERY_QUEUE} to a worker, or resurrected and handed-off tasks "
                   "never run"}


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
