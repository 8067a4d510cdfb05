from __future__ import annotations

import logging

import pytest

from relier.core.exceptions import PreflightError
from relier.core.preflight import Check, PreflightReport, enforce


def report(*checks: Check) -> PreflightReport:
    return PreflightReport("redis://x", list(checks))


def test_strict_raises_with_setting_and_fix() -> None:
    bad = report(
        Check("aof", "fail", "appendonly no", "redis-cli CONFIG SET appendonly yes"),
        Check("version", "ok", "Redis 7.2"),
    )
    with pytest.raises(PreflightError) as info:
        enforce(bad, "strict")
    assert "appendonly" in str(info.value)
    assert "CONFIG SET appendonly yes" in str(info.value)
    assert "RELIER_PREFLIGHT=warn" in str(info.value)


def test_warn_mode_logs_and_continues(caplog: pytest.LogCaptureFixture) -> None:
    bad = report(Check("maxmemory-policy", "fail", "allkeys-lru", "noeviction"))
    with caplog.at_level(logging.WARNING, logger="relier.preflight"):
        enforce(bad, "warn")
    assert "allkeys-lru" in caplog.text


def test_report_lines_show_fixes_for_problems_only() -> None:
    r = report(Check("a", "ok", "fine", "never shown"), Check("b", "warn", "hmm", "do x"))
    text = "\n".join(r.lines())
    assert "never shown" not in text
    assert "fix: do x" in text
    assert r.ok
    assert [c.name for c in r.warnings] == ["b"]
