"""Adoption by adopting: a plain Celery app with and without ``relier.install``, side by side.

Installing Relier must never make a plain task less safe than vanilla Celery. Before the
drop-in, ``install`` forced early acknowledgement and turned kombu's ack emulation off, so the
in-flight tasks of an ``acks_late`` app were gone for good when its worker was SIGKILLed
(nothing in ``unacked``, no record), and a countdown task held by a killed worker existed
nowhere. Each scenario runs on the vanilla app and on the installed one; the Relier side must
bring back everything, run it once, and leave a record that says so.
"""

from __future__ import annotations

import importlib
import signal
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
import redis

from relier_testing.helpers import counter, wait_for
from relier_testing.workers import WorkerProcess

SIDES = pytest.mark.parametrize("with_relier", [False, True], ids=["vanilla", "relier"])
QUEUES = ("celery", "re-queue")


def _app(with_relier: bool, acks_late: bool, monkeypatch: pytest.MonkeyPatch,
         relier_env: dict[str, str]) -> tuple[ModuleType, dict[str, str]]:
    flags = {"PLAIN_APP_RELIER": "1" if with_relier else "0",
             "PLAIN_APP_ACKS_LATE": "1" if acks_late else "0"}
    for name, value in flags.items():
        monkeypatch.setenv(name, value)
    import relier_testing.plain_app as plain_app

    return importlib.reload(plain_app), {**relier_env, **flags, "RELIER_PREFLIGHT": "warn"}


def _records(client: redis.Redis) -> dict[str, str]:
    states = {}
    for key in client.scan_iter("rl:t:*"):
        states[key.decode()] = (client.hget(key, "s") or b"").decode()
    return states


@SIDES
def test_in_flight_acks_late_tasks_survive_a_worker_sigkill(
    with_relier: bool, relier_env: dict[str, str],
    worker_factory: Callable[..., WorkerProcess],
    resurrector: Callable[..., WorkerProcess], monkeypatch: pytest.MonkeyPatch,
) -> None:
    plain_app, env = _app(with_relier, True, monkeypatch, relier_env)
    client = redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])
    resurrector()
    worker = worker_factory("relier_testing.plain_app", env=env, queues=QUEUES,
                            concurrency=2).wait_ready()
    keys = [f"k{i}" for i in range(2)]
    for key in keys:
        plain_app.slow.delay(key, 2.0)
    wait_for(lambda: all(counter(client, "started", k) for k in keys), 20, "both tasks started")
    worker.kill_group(signal.SIGKILL)
    worker.wait(10)
    assert client.hlen("unacked") == 2, "kombu keeps the in-flight messages (acks_late)"
    worker_factory("relier_testing.plain_app", env=env, queues=QUEUES,
                   concurrency=2).wait_ready()
    wait_for(lambda: all(counter(client, "done", k) for k in keys), 60,
             "both in-flight tasks ran again after the kill")
    if with_relier:
        wait_for(lambda: set(_records(client).values()) == {"done"}, 20, "records done")
        time.sleep(6)  # kombu's own redelivery (visibility timeout 4 s) comes and is dropped
        assert [counter(client, "done", k) for k in keys] == [1, 1], "each ran to the end once"
        assert set(_records(client).values()) == {"done"}


@SIDES
def test_in_flight_early_ack_tasks_after_a_worker_sigkill(
    with_relier: bool, relier_env: dict[str, str],
    worker_factory: Callable[..., WorkerProcess],
    resurrector: Callable[..., WorkerProcess], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Celery's default (ack on receipt): vanilla loses the run; Relier resurrects it."""
    plain_app, env = _app(with_relier, False, monkeypatch, relier_env)
    client = redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])
    resurrector()
    worker = worker_factory("relier_testing.plain_app", env=env, queues=QUEUES,
                            concurrency=1).wait_ready()
    plain_app.slow.delay("early", 2.0)
    wait_for(lambda: counter(client, "started", "early"), 20, "the task started")
    worker.kill_group(signal.SIGKILL)
    worker.wait(10)
    worker_factory("relier_testing.plain_app", env=env, queues=QUEUES,
                   concurrency=1).wait_ready()
    if with_relier:
        wait_for(lambda: counter(client, "done", "early") == 1, 30, "the task ran again")
        assert set(_records(client).values()) == {"done"}
    else:
        time.sleep(8)
        assert counter(client, "done", "early") == 0, "vanilla lost the acknowledged run"


@SIDES
def test_a_countdown_task_held_by_a_killed_worker_runs_once_and_never_early(
    with_relier: bool, relier_env: dict[str, str],
    worker_factory: Callable[..., WorkerProcess],
    resurrector: Callable[..., WorkerProcess], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Vanilla holds an eta task unacknowledged in the worker's memory, and gets it back from
    kombu after the visibility timeout; Relier keeps it scheduled in Redis, not in a worker."""
    plain_app, env = _app(with_relier, False, monkeypatch, relier_env)
    client = redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])
    resurrector()
    worker = worker_factory("relier_testing.plain_app", env=env, queues=QUEUES,
                            concurrency=1).wait_ready()
    sent = time.time()
    plain_app.stamp.apply_async(("later",), countdown=3)
    time.sleep(1.5)  # a vanilla worker has taken the message into its timer by now
    if with_relier:
        assert set(_records(client).values()) == {"scheduled"}
    worker.kill_group(signal.SIGKILL)
    worker.wait(10)
    worker_factory("relier_testing.plain_app", env=env, queues=QUEUES,
                   concurrency=1).wait_ready()
    ran_at = wait_for(lambda: client.get("test:stamp:later"), 30, "the countdown task ran")
    assert float(ran_at) >= sent + 3, "never early"
    if with_relier:
        time.sleep(2)
        assert counter(client, "runs", "later") == 1
        assert set(_records(client).values()) == {"done"}


@SIDES
def test_a_countdown_beyond_the_visibility_timeout(
    with_relier: bool, relier_env: dict[str, str],
    worker_factory: Callable[..., WorkerProcess],
    resurrector: Callable[..., WorkerProcess], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """celery#2481: kombu hands an eta message held longer than the visibility timeout to a
    worker again, and it runs twice. Relier's countdown waits in Redis and runs once."""
    plain_app, env = _app(with_relier, False, monkeypatch, relier_env)
    client = redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])
    resurrector()
    for _ in range(2):
        worker_factory("relier_testing.plain_app", env=env, queues=QUEUES,
                       concurrency=1).wait_ready()
    plain_app.stamp.apply_async(("far",), countdown=8)
    wait_for(lambda: client.get("test:stamp:far"), 30, "the countdown task ran")
    time.sleep(3)
    runs = counter(client, "runs", "far")
    if with_relier:
        assert runs == 1
        assert set(_records(client).values()) == {"done"}
    else:
        assert runs >= 2, "vanilla's visibility-timeout duplicate (if this fails, kombu fixed it)"


@SIDES
def test_a_deploy_sigterm_then_sigkill_after_the_grace_period(
    with_relier: bool, relier_env: dict[str, str],
    worker_factory: Callable[..., WorkerProcess],
    resurrector: Callable[..., WorkerProcess], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A deploy as an orchestrator does it: SIGTERM, then SIGKILL when the grace period (2 s
    here) runs out before the running task ends. Celery's default early ack: vanilla loses the
    interrupted run; Relier resurrects it. Every other task runs once on both sides."""
    plain_app, env = _app(with_relier, False, monkeypatch, relier_env)
    client = redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])
    resurrector()
    worker = worker_factory("relier_testing.plain_app", env=env, queues=QUEUES,
                            concurrency=1).wait_ready()
    keys = [f"deploy{i}" for i in range(3)]
    for key in keys:
        plain_app.slow.delay(key, 4.0)
    wait_for(lambda: counter(client, "started", keys[0]), 20, "the first task started")
    worker.signal(signal.SIGTERM)
    time.sleep(2.0)
    worker.kill_group(signal.SIGKILL)
    worker.wait(10)
    worker_factory("relier_testing.plain_app", env=env, queues=QUEUES,
                   concurrency=1).wait_ready()
    if with_relier:
        wait_for(lambda: all(counter(client, "done", k) for k in keys), 60,
                 "every task ran to the end after the deploy")
        wait_for(lambda: set(_records(client).values()) == {"done"}, 20, "records done")
        time.sleep(6)  # kombu's own redelivery (visibility timeout 4 s) comes and is dropped
        assert [counter(client, "done", k) for k in keys] == [1, 1, 1]
    else:
        wait_for(lambda: all(counter(client, "done", k) for k in keys[1:]), 60,
                 "the waiting tasks ran (kombu restored them)")
        time.sleep(6)
        assert counter(client, "done", keys[0]) == 0, "vanilla lost the interrupted run"


@SIDES
def test_a_redis_restart_from_aof_during_work(
    with_relier: bool, relier_env: dict[str, str],
    worker_factory: Callable[..., WorkerProcess],
    resurrector: Callable[..., WorkerProcess], monkeypatch: pytest.MonkeyPatch,
    local_redis_factory: Callable[..., Any],
) -> None:
    """Redis SIGKILLed and restarted from its AOF while tasks run (Celery's early ack)."""
    from relier.core.settings import reset_settings
    from relier.tasks.transport import reset_recorder

    server = local_redis_factory()
    monkeypatch.setenv("RELIER_REDIS_URL", server.url)
    reset_settings(None)
    reset_recorder()  # this process's recorder was built on the suite's Redis
    plain_app, env = _app(with_relier, False, monkeypatch, {**relier_env,
                                                           "RELIER_REDIS_URL": server.url})
    client = redis.Redis.from_url(server.url)
    if with_relier:
        resurrector(env={"RELIER_REDIS_URL": server.url})
    worker_factory("relier_testing.plain_app", env=env, queues=QUEUES,
                   concurrency=2).wait_ready()
    keys = [f"aof{i}" for i in range(12)]
    for key in keys:
        plain_app.slow.delay(key, 0.5)
    time.sleep(1.0)
    server.kill()
    time.sleep(1.0)
    server.restart()
    # Neither side may lose a task (vanilla does not, with an AOF on every write): installing
    # Relier must not make a Redis restart worse.
    try:
        wait_for(lambda: all(counter(client, "done", k) for k in keys), 90,
                 "every task ran to the end after the restart")
        if with_relier:
            wait_for(lambda: set(_records(client).values()) == {"done"}, 30, "records done")
    except AssertionError:
        raise AssertionError(f"done {[counter(client, 'done', k) for k in keys]}, "
                             f"records {sorted(_records(client).values())}") from None


@SIDES
def test_a_chain_killed_mid_step_and_a_routed_task(
    with_relier: bool, relier_env: dict[str, str],
    worker_factory: Callable[..., WorkerProcess],
    resurrector: Callable[..., WorkerProcess], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A chain whose first step's worker is SIGKILLed mid-step, and a task routed to the app's
    own queue by ``task_routes``, killed the same way (Celery's default early ack). Vanilla
    loses both runs, and the chain's next step with them; Relier resumes both, and the chain
    goes on from the resurrected step."""
    from celery import chain

    plain_app, env = _app(with_relier, False, monkeypatch, relier_env)
    client = redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])
    queues = ("celery", "emails", "re-queue")
    resurrector()
    worker = worker_factory("relier_testing.plain_app", env=env, queues=queues,
                            concurrency=2).wait_ready()
    chain(plain_app.slow.si("step1", 2.0), plain_app.slow.si("step2", 0.1)).delay()
    plain_app.routed.delay("routed", 2.0)
    wait_for(lambda: counter(client, "started", "step1") and counter(client, "started",
                                                                       "routed"),
             20, "the first step and the routed task started")
    worker.kill_group(signal.SIGKILL)
    worker.wait(10)
    worker_factory("relier_testing.plain_app", env=env, queues=queues,
                   concurrency=2).wait_ready()
    keys = ("step1", "step2", "routed")
    if with_relier:
        wait_for(lambda: all(counter(client, "done", k) for k in keys), 60,
                 "both steps and the routed task ran to the end")
        wait_for(lambda: set(_records(client).values()) == {"done"}, 20, "records done")
        time.sleep(3)
        assert [counter(client, "done", k) for k in keys] == [1, 1, 1]
    else:
        time.sleep(10)
        assert [counter(client, "done", k) for k in keys] == [0, 0, 0], \
            "vanilla lost the interrupted step (and the rest of the chain) and the routed run"
