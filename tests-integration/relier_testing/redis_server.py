"""Real Redis servers for tests: a local ``redis-server`` binary, or a testcontainers container.

Servers started here run in their own process group and are stopped by PID (never by name),
so a test run only ever ends processes it started.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

DEFAULT_CONFIG = {
    "appendonly": "yes",
    "appendfsync": "everysec",
    "maxmemory-policy": "noeviction",
    "maxmemory": "1gb",
    "save": "",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


class LocalRedis:
    """A ``redis-server`` process on a free port in its own temporary directory."""

    def __init__(self, config: dict[str, str] | None = None, binary: str | None = None) -> None:
        found = binary or shutil.which("redis-server")
        if found is None:
            raise FileNotFoundError("redis-server is not installed")
        self.binary = found
        self.config = {**DEFAULT_CONFIG, **(config or {})}
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="relier-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> LocalRedis:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.dir), "--daemonize", "no", "--logfile", "redis.log"]
        for key, value in self.config.items():
            args += [f"--{key}", value]
        self.proc = subprocess.Popen(args, start_new_session=True, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while True:
            try:
                # While an AOF loads the server answers LOADING; wait until it is done.
                if client.ping() and client.info("persistence").get("loading", 0) == 0:
                    break
            except redis.RedisError:
                pass
            if self.proc.poll() is not None:
                log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}:\n{log}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis-server on port {self.port} did not answer")
            time.sleep(0.05)
        client.close()
        return self

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the server (no chance to save anything beyond its AOF)."""
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()

    def restart(self) -> None:
        """Start again on the same port and directory, so the AOF is replayed."""
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class ContainerRedis:
    """A ``redis`` container through testcontainers (when a Docker engine answers)."""

    def __init__(self, config: dict[str, str] | None = None) -> None:
        from testcontainers.redis import RedisContainer

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
