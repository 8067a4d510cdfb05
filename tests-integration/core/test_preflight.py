"""Preflight against real servers: good, evicting, without AOF, and with INFO forbidden."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from relier.core import Keys, Settings, preflight, run_preflight
from relier.core.exceptions import PreflightError
from relier.core.keys import KEYSPACE_VERSION
from relier_testing.redis_server import LocalRedis


def settings_for(url: str, mode: str = "strict") -> Settings:
    return Settings.load(environ={"RELIER_REDIS_URL": url, "RELIER_PREFLIGHT": mode},
                         env_file=None)


def status(report: object, name: str) -> str:
    return next(c.status for c in report.checks if c.name == name)  # type: ignore[attr-defined]


def test_good_server_passes_and_records_keyspace(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    report = preflight(client, settings_for(redis_url))
    assert report.ok, report.lines()
    assert status(report, "scripts") == "ok"
    assert client.hget(Keys().meta, "keyspace") == str(KEYSPACE_VERSION).encode()


def test_evicting_server_is_refused_with_fix(local_redis_factory: Callable[..., LocalRedis]
                                             ) -> None:
    server = local_redis_factory(maxmemory_policy="allkeys-lru")
    client = redis.Redis.from_url(server.url)
    with pytest.raises(PreflightError) as info:
        preflight(client, settings_for(server.url))
    assert "allkeys-lru" in str(info.value)
    assert "CONFIG SET maxmemory-policy noeviction" in str(info.value)


def test_server_without_aof_is_refused(local_redis_factory: Callable[..., LocalRedis]) -> None:
    server = local_redis_factory(appendonly="no")
    client = redis.Redis.from_url(server.url)
    report = run_preflight(client, settings_for(server.url))
    assert status(report, "aof") == "fail"
    with pytest.raises(PreflightError, match="appendonly"):
        preflight(client, settings_for(server.url))


def test_warn_mode_starts_anyway(local_redis_factory: Callable[..., LocalRedis],
                                 caplog: pytest.LogCaptureFixture) -> None:
    server = local_redis_factory(appendonly="no", maxmemory_policy="allkeys-lru")
    report = preflight(redis.Redis.from_url(server.url), settings_for(server.url, "warn"))
    assert len(report.failures) == 2
    assert "starting anyway" in caplog.text


def test_managed_server_forbidding_info_gets_warnings_not_a_crash(redis_url: str) -> None:
    admin = redis.Redis.from_url(redis_url)
    admin.acl_setuser("limited", enabled=True, passwords=["+secretpw"], keys=["*"],
                      channels=["*"], commands=["+@all", "-info", "-config"])
    try:
        url = redis_url.replace("redis://", "redis://limited:secretpw@")
        limited = redis.Redis.from_url(url)
        report = run_preflight(limited, settings_for(url))
        assert report.ok, report.lines()
        assert {c.name for c in report.warnings} >= {"version", "maxmemory-policy", "aof"}
    finally:
        admin.acl_deluser("limited")


def test_newer_keyspace_is_refused(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.hset(Keys().meta, "keyspace", KEYSPACE_VERSION + 1)
    report = run_preflight(client, settings_for(redis_url))
    assert status(report, "keyspace") == "fail"


def test_unreachable_server_fails_connection_check() -> None:
    url = "redis://127.0.0.1:1/0"
    report = run_preflight(redis.Redis.from_url(url, socket_connect_timeout=0.2),
                           settings_for(url))
    assert [c.name for c in report.failures] == ["connection"]
