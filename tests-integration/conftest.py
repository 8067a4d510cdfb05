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
