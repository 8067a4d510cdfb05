"""Usage errors of the real ``rl`` entry point, the doctor's verdicts, and the JSON schema."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from relier.cli._common import print_typed
from relier.cli.doctor_cmd import requeue_consumer_check
from relier.phoenix import TaskStory
from relier.phoenix.records import Attempt, TaskRecord
from relier.phoenix.schema import (
    AttemptJSON,
    DeadLetterJSON,
    InflightJSON,
    TaskJSON,
    WorkerJSON,
    dead_letter_json,
    iso,
    task_json,
    worker_json,
)
from relier.phoenix.views import decode_worker

RL = Path(sys.executable).with_name("rl")  # the console script pyproject.toml installs


def rl(*args: str) -> subprocess.CompletedProcess[str]:
    # Nothing listens on port 1: a usage error must be reported before any Redis call.
    env = {**os.environ, "RELIER_REDIS_URL": "redis://127.0.0.1:1/0",
           "RELIER_REDIS_CONNECT_TIMEOUT": "0.2", "COLUMNS": "100"}
    return subprocess.run([str(RL), *args], env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize(("args", "needle"), [
    ((), "missing command"),
    (("tasks",), "missing command"),
    (("dlq", "show"), "missing argument 'task_id'"),
    (("tasks", "bogus"), "no such command 'bogus'"),
    (("worker", "drain"), "missing argument 'name'"),
    (("doctor", "--bogus"), "no such option: --bogus"),
    (("dlq", "list", "--limit", "many"), "--limit"),
])
def test_usage_error_is_one_line_and_exit_2(args: tuple[str, ...], needle: str) -> None:
    done = rl(*args)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("rl: error: ")
    assert needle in lines[0]
    assert lines[0].endswith(" --help'")  # and how to get help


def test_missing_command_names_the_commands() -> None:
    line = rl("tasks").stderr.strip()
    assert line == ("rl: error: rl tasks: missing command (one of: inflight, show); "
                    "see 'rl tasks --help'")


def test_help_and_version_still_exit_0() -> None:
    assert rl("--help").returncode == 0
    assert rl("tasks", "--help").returncode == 0
    shown = rl("--version")
    assert shown.returncode == 0
    assert shown.stdout.startswith("rl (relier-cli) ")


# -- doctor ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("live", [0, 2])
def test_requeue_consumer_status_agrees_with_its_text(live: int) -> None:
    missing = requeue_consumer_check(live, {"default"})
    assert missing["status"] == "warn"
    assert missing["detail"].startswith("nobody consumes it")
    assert "-Q re-queue" in missing["fix"]
    present = requeue_consumer_check(live, {"default", "re-queue"})
    assert present == {"name": "re-queue consumer", "status": "ok",
                       "detail": "a live worker consumes re-queue", "fix": ""}


# -- JSON schema -----------------------------------------------------------------------------------
T0 = 1_795_853_711_431  # 2026-11-28T08:15:11.431Z


def assert_instants_paired(data: Any) -> None:
    """Every ``_ms`` instant has its ``_at`` twin (ISO 8601 UTC), recursively."""
    if isinstance(data, list):
        for item in data:
            assert_instants_paired(item)
        return
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        if key.endswith("_ms"):
            twin = data[key.removesuffix("_ms") + "_at"]
            assert (value is None) == (twin is None), key
            if value is not None:
                assert isinstance(value, int), key
                assert twin == iso(value), key
                assert twin.endswith("Z"), key
        assert_instants_paired(value)


def typed(data: Any, capsys: pytest.CaptureFixture[str]) -> Any:
    print_typed(data)
    return json.loads(capsys.readouterr().out)


def test_iso_is_utc_with_milliseconds() -> None:
    assert iso(T0) == "2026-11-28T08:15:11.431Z"
    assert iso(0) is None
    assert iso(None) is None


def test_worker_row_types(capsys: pytest.CaptureFixture[str]) -> None:
    facts = {b"hostname": b"w1@vm", b"host": b"vm", b"pid": b"4242",
             b"queues": b"default,re-queue", b"pool": b"prefork", b"concurrency": b"4",
             b"started": str(T0).encode(), b"state": b"running",
             b"tasks": b'["app.tasks.pay", "app.tasks.refund"]'}
    info = decode_worker("w1@vm:4242:abc", facts, deadline_ms=T0 + 5000, running=3)
    row = typed([worker_json(info, now_ms=T0 + 2000)], capsys)[0]
    assert row == {
        "hostname": "w1@vm", "lease_id": "w1@vm:4242:abc", "pid": 4242, "host": "vm",
        "queues": ["default", "re-queue"], "pool": "prefork", "concurrency": 4, "running": 3,
        "state": "running", "started_at": "2026-11-28T08:15:11.431Z", "started_ms": T0,
        "lease_expires_at": "2026-11-28T08:15:16.431Z", "lease_expires_ms": T0 + 5000,
        "lease_expires_in_s": 3.0, "tasks": ["app.tasks.pay", "app.tasks.refund"],
    }
    assert set(row) == set(WorkerJSON.__struct_fields__)


def test_worker_row_of_an_expired_older_worker(capsys: pytest.CaptureFixture[str]) -> None:
    info = decode_worker("x", {b"hostname": b"old@vm", b"pid": b""}, deadline_ms=T0,
                         running=0)
    row = typed(worker_json(info, now_ms=T0 + 1500), capsys)
    assert row["state"] == "expired"
    assert row["lease_expires_in_s"] == -1.5
    assert row["pid"] is None
    assert row["queues"] == []
    assert row["tasks"] is None  # the worker does not publish its task names
    assert row["started_at"] is None
    assert row["started_ms"] is None


def record(**overrides: Any) -> TaskRecord:
    fields: dict[str, Any] = {
        "task_id": "t1", "task_name": "app.pay", "queue": "default", "state": "dead",
        "epoch": 2, "attempt": 2,
        "resurrections": 1, "max_resurrections": 5, "dispatched_ms": T0, "started_ms": T0 + 10,
        "ended_ms": T0 + 900, "envelope": b"RL\x01\x00[...]", "reason": "ValueError",
        "exc_type": "ValueError", "message": "bad amount", "traceback": "Traceback ...",
        "dead_ms": T0 + 900,
        "history": [Attempt(1, "w1@vm:41:a1b2c3", T0 + 10, T0 + 400, "killed", "signal 9"),
                    Attempt(2, "w2@vm:42:d4e5f6", T0 + 500, T0 + 900, "failed",
                            "ValueError")]}
    return TaskRecord(**{**fields, **overrides})


def test_task_json_decodes_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    story = TaskStory(record=record(), args=["acct", 5], kwargs={"note": "x"}, in_dlq=True,
                      checkpoint_bytes=12)
    data = typed(task_json(story), capsys)
    assert set(data) == set(TaskJSON.__struct_fields__)
    assert data["args"] == ["acct", 5]
    assert data["kwargs"] == {"note": "x"}
    assert data["payload_error"] is None
    assert data["payload_base64"] is None  # no raw bytes when they decode
    assert data["task"] == "app.pay"
    assert data["dead_at"] == iso(T0 + 900)
    assert data["exception"] == "ValueError"
    assert [a["outcome"] for a in data["history"]] == ["killed", "failed"]
    assert data["history"][0]["ended_at"] == iso(T0 + 400)
    assert data["history"][0]["worker"] == "w1@vm"  # a node name, as everywhere else
    assert data["history"][0]["lease_id"] == "w1@vm:41:a1b2c3"
    assert data["lease_expires_in_s"] is None
    for key in ("epoch", "attempt", "resurrections", "max_resurrections", "checkpoint_bytes",
                "republished"):
        assert type(data[key]) is int, key
    assert_instants_paired(data)


def test_task_json_keeps_raw_bytes_only_when_decoding_fails(
    capsys: pytest.CaptureFixture[str],
) -> None:
    raw = b"XX\x00tampered\xff"
    story = TaskStory(record=record(envelope=raw), envelope_error="bad magic bytes")
    data = typed(task_json(story), capsys)
    assert data["args"] is None
    assert data["kwargs"] is None
    assert data["payload_error"] == "bad magic bytes"
    assert base64.b64decode(data["payload_base64"]) == raw


def test_running_task_json(capsys: pytest.CaptureFixture[str]) -> None:
    story = TaskStory(record=record(state="running", owner="w2:1:ab", ended_ms=0, dead_ms=0,
                                    reason="", history=[]),
                      args=[], kwargs={}, owner_hostname="w2@vm", lease_expires_in_ms=2500)
    data = typed(task_json(story), capsys)
    assert data["lease_expires_in_s"] == 2.5
    assert data["ended_at"] is None
    assert data["ended_ms"] is None
    assert data["dead_at"] is None
    assert data["dead_ms"] is None
    assert data["args"] == []
    assert data["kwargs"] == {}
    assert_instants_paired(data)


def test_dead_letter_row(capsys: pytest.CaptureFixture[str]) -> None:
    data = typed([dead_letter_json(record())], capsys)
    assert data == [{"task_id": "t1", "task": "app.pay", "queue": "default",
                     "reason": "ValueError", "exception": "ValueError",
                     "message": "bad amount", "attempts": 2, "dead_at": iso(T0 + 900),
                     "dead_ms": T0 + 900}]
    assert set(data[0]) == set(DeadLetterJSON.__struct_fields__)


def test_shared_fields_mean_the_same_everywhere() -> None:
    # One schema: a field name shared by several outputs has one type everywhere.
    seen: dict[str, Any] = {}
    for struct in (TaskJSON, AttemptJSON, DeadLetterJSON, InflightJSON, WorkerJSON):
        hints = msgspec.inspect.type_info(struct)
        for field in hints.fields:  # type: ignore[attr-defined]
            if field.name in seen:
                assert seen[field.name] == field.type, (struct.__name__, field.name)
            seen[field.name] = field.type
    for name in seen:
        assert not name.endswith("_ms") or name.removesuffix("_ms") + "_at" in seen, name


def test_result_of_a_type_json_cannot_name_is_its_repr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Money:
        def __repr__(self) -> str:
            return "Money(5, 'EUR')"

    story = TaskStory(record=record(state="done"), args=[], kwargs={}, result=Money())
    assert typed(task_json(story), capsys)["result"] == "Money(5, 'EUR')"


# -- drain progress --------------------------------------------------------------------------------
def screen(output: str) -> list[str]:
    """What a terminal shows after ``output``: ``\\r`` returns to the start of the line."""
    rows, col = [[]], 0
    for char in output:
        if char == "\r":
            col = 0
        elif char == "\n":
            rows.append([])
            col = 0
        else:
            row = rows[-1]
            row[col:col + 1] = [char]
            col += 1
    return ["".join(r).rstrip() for r in rows if "".join(r).strip()]


@pytest.mark.parametrize("tty", [True, False])
def test_drain_progress_leaves_no_remnants(tty: bool, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    from relier.cli.worker_cmd import Progress as _Progress

    progress = _Progress(tty)
    for line in ("  waiting: 12 task(s) still running", "  waiting: 12 task(s) still running",
                 "  waiting: 1 task(s) still running"):
        progress.show(line)
    progress.done("w1@vm drained and exited")
    out = capsys.readouterr().out
    if tty:
        assert screen(out) == ["w1@vm drained and exited"]
    else:
        assert "\r" not in out
        assert out.split("\n") == ["  waiting: 12 task(s) still running",
                                   "  waiting: 1 task(s) still running",
                                   "w1@vm drained and exited", ""]


def test_tables_and_errors_show_brackets_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    import typer

    from relier.cli._common import fail, table

    table("t", ["message"], [["[ok] [bold]not bold[/bold]"]])
    assert "[ok] [bold]not bold[/bold]" in capsys.readouterr().out
    with pytest.raises(typer.Exit):
        fail("no live worker named '[w]'")
    assert "no live worker named '[w]'" in capsys.readouterr().err
