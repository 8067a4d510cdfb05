"""Every ``rl`` command against a real Redis and real worker processes."""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from relier_testing import tasks
from relier_testing.helpers import counter, record, wait_for
from relier_testing.redis_server import LocalRedis
from relier_testing.workers import WorkerProcess

CHAOS = {"RELIER_IMPORTS": "relier_testing.tasks,relier.lab.chaos_tasks"}


def rl(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
       timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relier.cli", *args],
                          env={**os.environ, **(env or {})}, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def rl_json(*args: str, **kwargs: Any) -> Any:
    done = rl(*args, "--json", **kwargs)
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def client(relier_env: dict[str, str]) -> redis.Redis:
    return redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])


def assert_schema(data: Any) -> None:
    """The JSON conventions: every `_ms` instant (an int) has its ISO 8601 UTC `_at` twin."""
    if isinstance(data, list):
        for item in data:
            assert_schema(item)
        return
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        if key.endswith("_ms"):
            twin = data[key.removesuffix("_ms") + "_at"]
            if value is None:
                assert twin is None, key
            else:
                assert type(value) is int, key
                moment = dt.datetime.fromisoformat(twin.replace("Z", "+00:00"))
                assert twin.endswith("Z"), key
                assert round(moment.timestamp() * 1000) == value, key
        assert_schema(value)


def assert_one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.strip().startswith("rl: error:")
    for needle in needles:
        assert needle in done.stderr


def test_doctor_warns_while_envelopes_are_unsigned(relier_env: dict[str, str]) -> None:
    def checks(env: dict[str, str]) -> dict[str, dict[str, str]]:
        return {c["name"]: c for c in rl_json("doctor", env=env)["checks"]}

    unsigned = checks({})  # the defaults: no keys, RELIER_ACCEPT_UNSIGNED on
    assert unsigned["envelope signing"]["status"] == "warn"
    assert "RELIER_SIGNING_KEYS is empty" in unsigned["envelope signing"]["detail"]
    legacy = unsigned["unsigned legacy messages"]
    assert legacy["status"] == "warn"
    assert "accepted while RELIER_ACCEPT_UNSIGNED is on" in legacy["detail"]
    assert "WARN envelope signing" in rl("doctor").stdout
    strict = checks({"RELIER_SIGNING_KEYS": "k1:0123456789abcdef0123456789",
                     "RELIER_ACCEPT_UNSIGNED": "false"})
    assert strict["envelope signing"]["status"] == "ok"
    assert strict["unsigned legacy messages"]["status"] == "ok"


@pytest.mark.parametrize("url", ["redis://:s3cr/et#x@127.0.0.1:1/0",
                                 "http://app:s3cr3t@127.0.0.1:1/0"])
def test_bad_url_errors_never_print_the_password(relier_env: dict[str, str], url: str) -> None:
    for args in (("config", "validate"), ("doctor",), ("config", "show")):
        done = rl(*args, env={"RELIER_REDIS_URL": url})
        assert done.returncode != 0, (args, done.stdout)
        assert "s3cr" not in done.stdout + done.stderr, args
        assert "RELIER_REDIS_URL" in done.stdout + done.stderr, args


def test_doctor_healthy_and_unhealthy(relier_worker: Callable[..., WorkerProcess],
                                      resurrector: Callable[..., WorkerProcess]) -> None:
    sick = rl("doctor")
    assert sick.returncode == 1
    assert "FAIL workers" in sick.stdout
    # The verdict and its words agree: nobody consumes re-queue is a warning, never "ok".
    assert "WARN re-queue consumer: nobody consumes it" in sick.stdout
    assert {"name": "re-queue consumer", "status": "warn",
            "detail": "nobody consumes it (no live worker)",
            "fix": "add -Q re-queue to a worker, or resurrected and handed-off tasks never run"
            } in rl_json("doctor")["checks"]
    relier_worker(concurrency=1)
    resurrector()
    data = rl_json("doctor")
    assert data["healthy"], data
    assert data["workers"] == 1
    assert data["resurrectors"] == 1
    assert set(data["queues"]) >= {"default", "re-queue"}
    assert rl("doctor").returncode == 0
    down = rl("doctor", env={"RELIER_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert down.returncode == 1
    assert "cannot reach Redis" in down.stdout


def test_config_show_masks_and_validate_reports(relier_env: dict[str, str]) -> None:
    shown = rl_json("config", "show", env={"RELIER_SIGNING_KEYS": "k:0123456789abcdefXYZ"})
    assert shown["RELIER_SIGNING_KEYS"] == "***"
    assert shown["RELIER_REDIS_URL"] == relier_env["RELIER_REDIS_URL"]
    valid = rl("config", "validate")
    assert valid.returncode == 0
    assert "  [ok  ] connection: " in valid.stdout  # rich markup no longer eats the marks
    assert "  [ok  ] maxmemory-policy: " in valid.stdout
    bad = rl("config", "validate", env={"RELIER_MAX_RESURRECTIONS": "-3"})
    assert_one_line_error(bad, "RELIER_MAX_RESURRECTIONS", "-3", "0 or more")
    assert bad.returncode == 1


def test_tasks_inflight_and_show(relier_worker: Callable[..., WorkerProcess],
                                 client: redis.Redis) -> None:
    worker = relier_worker(concurrency=1)
    receipt = tasks.checkpointed.push(40, "cli", pause=0.3)
    wait_for(lambda: counter(client, "item", "cli:2"), 15, "progress")
    rows = rl_json("tasks", "inflight")
    (row,) = rows
    assert row["task_id"] == receipt.id
    assert row["worker"] == worker.hostname
    assert row["attempt"] == 1
    assert row["checkpoint_bytes"] > 0
    assert row["lease_expired"] is False
    assert row["age_s"] >= 0
    assert row["started_ms"] <= row["lease_renewed_ms"] < row["lease_expires_ms"]
    assert_schema(row)
    assert rl_json("tasks", "inflight", "--worker", "nobody@nowhere") == []
    table = rl("tasks", "inflight")
    assert receipt.id in table.stdout
    story = rl_json("tasks", "show", receipt.id)
    assert story["state"] == "running"
    assert story["owner_hostname"] == worker.hostname
    assert story["args"] == [40, "cli"]
    assert story["kwargs"] == {"pause": 0.3}
    assert story["payload_base64"] is None
    assert 0 < story["lease_expires_in_s"] <= 3
    assert_schema(story)
    receipt.get(timeout=30)
    finished = rl_json("tasks", "show", receipt.id)
    assert finished["state"] == "done"
    assert [a["outcome"] for a in finished["history"]] == ["completed"]
    assert_schema(finished)
    shown = rl("tasks", "show", receipt.id)
    assert "done" in shown.stdout
    assert "completed" in shown.stdout
    missing = rl("tasks", "show", "no-such-task")
    assert_one_line_error(missing, "no task no-such-task")
    assert missing.returncode == 1


def test_dlq_commands(relier_worker: Callable[..., WorkerProcess],
                      client: redis.Redis) -> None:
    relier_worker(concurrency=1)
    client.set("test:broken:d1", 1)
    failed = tasks.flaky.push("d1")
    other = tasks.fail.push("boom")
    wait_for(lambda: client.zcard("rl:dlq") == 2, 20, "two dead letters")
    listed = rl_json("dlq", "list")
    assert {e["task_id"] for e in listed} == {failed.id, other.id}
    assert [e["task_id"] for e in rl_json("dlq", "list", "--reason", "ValueError")] == [
        other.id]
    assert [e["task_id"] for e in rl_json("dlq", "list", "--task",
                                          "relier_testing.tasks.flaky")] == [failed.id]
    for row in listed:
        assert type(row["attempts"]) is int
        assert_schema(row)
    entry = rl_json("dlq", "show", failed.id)
    assert entry["reason"] == "RuntimeError"
    assert "d1 is broken" in entry["traceback"]
    # Decoded like `rl tasks show` (one decoder), not base64 blobs.
    assert entry["args"] == ["d1"]
    assert entry["payload_base64"] is None
    assert entry["in_dlq"] is True
    assert entry == rl_json("tasks", "show", failed.id)
    assert_schema(entry)
    # Bytes that cannot be decoded stay available, as base64, with the reason.
    client.set(f"rl:e:{{{other.id}}}", b"not an envelope")
    tampered = rl_json("dlq", "show", other.id)
    assert tampered["args"] is None
    assert "not a Relier envelope" in tampered["payload_error"]
    assert base64.b64decode(tampered["payload_base64"]) == b"not an envelope"
    assert "d1 is broken" in rl("dlq", "show", failed.id).stdout
    client.delete("test:broken:d1")
    assert rl("dlq", "release", failed.id).returncode == 0
    assert failed.get(timeout=20) == "d1 ok"
    assert_one_line_error(rl("dlq", "release", failed.id), "not in the dead-letter queue")
    refused = rl("dlq", "purge")
    assert_one_line_error(refused, "without --yes")
    assert client.zcard("rl:dlq") == 1
    assert rl("dlq", "purge", "--yes").returncode == 0
    assert client.zcard("rl:dlq") == 0
    client.set("test:broken:d2", 1)
    redo = tasks.flaky.push("d2")
    wait_for(lambda: client.zcard("rl:dlq") == 1, 20, "dead letter")
    client.delete("test:broken:d2")
    assert "released 1" in rl("dlq", "release", "--all", "--reason", "RuntimeError").stdout
    assert redo.get(timeout=20) == "d2 ok"


def test_worker_list_and_drain(relier_worker: Callable[..., WorkerProcess],
                               client: redis.Redis) -> None:
    worker = relier_worker(concurrency=1)
    rows = rl_json("worker", "list")
    (row,) = rows
    assert row["hostname"] == worker.hostname
    assert row["pid"] == worker.pid  # numbers as numbers
    assert row["concurrency"] == 1
    assert row["queues"] == ["default", "high_priority", "low_priority", "re-queue"]
    assert row["state"] == "running"
    assert 0 < row["lease_expires_in_s"] <= 3
    assert_schema(row)
    receipt = tasks.record.push("drain-cli", 10.0)
    wait_for(lambda: counter(client, "start", "drain-cli"), 15, "start")
    # Bytes, not text: text mode's universal newlines would turn a `\r` into a line break.
    done = subprocess.run([sys.executable, "-m", "relier.cli", "worker", "drain",
                           worker.hostname, "--timeout", "1"], env=os.environ.copy(),
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # Piped (not a terminal): one clean line per state change, no carriage returns.
    out = done.stdout.decode()
    assert "\r" not in out
    lines = out.removesuffix("\n").split("\n")
    assert lines[0].startswith(f"asked {worker.hostname} to drain (1 process(es)")
    assert lines[-1] == f"{worker.hostname} drained and exited"
    waiting = lines[1:-1]
    assert waiting, done.stdout
    assert all(re.fullmatch(r"  waiting: \d+ task\(s\) still running", w) for w in waiting)
    assert all(a != b for a, b in itertools.pairwise(waiting))  # changes only
    assert worker.wait(10) == 0
    assert record(client, receipt.id).history[-1].outcome == "handoff"
    assert_one_line_error(rl("worker", "drain", "ghost@nowhere"), "no live worker")


def test_run_resurrector_command(relier_worker: Callable[..., WorkerProcess],
                                 relier_env: dict[str, str], client: redis.Redis) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "relier.cli", "run-resurrector",
                             "--interval", "0.2"], env={**os.environ, **relier_env},
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        doomed = relier_worker(concurrency=1)
        receipt = tasks.record.push("res-cli", 3.0)
        wait_for(lambda: counter(client, "start", "res-cli"), 15, "start")
        doomed.kill_group(signal.SIGKILL)
        relier_worker(concurrency=1)
        assert receipt.get(timeout=30) == "res-cli"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    assert_one_line_error(rl("run-resurrector", "--interval", "0"), "--interval")


def test_run_resurrector_refuses_a_redis_that_could_lose_tasks(
    local_redis_factory: Callable[..., LocalRedis], relier_env: dict[str, str],
) -> None:
    server = local_redis_factory(maxmemory_policy="allkeys-lru")
    done = rl("run-resurrector", env={**relier_env, "RELIER_REDIS_URL": server.url}, timeout=30)
    assert done.returncode == 2  # a configuration error, not a crash
    assert "Traceback" not in done.stderr
    assert "rl: error:" in done.stderr
    assert "noeviction" in done.stderr


def test_chaos_scenarios(relier_worker: Callable[..., WorkerProcess],
                         resurrector: Callable[..., WorkerProcess], client: redis.Redis) -> None:
    resurrector()
    relier_worker(concurrency=2, env=CHAOS)
    relier_worker(concurrency=2, env=CHAOS)
    killed = rl("chaos", "worker-kill", "--watch", "--seconds", "1", env=CHAOS)
    assert killed.returncode == 0, killed.stdout + killed.stderr
    assert "lease_expired" in killed.stdout or "lease expired" in killed.stdout
    assert "done attempt 2" in killed.stdout
    relier_worker(concurrency=2, env=CHAOS)  # replace the victim
    child = rl("chaos", "child-kill", "--seconds", "1", env=CHAOS)
    assert child.returncode == 0, child.stdout + child.stderr
    assert float(child.stdout.rsplit("after ", 1)[1].rstrip("s\n")) < 1.0
    poison = rl("chaos", "poison", env=CHAOS)
    assert poison.returncode == 0, poison.stdout + poison.stderr
    assert "PayloadIntegrityError" in poison.stdout
    spike = rl("chaos", "load-spike", "--rps", "100", "--duration", "2",
               env={**CHAOS, "RELIER_ADMISSION_LIMIT": "50", "RELIER_ADMISSION_WINDOW": "10"})
    assert spike.returncode == 0, spike.stderr
    admitted = int(spike.stdout.split("admitted ")[1].split(",")[0])
    assert 40 <= admitted <= 50  # the window also counts this test's earlier dispatches
    assert "Retry-After" in spike.stdout


def test_chaos_redis_restart(local_redis_factory: Callable[..., LocalRedis],
                             worker_factory: Callable[..., WorkerProcess],
                             resurrector: Callable[..., WorkerProcess],
                             relier_env: dict[str, str]) -> None:
    server = local_redis_factory()
    env = {**relier_env, **CHAOS, "RELIER_REDIS_URL": server.url}
    worker_factory("relier.tasks.app", env=env, concurrency=2).wait_ready()
    assert_one_line_error(rl("chaos", "redis-restart", env=env), "no live resurrector")
    resurrector(env=env)
    done = rl("chaos", "redis-restart", "--tasks", "10", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "delivered 10 of 10, lost 0" in done.stdout


def test_bench_json(relier_env: dict[str, str]) -> None:
    data = rl_json("bench", "admission", timeout=300)
    check = data["results"]["admission"]["check"]
    assert check["n"] == 10_000
    assert 0 < check["p50"] <= check["p99"]
    assert data["machine"]["cores"] >= 1
    assert_one_line_error(rl("bench", "nonsense"), "unknown benchmark")


def test_cluster_up_status_down(tmp_path: Path, local_redis_factory: Any) -> None:
    port = LocalRedis().port  # a free port, no server on it yet
    env = {"RELIER_REDIS_URL": f"redis://127.0.0.1:{port}/0", "RELIER_PREFLIGHT": "strict"}
    up = rl("cluster", "up", "--workers", "1", "--concurrency", "1", env=env, cwd=tmp_path,
            timeout=180)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "Redis started" in up.stdout
        status = rl_json("cluster", "status", env=env, cwd=tmp_path)
        assert status["running"]
        roles = sorted(p["role"] for p in status["processes"] if p["alive"])
        assert roles == ["recovery", "redis", "resurrector", "worker"]
        doctor = rl_json("doctor", cwd=tmp_path,
                         env={k: v for k, v in env.items() if k != "RELIER_REDIS_URL"}
                         | {"RELIER_REDIS_URL": ""})
        assert doctor["healthy"], doctor
    finally:
        down = rl("cluster", "down", env=env, cwd=tmp_path, timeout=120)
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout
    assert not (tmp_path / ".relier" / "cluster.json").exists()
    assert_one_line_error(rl("cluster", "status", cwd=tmp_path), "no local cluster")


def test_demo_end_to_end(tmp_path: Path) -> None:
    done = rl("demo", "--orders", "40", "--charges", "9", cwd=tmp_path, timeout=300,
              env={"RELIER_REDIS_URL": ""})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every task that entered, left" in done.stdout
    assert "lost               0" in done.stdout
    assert "duplicates stopped 6 of 9" in done.stdout
    assert "nothing left running" in done.stdout
    assert not (tmp_path / ".relier" / "demo").exists()


READ_ONLY = {"zrangebyscore", "zrange", "zscore", "zcard", "hget", "hgetall", "hmget",
             "hkeys", "hvals", "hstrlen", "smembers", "scard", "llen", "get", "time", "ping",
             "info", "script|exists", "client|setinfo", "memory|usage", "exists", "lrange",
             "hello", "zrevrange"}


def test_read_only_commands_never_write(relier_worker: Callable[..., WorkerProcess],
                                        client: redis.Redis) -> None:
    worker = relier_worker(concurrency=1)
    done = tasks.multiply.push(2, 3)
    done.get(timeout=20)
    running = tasks.record.push("ro", 30.0)
    wait_for(lambda: counter(client, "start", "ro"), 15, "start")
    worker.kill_group(signal.SIGSTOP)  # frozen: it writes nothing during the check
    try:
        client.config_resetstat()
        for args in (("doctor", "--json"), ("config", "show", "--json"),
                     ("tasks", "inflight", "--json"), ("tasks", "show", running.id),
                     ("tasks", "show", done.id, "--json"), ("dlq", "list", "--json"),
                     ("worker", "list", "--json")):
            rl(*args)
        used = {k.removeprefix("cmdstat_") for k in client.info("commandstats")}
        assert used - READ_ONLY - {"config|resetstat"} == set(), used - READ_ONLY
    finally:
        worker.kill_group(signal.SIGCONT)


def test_a_scheduled_task_shows_its_due_time_and_doctor_counts_it(
        relier_env: dict[str, str]) -> None:
    receipt = tasks.record.with_options(countdown=600).push("due-later")
    data = rl_json("tasks", "show", receipt.id)
    assert_schema(data)
    assert data["state"] == "scheduled"
    assert data["due_ms"] - data["dispatched_ms"] >= 599_000
    shown = rl("tasks", "show", receipt.id).stdout
    assert "scheduled" in shown
    assert "due" in shown
    doctor = rl_json("doctor")
    assert doctor["scheduled"] == 1
    assert {"name": "scheduled tasks", "status": "fail",
            "detail": "1 waiting in Redis for their countdown or eta",
            "fix": "run `rl run-resurrector`: it promotes scheduled tasks when due; without "
                   "one they never run"} in doctor["checks"]
