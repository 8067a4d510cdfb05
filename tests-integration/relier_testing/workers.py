"""Real Celery worker processes for crash tests.

Each worker runs in its own process group, so a test can SIGKILL the whole worker (the main
process and its pool children) at once, or one child alone, exactly as an OOM killer would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


class WorkerProcess:
    """One ``celery worker`` subprocess."""

    def __init__(
        self,
        app: str,
        *,
        env: Mapping[str, str],
        queues: Sequence[str] = ("high_priority", "default", "low_priority", "re-queue"),
        pool: str = "prefork",
        concurrency: int = 2,
        hostname: str | None = None,
        cwd: str | Path | None = None,
        loglevel: str = "INFO",
        extra_args: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.hostname = hostname or f"w{os.getpid()}-{time.monotonic_ns() % 10**6}@localhost"
        self.args = [
            sys.executable, "-m", "celery", "-A", app, "worker", "-P", pool,
            "-c", str(concurrency), "-Q", ",".join(queues), "-n", self.hostname,
            "-l", loglevel, "--without-gossip", "--without-mingle", "--without-heartbeat",
            *extra_args,
        ]
        self.env = {**os.environ, **env}
        self.cwd = str(cwd) if cwd else None
        self.log_path = Path(tempfile.mkstemp(prefix="relier-worker-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.args, env=self.env, cwd=self.cwd, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, "worker not started"
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30.0) -> WorkerProcess:
        """Wait for Celery's 'ready.' line; fail with the log if the worker died instead."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.log():
                return self
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.05)
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.log()[-4000:]}")

    def children(self) -> list[int]:
        """PIDs of the pool children."""
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        try:
            return [int(p) for p in path.read_text().split()]
        except OSError:
            return []

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole worker: main process and pool children together."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def signal(self, sig: int) -> None:
        """Signal the main process only (SIGTERM starts a drain)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """Warm-stop, then kill whatever is left of the group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        self.kill_group(signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(10)


class ResurrectorProcess(WorkerProcess):
    """``python -m relier.phoenix.resurrector`` as a subprocess (same kill helpers)."""

    def __init__(self, *, env: Mapping[str, str]) -> None:
        super().__init__("unused", env=env)
        self.args = [sys.executable, "-m", "relier.phoenix.resurrector"]

    def wait_ready(self, timeout: float = 15.0) -> WorkerProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "resurrector" in self.log() and "started" in self.log():
                return self
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"resurrector exited:\n{self.log()}")
            time.sleep(0.05)
        raise TimeoutError(f"resurrector not started:\n{self.log()}")
