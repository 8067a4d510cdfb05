"""Recovery proven by crashing: SIGKILL, SIGTERM, SIGSTOP and Redis restarts on real processes.

Each test counts, from Redis, how many tasks were delivered (completed in the ledger), lost
(never completed) and run more than once.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

import pytest
import redis

from relier.tasks.receipt import TaskReceipt
from relier_testing import tasks
from relier_testing.helpers import KEYS, counter, record, wait_for
from relier_testing.redis_server import LocalRedis
from relier_testing.workers import WorkerProcess


@pytest.fixture
def client(relier_env: dict[str, str]) -> redis.Redis:
    return redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])


def states(client: redis.Redis, ids: list[str]) -> dict[str, int]:
    pipe = client.pipeline(transaction=False)
    for task_id in ids:
        pipe.hget(KEYS.task(task_id), "s")
    out: dict[str, int] = {}
    for state in pipe.execute():
        key = state.decode() if state else "missing"
        out[key] = out.get(key, 0) + 1
    return out


def test_a_whole_worker_sigkills_lose_nothing(
    relier_worker: Callable[..., WorkerProcess],
    resurrector: Callable[..., WorkerProcess], client: redis.Redis,
) -> None:
    resurrector()
    workers = [relier_worker(concurrency=2), relier_worker(concurrency=2)]
    receipts = [tasks.record.push(f"a{i}", 0.05) for i in range(500)]
    ids = [r.id for r in receipts]
    for _kill in range(5):
        time.sleep(1.2)
        victim = workers.pop(0)
        victim.kill_group(signal.SIGKILL)
        victim.wait(10)
        workers.append(relier_worker(concurrency=2))
    wait_for(lambda: states(client, ids).get("done") == 500, 120,
             f"500 tasks done (now {states(client, ids)})")
    runs_twice = sum(counter(client, "done", f"a{i}") > 1 for i in range(500))
    assert states(client, ids) == {"done": 500}
    # A body killed after it finished but before its completion was committed runs again:
    # at-least-once for non-idempotent tasks. Report it; it must stay rare.
    assert runs_twice <= 10, runs_twice


def test_b_child_sigkill_is_rerun_at_once(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis
) -> None:
    relier_worker(concurrency=2)
    receipt = tasks.record.push("child", 2.0)
    wait_for(lambda: counter(client, "start", "child"), 15, "first start")
    pid = int(client.lindex("test:log", 0).decode().rsplit(":", 1)[1])  # type: ignore[union-attr]
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: counter(client, "start", "child") == 2, 10, "second start",
             interval=0.005)
    recovery = time.monotonic() - killed_at
    assert receipt.get(timeout=15) == "child"
    rec = record(client, receipt.id)
    assert rec.attempt == 2
    assert rec.history[0].outcome == "killed"
    assert "signal 9" in rec.history[0].cause
    assert recovery < 1.0, f"child kill to re-run took {recovery:.2f}s"


def test_c_sigterm_drains_running_and_queued_tasks(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis
) -> None:
    worker = relier_worker(concurrency=6, env={"RELIER_GRACEFUL_SHUTDOWN_TIMEOUT": "20"})
    running = [tasks.record.push(f"run{i}", 2.0) for i in range(6)]
    wait_for(lambda: all(counter(client, "start", f"run{i}") for i in range(6)), 15,
             "6 tasks running")
    queued = [tasks.record.push(f"queued{i}", 0.1) for i in range(6)]
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    successor = relier_worker(concurrency=2)
    for r in running + queued:
        r.get(timeout=30)
    assert successor.alive
    for i in range(6):
        assert counter(client, "done", f"run{i}") == 1
        assert counter(client, "done", f"queued{i}") == 1
        assert counter(client, "start", f"run{i}") == 1  # finished during the drain


def test_cpu_bound_child_holding_the_gil_keeps_its_lease(
    relier_worker: Callable[..., WorkerProcess],
    resurrector: Callable[..., WorkerProcess], client: redis.Redis,
) -> None:
    """I6: the worker's main process renews leases, so a pool child spinning in pure Python
    for over three lease TTLs (RELIER_HEARTBEAT_TTL=3) is not taken for dead."""
    resurrector()
    relier_worker(concurrency=1)
    receipt = tasks.busy_cpu.push("spin", 10.0)
    assert receipt.get(timeout=60) == "spin"
    assert counter(client, "start", "spin") == 1
    rec = record(client, receipt.id)
    assert rec.resurrections == 0
    assert [a.outcome for a in rec.history] == ["completed"]


def test_c_drain_deadline_hands_off_with_checkpoint(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis
) -> None:
    worker = relier_worker(concurrency=2, env={"RELIER_GRACEFUL_SHUTDOWN_TIMEOUT": "1"})
    receipt = tasks.checkpointed.push(60, "handoff", pause=0.05)
    wait_for(lambda: counter(client, "item", "handoff:5"), 15, "progress")
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    rec = record(client, receipt.id)
    assert rec.state == "queued"
    assert rec.history[-1].outcome == "handoff"
    relier_worker(concurrency=1)
    result = receipt.get(timeout=30)
    assert result["processed_from"] > 5  # resumed from the checkpoint, not from zero
    assert counter(client, "done", "handoff") == 1
    assert record(client, receipt.id).resurrections == 0  # a hand-off is not a death


def test_d_resurrector_killed_mid_run_loses_nothing(
    relier_worker: Callable[..., WorkerProcess],
    resurrector: Callable[..., WorkerProcess], client: redis.Redis,
) -> None:
    first = resurrector()
    doomed = relier_worker(concurrency=4)
    receipts = [tasks.record.push(f"d{i}", 3.0) for i in range(8)]
    wait_for(lambda: sum(counter(client, "start", f"d{i}") for i in range(8)) >= 4, 15,
             "tasks running")
    doomed.kill_group(signal.SIGKILL)
    first.kill_group(signal.SIGKILL)
    time.sleep(4)  # leases expire while no resurrector runs
    resurrector()
    relier_worker(concurrency=4)
    for r in receipts:
        r.get(timeout=60)
    assert states(client, [r.id for r in receipts]) == {"done": 8}


def test_e_redis_sigkilled_and_restarted_from_aof(
    local_redis_factory: Callable[..., LocalRedis],
    relier_worker: Callable[..., WorkerProcess],
    resurrector: Callable[..., WorkerProcess], relier_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = local_redis_factory()
    monkeypatch.setenv("RELIER_REDIS_URL", server.url)
    from relier.core.settings import reset_settings
    from relier.tasks.dispatch import reset_dispatcher

    reset_settings(None)
    reset_dispatcher(None)
    env = {"RELIER_REDIS_URL": server.url}
    resurrector(env=env)
    relier_worker(concurrency=2, env=env)
    receipts = [tasks.record.push(f"e{i}", 0.2) for i in range(40)]
    time.sleep(1.0)
    server.kill()
    time.sleep(1.0)
    server.restart()
    client = redis.Redis.from_url(server.url)
    ids = [r.id for r in receipts]
    wait_for(lambda: states(client, ids).get("done") == 40, 90,
             f"40 tasks done after the restart (now {states(client, ids)})")


def test_f_zombie_worker_loses_every_late_write(
    relier_worker: Callable[..., WorkerProcess],
    resurrector: Callable[..., WorkerProcess], client: redis.Redis,
) -> None:
    resurrector()
    zombie = relier_worker(concurrency=1)
    receipt = tasks.checkpointed.push(40, "zombie", pause=0.05)
    wait_for(lambda: counter(client, "item", "zombie:3"), 15, "zombie progress")
    zombie.kill_group(signal.SIGSTOP)
    relier_worker(concurrency=1)  # takes over once the zombie's lease expires
    result = receipt.get(timeout=30)
    rec_before = record(client, receipt.id)
    assert rec_before.epoch == 2
    zombie.kill_group(signal.SIGCONT)
    time.sleep(4)  # the zombie resumes: checkpoints, then its completion, all refused
    rec_after = record(client, receipt.id)
    assert rec_after.result == rec_before.result
    assert rec_after.epoch == 2
    assert rec_after.state == "done"
    assert result["processed_from"] >= 3
    assert [a.outcome for a in rec_after.history] == ["lease_expired", "completed"]
    log = zombie.log()
    assert "lost its lease" in log
    assert "run fenced off" in log
    assert "epoch 1 no longer owns the task" in log


def test_g_poison_pill_is_dead_lettered_and_workers_keep_serving(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis
) -> None:
    relier_worker(concurrency=2)
    receipt = tasks.poison.push("pill")
    wait_for(lambda: record(client, receipt.id).state == "dead", 30, "poison dead-lettered")
    rec = record(client, receipt.id)
    assert rec.reason == "max_resurrections_exceeded"
    assert counter(client, "start", "pill") == 3  # first run + max_resurrections=2
    assert [a.outcome for a in rec.history] == ["killed"] * 3
    assert all("signal 9" in a.cause for a in rec.history)
    assert tasks.multiply.push(3, 3).get(timeout=15) == 9


def test_lost_message_between_pop_and_claim_is_republished(
    relier_worker: Callable[..., WorkerProcess],
    resurrector: Callable[..., WorkerProcess], client: redis.Redis,
) -> None:
    """kombu pops, then the worker dies before recording or claiming: hit that window."""
    env = {"RELIER_RESURRECTION_CLAIM_GRACE_PERIOD": "1"}
    resurrector(env=env)
    receipt = tasks.record.push("vanished")
    assert client.rpop("high_priority") is not None  # popped by a worker that then died
    relier_worker(concurrency=1, env=env)
    assert receipt.get(timeout=30) == "vanished"
    assert record(client, receipt.id).republished == 1


def test_duplicate_deliveries_never_run_twice(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis
) -> None:
    receipt = tasks.record.push("dup", 0.5)
    message = client.lindex("high_priority", 0)
    assert message is not None
    client.lpush("high_priority", message, message)  # a repeated publish, twice
    relier_worker(concurrency=3)
    assert receipt.get(timeout=15) == "dup"
    client.lpush("high_priority", message)  # a very late redelivery of a finished task
    time.sleep(1.5)
    assert counter(client, "start", "dup") == 1


def test_long_task_outlives_kombu_visibility_timeout(
    relier_env: dict[str, str], worker_factory: Callable[..., WorkerProcess],
    client: redis.Redis,
) -> None:
    """kombu re-delivers unacked messages after its visibility timeout; Relier acks at claim,
    so a task running 4x longer than a 1 s visibility timeout runs once."""
    for _ in range(2):
        worker_factory("relier_testing.short_visibility", env=relier_env,
                       concurrency=2).wait_ready()
    receipt = tasks.record.push("long", 4.0)
    assert receipt.get(timeout=20) == "long"
    time.sleep(2)
    assert counter(client, "start", "long") == 1


@pytest.mark.slow
def test_long_variant_ten_thousand_tasks_twenty_kills() -> None:
    """``uv run pytest -m slow`` (or ``tools/chaos_long.py``): 10,000 tasks, 20 kills."""
    from relier.lab.bench import bench_env
    from relier.lab.chaos import kill_storm

    with bench_env() as env:
        result = kill_storm(env, tasks=10_000, kills=20, interval=2.0, task_seconds=0.02,
                            timeout=1800)
    assert result["lost"] == 0, result
    assert result["delivered"] == 10_000, result


def test_redis_out_of_memory_refuses_dispatch_clearly_and_loses_nothing(
    local_redis_factory: Callable[..., LocalRedis], worker_factory: Callable[..., WorkerProcess],
    relier_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from relier.core.exceptions import DispatchError
    from relier.core.settings import reset_settings
    from relier.tasks.dispatch import reset_dispatcher

    server = local_redis_factory(maxmemory="3mb")
    monkeypatch.setenv("RELIER_REDIS_URL", server.url)
    monkeypatch.setenv("RELIER_ADMISSION_LIMIT", "0")
    reset_settings(None)
    reset_dispatcher(None)
    accepted: list[TaskReceipt] = []

    def fill() -> None:  # no worker yet: the queue grows until Redis refuses
        for i in range(100_000):
            accepted.append(tasks.record.push(f"oom{i}", 0.0))  # noqa: PERF401 - keeps what got in

    with pytest.raises(DispatchError, match="out of memory") as info:
        fill()
    assert "Nothing was enqueued" in str(info.value)
    assert len(accepted) > 100
    client = redis.Redis.from_url(server.url)
    client.config_set("maxmemory", "0")  # the operator raises the limit
    worker_factory("relier.tasks.app", env={**relier_env, "RELIER_REDIS_URL": server.url,
                                            "RELIER_PREFLIGHT": "warn"},
                   concurrency=2).wait_ready()
    for receipt in accepted[:: max(1, len(accepted) // 50)]:
        assert receipt.get(timeout=60)
    ids = [r.id for r in accepted]
    wait_for(lambda: states(client, ids).get("done") == len(ids), 120,
             "every accepted task done")


def test_workers_and_resurrector_drain_while_redis_is_out_of_memory(
    local_redis_factory: Callable[..., LocalRedis], worker_factory: Callable[..., WorkerProcess],
    resurrector: Callable[..., WorkerProcess], relier_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A full Redis refuses new work, but a task already accepted is still recovered and run."""
    from relier.core.settings import reset_settings
    from relier.tasks.dispatch import reset_dispatcher

    server = local_redis_factory(maxmemory="4mb")
    env = {**relier_env, "RELIER_REDIS_URL": server.url}
    monkeypatch.setenv("RELIER_REDIS_URL", server.url)
    reset_settings(None)
    reset_dispatcher(None)
    client = redis.Redis.from_url(server.url)
    resurrector(env=env)
    doomed = worker_factory("relier.tasks.app", env=env, concurrency=1,
                            queues=("high_priority", "default", "low_priority")).wait_ready()
    worker_factory("relier.tasks.app", env=env, concurrency=1, queues=("re-queue",)).wait_ready()
    receipt = tasks.nap.push(3.0)
    wait_for(lambda: record(client, receipt.id).state == "running", 15, "the task running")
    # Keep Redis at its limit: whatever a dead connection or a finished step frees is taken
    # again at once, so every step of the recovery runs against a full server.
    done = threading.Event()
    refusals: list[int] = []

    def keep_full() -> None:
        i = 0
        while not done.is_set():
            try:
                client.set(f"ballast:{i}", b"x" * 20_000)
                i += 1
            except redis.exceptions.OutOfMemoryError:
                refusals.append(i)
                time.sleep(0.01)

    filler = threading.Thread(target=keep_full, daemon=True)
    filler.start()
    wait_for(lambda: refusals, 30, "Redis full")
    doomed.kill_group(signal.SIGKILL)
    try:
        assert receipt.get(timeout=60) == 3.0
    finally:
        done.set()
        filler.join(5)
    assert len(refusals) > 100  # full the whole time, not once
    outcomes = [a.outcome for a in record(client, receipt.id).history]
    assert outcomes[0] in {"killed", "lease_expired"}
    assert outcomes[-1] == "completed"
