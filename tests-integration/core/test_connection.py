"""Clients from every URL form, pooled per process, and never shared across fork."""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import redis

from relier.core import Settings, async_redis_client, redis_client
from relier_testing.redis_server import LocalRedis, free_port


def settings_for(url: str) -> Settings:
    return Settings.load(environ={"RELIER_REDIS_URL": url}, env_file=None)


def test_sync_client_is_pooled_per_process(redis_url: str) -> None:
    s = settings_for(redis_url)
    assert redis_client(s) is redis_client(s)
    assert redis_client(s).ping()


def test_forked_child_never_reuses_parent_connections(redis_url: str) -> None:
    s = settings_for(redis_url)
    parent = redis_client(s)
    parent_id = parent.client_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            child = redis_client(s)
            ok = child is not parent and child.client_id() != parent_id
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.waitpid(pid, 0)
    assert parent.client_id() == parent_id  # the parent's socket still works, untouched


def test_async_client_per_event_loop(redis_url: str) -> None:
    s = settings_for(redis_url)

    async def use() -> tuple[int, bool]:
        client = async_redis_client(s)
        assert client is async_redis_client(s)
        await client.set("k", "v")
        return id(client), await client.get("k") == b"v"

    first = asyncio.run(use())
    second = asyncio.run(use())
    assert first[1]
    assert second[1]


def test_unix_socket_url(local_redis_factory: Callable[..., LocalRedis]) -> None:
    sock = Path(tempfile.mkdtemp()) / "redis.sock"
    local_redis_factory(unixsocket=str(sock))
    client = redis_client(settings_for(f"unix://{sock}?db=0"))
    assert client.ping()


def test_sentinel_url(local_redis_factory: Callable[..., LocalRedis], tmp_path: Path) -> None:
    primary = local_redis_factory()
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\nsentinel monitor relier-master 127.0.0.1 "
        f"{primary.port} 1\n", encoding="utf-8",
    )
    proc = subprocess.Popen([primary.binary, str(conf), "--sentinel"],
                            stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        probe = redis.Redis(port=port)
        for _ in range(100):
            try:
                if probe.sentinel_master("relier-master"):
                    break
            except redis.RedisError:
                asyncio.run(asyncio.sleep(0.05))
        client = redis_client(settings_for(f"sentinel://127.0.0.1:{port}/relier-master/0"))
        client.set("via-sentinel", "yes")
        assert redis.Redis(port=primary.port).get("via-sentinel") == b"yes"
    finally:
        proc.kill()
        proc.wait(5)
