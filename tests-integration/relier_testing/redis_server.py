"""Real Redis servers for tests: a local ``redis-server`` binary, or a testcontainers container.

Servers started here run in their own process group and are stopped by PID (never by name),
so a test run only ever ends processes it started.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from relier.lab.procs import REDIS_CONFIG as DEFAULT_CONFIG
from relier.lab.procs import LocalRedis, free_port

__all__ = ["ContainerRedis", "LocalRedis", "docker_engine_answers", "free_port"]


def docker_engine_answers() -> bool:
    """True when a Docker engine (not just the client) answers ``GET /_ping``.

    Probed with a plain socket: docker-py leaks its socket when the engine is absent.
    """
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: Any = host[len("unix://"):]
        elif host.startswith("tcp://"):
            name, _, port = host[len("tcp://"):].partition(":")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = (name, int(port or 2375))
        else:
            return False
        with sock:
            sock.settimeout(2)
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b" 200 " in sock.recv(64)
    except OSError:
        return False


class ContainerRedis:
    """A ``redis`` container through testcontainers (when a Docker engine answers)."""

    def __init__(self, config: dict[str, str] | None = None) -> None:
        from testcontainers.community.redis import RedisContainer

        image = os.environ.get("RELIER_TEST_REDIS_IMAGE", "redis:7.2")
        settings = {**DEFAULT_CONFIG, **(config or {})}
        command = ["redis-server"] + [a for k, v in settings.items() for a in (f"--{k}", v)]
        self.container: Any = RedisContainer(image).with_command(command)

    def start(self) -> ContainerRedis:
        self.container.start()
        return self

    @property
    def url(self) -> str:
        host = self.container.get_container_host_ip()
        return f"redis://{host}:{self.container.get_exposed_port(6379)}/0"

    def cleanup(self) -> None:
        self.container.stop()
