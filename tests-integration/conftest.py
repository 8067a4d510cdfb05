"""Fixtures of the integration suite: a real Redis, per-test isolation, worker processes.

Redis comes from, in order: ``RELIER_TEST_REDIS_URL``; a testcontainers container when a
Docker engine answers; a local ``redis-server`` binary (AOF on, noeviction, free port, temporary
directory), stopped by PID at the end. With none of them the suite skips locally but FAILS when
``CI`` is set, so a CI run can never pass by testing nothing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from relier_testing.redis_server import ContainerRedis, LocalRedis, docker_engine_answers
from relier_testing.workers import WorkerProcess

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: integration tests must not be skipped)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """URL of the session's Redis server."""
    url = os.environ.get("RELIER_TEST_REDIS_URL")
    if url:
        yield url
        return
    server: LocalRedis | ContainerRedis
    if docker_engine_answers():
        server = ContainerRedis().start()
    elif shutil.which("redis-server"):
        server = LocalRedis().start()
    else:
        _missing("no Redis: set RELIER_TEST_REDIS_URL, run a Docker engine or install redis-server")
        raise AssertionError("unreachable")
    try:
        yield server.url
    finally:
        server.cleanup()


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session's Redis, emptied for this test."""
    client = redis.Redis.from_url(redis_server)
    client.flushall()
    client.close()
    return redis_server


@pytest.fixture
def local_redis_factory() -> Iterator[Callable[..., LocalRedis]]:
    """Start extra local redis-server processes with given config (for preflight and restarts)."""
    started: list[LocalRedis] = []

    def factory(**config: str) -> LocalRedis:
        if not shutil.which("redis-server"):
            _missing("redis-server binary is needed to control a server's lifecycle")
        server = LocalRedis({k.replace("_", "-"): v for k, v in config.items()}).start()
        started.append(server)
        return server

    yield factory
    for server in started:
        server.cleanup()


@pytest.fixture
def worker_factory() -> Iterator[Callable[..., WorkerProcess]]:
    """Start real Celery worker subprocesses; every one is stopped (by group) at teardown."""
    started: list[WorkerProcess] = []

    def factory(app: str, **kwargs: Any) -> WorkerProcess:
        worker = WorkerProcess(app, **kwargs).start()
        started.append(worker)
        return worker

    yield factory
    for worker in started:
        worker.stop(timeout=5)


@pytest.fixture
def relier_env(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Point this process's Relier at the test Redis; returns the env for worker processes."""
    env = {
        "RELIER_REDIS_URL": redis_url,
        "RELIER_IMPORTS": "relier_testing.tasks",
        "RELIER_PREFLIGHT": "strict",
        "RELIER_LOG_LEVEL": "INFO",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent),
                                                    os.environ.get("PYTHONPATH", "")])),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("RELIER_BROKER_URL", "RELIER_SIGNING_KEYS", "RELIER_ACCEPT_UNSIGNED"):
        monkeypatch.delenv(key, raising=False)
    _reset_relier()
    yield env
    _reset_relier()


def _reset_relier() -> None:
    from relier.core.settings import reset_settings

    reset_settings(None)
    try:
        from relier.tasks import dispatch, transport
    except ImportError:
        return
    dispatch.reset_dispatcher(None)
    transport.reset_recorder()  # the plain-message recorder keeps the settings it was built on


@pytest.fixture
def relier_worker(relier_env: dict[str, str], worker_factory: Callable[..., WorkerProcess]
                  ) -> Callable[..., WorkerProcess]:
    """Start a real worker on the test Redis: ``relier_worker(pool="solo", concurrency=1)``."""

    def start(*, ready: bool = True, env: dict[str, str] | None = None,
              **kwargs: Any) -> WorkerProcess:
        worker = worker_factory("relier.tasks.app", env={**relier_env, **(env or {})},
                                **kwargs)
        return worker.wait_ready() if ready else worker

    return start


@pytest.fixture
def resurrector(relier_env: dict[str, str]) -> Iterator[Callable[..., WorkerProcess]]:
    """Start resurrector subprocesses; each is stopped at teardown."""
    from relier_testing.workers import ResurrectorProcess

    started: list[WorkerProcess] = []

    def start(env: dict[str, str] | None = None) -> WorkerProcess:
        proc = ResurrectorProcess(env={**relier_env, **(env or {})}).start().wait_ready()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop(timeout=5)
