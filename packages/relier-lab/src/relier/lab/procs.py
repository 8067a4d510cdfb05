"""Local processes Relier starts itself: Redis, Celery workers and resurrectors.

Each runs in its own process group, so the whole worker (main process and pool children) can
be signalled at once, exactly as an OOM killer or a deploy would; everything is stopped by PID,
never by name, so only processes started here are ever ended.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from relier.core.queues import ALL_QUEUES

__all__ = ["LocalRedis", "ManagedProcess", "ResurrectorProcess", "WorkerProcess", "free_port"]

#: What Relier needs from Redis: an append-only file and no eviction; a memory ceiling so
#: that Redis refuses writes rather than being killed by the kernel.
REDIS_CONFIG = {
    "appendonly": "yes",
    "appendfsync": "everysec",
    "maxmemory-policy": "noeviction",
    "maxmemory": "1gb",
    "save": "",
}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalRedis:
    """A ``redis-server`` on 127.0.0.1 with Relier's required configuration."""

    def __init__(self, config: Mapping[str, str] | None = None, *,
                 directory: str | Path | None = None, port: int | None = None,
                 binary: str | None = None) -> None:
        found = binary or shutil.which("redis-server")
        if found is None:
            raise FileNotFoundError(
                "redis-server is not installed: install Redis 7+ (e.g. `apt-get install "
                "redis-server`) or set RELIER_REDIS_URL to a server you run"
            )
        self.binary = found
        self.config = {**REDIS_CONFIG, **(config or {})}
        self.port = port or free_port()
        self.owns_dir = directory is None
        self.dir = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="relier-redis-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """PID of the server, while it runs."""
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def start(self, timeout: float = 10.0) -> LocalRedis:
        """Start the server and wait until it answers (and has loaded its AOF)."""
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.dir), "--daemonize", "no", "--logfile", "redis.log"]
        for key, value in self.config.items():
            args += [f"--{key}", value]
        self.proc = subprocess.Popen(args, start_new_session=True, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while True:
                with contextlib.suppress(redis.RedisError):
                    # While an AOF loads the server answers LOADING; wait until it is done.
                    if client.ping() and client.info("persistence").get("loading", 0) == 0:
                        return self
                if self.proc.poll() is not None:
                    log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"redis-server exited with {self.proc.returncode}:\n{log}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"redis-server on port {self.port} did not answer")
                time.sleep(0.05)
        finally:
            client.close()

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the server."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the server: it keeps nothing beyond its AOF."""
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        if self.proc is None:
            return
        if self.proc.poll() is not None:
            self._stop_successor()
            return
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()

    def _stop_successor(self) -> None:
        # Our process is gone, but `rl chaos redis-restart` may have started another server on
        # our port and directory; it is ours to stop. A server with another directory is not.
        import redis

        with contextlib.suppress(redis.RedisError):
            client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2,
                                 socket_connect_timeout=1)
            if Path(str(client.config_get("dir").get("dir"))).resolve() == self.dir.resolve():
                client.shutdown(nosave=True)

    def restart(self) -> None:
        """Start again on the same port and directory, so the AOF is replayed."""
        self.start()

    def cleanup(self) -> None:
        """Stop, and delete the data directory if this object created it."""
        self.stop()
        if self.owns_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


class ManagedProcess:
    """A subprocess in its own process group, with its output in a log file."""

    ready_marker = ""

    def __init__(self, args: Sequence[str], *, env: Mapping[str, str],
                 cwd: str | Path | None = None, log_path: str | Path | None = None) -> None:
        self.args = list(args)
        self.env = {**os.environ, **env}
        self.cwd = str(cwd) if cwd else None
        self.log_path = Path(log_path) if log_path else Path(
            tempfile.mkstemp(prefix="relier-proc-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        """Start it."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.args, env=self.env, cwd=self.cwd, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        """PID of the main process."""
        assert self.proc is not None, "not started"
        return self.proc.pid

    def log(self) -> str:
        """Everything it printed so far."""
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30.0) -> ManagedProcess:
        """Wait for its ready line; raise with the log if it died instead."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready_marker in self.log():
                return self
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.args[0]} exited with {self.proc.returncode}:\n"
                                   f"{self.log()[-4000:]}")
            time.sleep(0.05)
        raise TimeoutError(f"not ready after {timeout}s:\n{self.log()[-4000:]}")

    def children(self) -> list[int]:
        """PIDs of its direct children (a worker's pool)."""
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        try:
            return [int(p) for p in path.read_text().split()]
        except OSError:
            return []

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (main process and children together)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def signal(self, sig: int) -> None:
        """Signal the main process only."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int:
        """Wait for it to exit; its exit code."""
        assert self.proc is not None
        return self.proc.wait(timeout)

    @property
    def alive(self) -> bool:
        """Still running."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM and wait, then SIGKILL whatever is left of the group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        self.kill_group(signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(10)


class WorkerProcess(ManagedProcess):
    """A ``celery worker`` of app ``app``."""

    ready_marker = " ready."

    def __init__(self, app: str, *, env: Mapping[str, str],
                 queues: Sequence[str] = ALL_QUEUES,
                 pool: str = "prefork", concurrency: int = 2, hostname: str | None = None,
                 loglevel: str = "INFO", extra_args: Sequence[str] = (),
                 cwd: str | Path | None = None, log_path: str | Path | None = None) -> None:
        self.hostname = hostname or f"w{os.getpid()}-{time.monotonic_ns() % 10**7}@localhost"
        super().__init__(
            [sys.executable, "-m", "celery", "-A", app, "worker", "-P", pool,
             "-c", str(concurrency), "-Q", ",".join(queues), "-n", self.hostname,
             "-l", loglevel, "--without-gossip", "--without-mingle", "--without-heartbeat",
             *extra_args],
            env=env, cwd=cwd, log_path=log_path,
        )


class ResurrectorProcess(ManagedProcess):
    """``python -m relier.phoenix.resurrector``."""

    ready_marker = "started (lease ttl"

    def __init__(self, *, env: Mapping[str, str], log_path: str | Path | None = None) -> None:
        super().__init__([sys.executable, "-m", "relier.phoenix.resurrector"], env=env,
                         log_path=log_path)
