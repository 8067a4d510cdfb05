"""The CLI without Redis: help, settings, errors, formatting."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from relier.cli._common import ago, to_plain
from relier.cli.main import app

runner = CliRunner()


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    # chaos, bench, cluster and demo are relier-lab's (packages/relier-lab/tests).
    for command in ("doctor", "config", "tasks", "dlq", "worker", "run-resurrector"):
        assert command in result.output


def test_config_show_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from relier.core.settings import reset_settings

    monkeypatch.setenv("RELIER_SIGNING_KEYS", "k1:super-secret-value-123")
    monkeypatch.setenv("RELIER_REDIS_URL", "redis://:hunter2@example:6379/0")
    reset_settings(None)
    try:
        result = runner.invoke(app, ["config", "show", "--json"])
    finally:
        reset_settings(None)
    assert result.exit_code == 0
    assert "super-secret" not in result.output
    assert "hunter2" not in result.output
    assert '"RELIER_SIGNING_KEYS": "***"' in result.output


def test_bad_setting_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    from relier.core.settings import reset_settings

    monkeypatch.setenv("RELIER_HEARTBEAT_TTL", "soon")
    reset_settings(None)
    try:
        result = runner.invoke(app, ["config", "show"])
    finally:
        reset_settings(None)
    assert result.exit_code == 2
    assert "RELIER_HEARTBEAT_TTL='soon'" in result.output
    assert "Traceback" not in result.output


def test_dlq_purge_requires_yes_before_touching_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    from relier.core.settings import reset_settings

    monkeypatch.setenv("RELIER_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("RELIER_REDIS_CONNECT_TIMEOUT", "0.2")
    reset_settings(None)
    try:
        result = runner.invoke(app, ["dlq", "purge", "some-id"])
    finally:
        reset_settings(None)
    assert result.exit_code == 2
    assert "without --yes" in result.output


def test_ago_and_plain() -> None:
    assert ago(850) == "850ms"
    assert ago(12_300) == "12.3s"
    assert ago(245_000) == "4m05s"
    assert ago(7_800_000) == "2h10m"
    assert to_plain({"a": b"x", "b": (1, 2)}) == {"a": "x", "b": [1, 2]}
