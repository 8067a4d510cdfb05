"""The worker runtime keeps the promise: a task leaves once, never loops, never vanishes.

Regression tests of issue 10 (items 2, 7 and 13), with real workers on a real Redis.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from relier_testing import runtime_tasks
from relier_testing.helpers import KEYS, counter, plain_message, record, wait_for
from relier_testing.workers import ManagedProcess, WorkerProcess

IMPORTS = {"RELIER_IMPORTS": "relier_testing.tasks,relier_testing.runtime_tasks"}


@pytest.fixture
def client(relier_env: dict[str, str]) -> redis.Redis:
    return redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])


def dead(client: redis.Redis, task_id: str) -> bool:
    return client.hget(KEYS.task(task_id), "s") == b"dead"


# -- item 2: a body raising a shutdown exception is not a hand-off -----------------------------
@pytest.mark.parametrize(("task", "pool", "name"), [
    ("raises_cancelled", "prefork", "asyncio.CancelledError"),
    ("raises_system_exit", "solo", "SystemExit"),
    ("raises_keyboard_interrupt", "prefork", "KeyboardInterrupt"),
])
def test_body_raising_shutdown_exception_runs_once_and_is_dead_lettered(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis, task: str, pool: str,
    name: str,
) -> None:
    relier_worker(pool=pool, concurrency=1, env=IMPORTS)
    receipt = getattr(runtime_tasks, task).push(task)
    wait_for(lambda: dead(client, receipt.id), 20, f"{task} dead-lettered")
    time.sleep(1.5)  # a looping task would have run again by now
    assert counter(client, "start", task) == 1
    rec = record(client, receipt.id)
    assert rec.state == "dead"
    assert rec.reason == name.rsplit(".", 1)[-1]
    assert name in rec.message
    assert "not shutting down" in rec.message
    assert client.zscore(KEYS.dlq, receipt.id) is not None
    assert len(rec.history) == 1


def _running_task(ledger: object, worker_id: str) -> str:
    """A task dispatched and claimed by ``worker_id`` (no worker process involved)."""
    from relier.phoenix import Ledger

    assert isinstance(ledger, Ledger)
    receipt = runtime_tasks.echo.push("x")
    ledger.register_worker(worker_id, ttl_ms=60_000, facts={"hostname": "h"})
    reply = ledger.claim(task_id=receipt.id, worker_id=worker_id, queue="default")
    assert reply.kind == "claimed"
    return receipt.id


def test_hand_offs_are_capped_in_the_requeue_script(
    relier_env: dict[str, str], client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relier.core.settings import reset_settings
    from relier.phoenix import Ledger

    monkeypatch.setenv("RELIER_MAX_HANDOFFS", "2")
    reset_settings(None)
    ledger = Ledger()
    task_id = _running_task(ledger, "w1")
    outcomes = []
    for _ in range(3):
        outcomes.append(ledger.requeue(task_id, owner="w1", kind="handoff",
                                       cause="drain deadline").kind)
        if outcomes[-1] == "done":  # the next incarnation, on the same worker
            assert ledger.claim(
                task_id=task_id, worker_id="w1", queue="re-queue").kind == "claimed"
    assert outcomes == ["done", "done", "dead"]
    rec = record(client, task_id)
    assert rec.state == "dead"
    assert rec.reason == "max_handoffs_exceeded"
    assert "RELIER_MAX_HANDOFFS=2" in rec.message
    assert rec.resurrections == 0  # hand-offs are not deaths
    assert client.zscore(KEYS.dlq, task_id) is not None


def test_shutting_down_is_read_from_the_worker_state(
    relier_env: dict[str, str], client: redis.Redis
) -> None:
    from relier.phoenix import Ledger
    from relier.phoenix.drain import _draining as drain_flag
    from relier.phoenix.drain import shutting_down

    ledger = Ledger()
    # This process is no worker: a drain begun here by another test must not answer for "w1".
    assert not drain_flag.is_set(), "a test left this process's drain flag set"
    client.hset(KEYS.worker("w1"), mapping={"hostname": "h", "state": "running"})
    assert not shutting_down(ledger, "w1", settle=0.2)
    client.hset(KEYS.worker("w1"), "state", "draining")
    assert shutting_down(ledger, "w1", settle=0.2)


def rl(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relier.cli", *args], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=60, check=False)


# -- item 7: a legacy message that cannot be adopted is dead-lettered with its raw body -----
@pytest.mark.parametrize("accept_unsigned", ["true", "false"])
def test_unadoptable_legacy_message_is_dead_lettered_with_its_raw_body(
    relier_worker: Callable[..., WorkerProcess], relier_env: dict[str, str],
    client: redis.Redis, accept_unsigned: str,
) -> None:
    relier_worker(concurrency=1, env={**IMPORTS, "RELIER_ACCEPT_UNSIGNED": accept_unsigned})
    task_id = plain_message(runtime_tasks.echo, float("nan")).id
    wait_for(lambda: client.zscore(KEYS.dlq, task_id) is not None, 20,
             "the legacy message in the DLQ")
    rec = record(client, task_id)
    assert rec.state == "dead"
    assert rec.task_name == "relier_testing.runtime_tasks.echo"
    assert rec.reason == ("LegacyAdoptionFailed" if accept_unsigned == "true"
                          else "LegacyMessageRejectedError")
    if accept_unsigned == "true":
        assert "nan" in rec.message
        assert "push()" in rec.message
    raw = client.get(KEYS.envelope(task_id))
    assert raw is not None
    assert raw.startswith(b"[[NaN], {}")  # the body as Celery sent it
    assert counter(client, "start", "echo") == 0  # never ran
    listed = rl("dlq", "list", env=relier_env)
    assert listed.returncode == 0, listed.stderr
    assert task_id[:8] in listed.stdout
    shown = rl("dlq", "show", task_id, env=relier_env)
    assert shown.returncode == 0, shown.stderr
    assert rec.reason in shown.stdout


# -- item 13: the documented worker command registers the project's tasks; an unregistered
# -- task is re-queued for a worker that has it or dead-lettered promptly -----------------------
SEED_COMMAND = ("celery -A relier.tasks.app worker -l info "
                "-Q high_priority,default,low_priority,re-queue")

PROJECT_TASKS = '''
from relier import rl_task


@rl_task()
def greet(name: str) -> str:
    return f"hello {name}"
'''


def test_seed_worker_command_imports_tasks_py_from_its_directory(
    relier_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tasks.py").write_text(PROJECT_TASKS)
    env = {k: v for k, v in relier_env.items() if k != "RELIER_IMPORTS"}
    monkeypatch.delenv("RELIER_IMPORTS")
    celery = str(Path(sys.executable).parent / "celery")
    worker = ManagedProcess([celery, *SEED_COMMAND.split()[1:]], env=env, cwd=tmp_path)
    worker.ready_marker = " ready."
    assert "RELIER_IMPORTS" not in worker.env
    worker.start()
    try:
        worker.wait_ready()
        monkeypatch.syspath_prepend(str(tmp_path))
        project = importlib.import_module("tasks")
        try:
            assert project.greet.push("seeds").get(timeout=15) == "hello seeds"
        finally:
            sys.modules.pop("tasks", None)
        log = worker.log()
        assert f"imported tasks from {tmp_path / 'tasks.py'}" in log
        assert "runs 1 Relier task(s): tasks.greet" in log
    finally:
        worker.stop(timeout=10)


def test_worker_without_tasks_says_so_loudly(
    relier_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    worker = relier_worker(concurrency=1, env={"RELIER_IMPORTS": ""}, cwd=tmp_path)
    assert "has NO Relier task registered" in worker.log()


def test_unregistered_task_is_dead_lettered_promptly_naming_the_workers(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis
) -> None:
    lacking = relier_worker(concurrency=1)  # imports relier_testing.tasks only
    started = time.monotonic()
    receipt = runtime_tasks.echo.push(1)
    legacy_id = plain_message(runtime_tasks.echo, 2).id
    wait_for(lambda: dead(client, receipt.id) and dead(client, legacy_id), 15,
             "both messages dead-lettered")
    assert time.monotonic() - started < 15  # not the ~61 s NeverClaimed path
    for task_id in (receipt.id, legacy_id):
        rec = record(client, task_id)
        assert rec.reason == "UnregisteredTask"
        assert "relier_testing.runtime_tasks.echo" in rec.message
        assert lacking.hostname in rec.message
        assert client.zscore(KEYS.dlq, task_id) is not None
    assert client.get(KEYS.envelope(legacy_id)).startswith(b"[[2], {}")  # type: ignore[union-attr]
    assert counter(client, "start", "echo") == 0


def test_unregistered_task_is_requeued_for_a_worker_that_has_it(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis
) -> None:
    relier_worker(concurrency=1, queues=("default",))  # lacks runtime_tasks
    relier_worker(concurrency=1, queues=("default",), env=IMPORTS)
    receipts = [runtime_tasks.echo.push(i) for i in range(6)]
    assert [r.get(timeout=30) for r in receipts] == list(range(6))
    assert client.zcard(KEYS.dlq) == 0


def test_doctor_and_worker_list_show_registered_tasks(
    relier_worker: Callable[..., WorkerProcess], relier_env: dict[str, str],
    client: redis.Redis,
) -> None:
    worker = relier_worker(concurrency=1, queues=("high_priority", "re-queue"))
    healthy = rl("doctor", env=relier_env)
    assert "registered tasks" in healthy.stdout, healthy.stdout
    runtime_tasks.echo.push(1)  # queued on default, which this worker does not consume
    doctor = rl("doctor", env=relier_env)
    assert doctor.returncode == 1, doctor.stdout
    assert "relier_testing.runtime_tasks.echo (1)" in doctor.stdout
    listed = rl("worker", "list", "--json", env=relier_env)
    rows = json.loads(listed.stdout)
    assert [r["hostname"] for r in rows] == [worker.hostname]
    assert "relier_testing.tasks.add" in rows[0]["tasks"]
    assert rows[0]["tasks"] == sorted(rows[0]["tasks"])
    assert not [n for n in rows[0]["tasks"] if n.startswith("celery.")]
    assert "relier_testing.runtime_tasks.echo" not in rows[0]["tasks"]
    table = rl("worker", "list", env={**relier_env, "COLUMNS": "400"})
    assert "relier_testing.tasks.add" in table.stdout
