"""``rl cluster``: a local development stack as processes (or docker compose where it runs).

``rl cluster up`` starts, under ``.relier/`` in the working directory: a Redis when none is
reachable at ``RELIER_REDIS_URL`` (AOF on, noeviction), workers for every queue (one of them
only for ``re-queue``, so recovery never waits behind user work) and a resurrector. They keep
running after the command returns; their PIDs and the Redis URL are kept in
``.relier/cluster.json`` (its format and reader are ``relier.cli.local``), which every other
``rl`` command reads when ``RELIER_REDIS_URL`` is not set. ``rl cluster down`` stops them
(workers drain first); ``status`` shows them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from typing import Any

import msgspec

from relier.cli.local import (
    ClusterState,
    Member,
    adopt_local_cluster,
    alive,
    base_dir,
    load_state,
    state_path,
)
from relier.core.queues import PUBLIC_QUEUES, RECOVERY_QUEUE
from relier.core.settings import mask_url
from relier.lab.procs import LocalRedis, ResurrectorProcess, WorkerProcess

__all__ = ["ClusterState", "Member", "adopt_local_cluster", "alive", "cluster_down", "cluster_up",
           "describe", "load_state", "state_path"]

USER_QUEUES = list(PUBLIC_QUEUES)


def _reachable(url: str) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        return bool(client.ping())
    except (redis.RedisError, ValueError):
        return False


def cluster_up(*, workers: int = 2, concurrency: int = 2, imports: str = "",
               extra_env: dict[str, str] | None = None,
               progress: Any = None) -> ClusterState:
    """Start the local stack; returns its state (also written to ``cluster.json``)."""
    say = progress or (lambda _msg: None)
    existing = load_state()
    if existing is not None and any(alive(m.pid) for m in existing.members):
        raise RuntimeError("a local cluster already runs here; `rl cluster down` first")
    base = base_dir()
    (base / "logs").mkdir(parents=True, exist_ok=True)
    url = os.environ.get("RELIER_REDIS_URL", "")
    state = ClusterState(redis_url=url, started=time.time())
    if not url or not _reachable(url):
        if url:
            say(f"no Redis answers at {mask_url(url)}; starting a local one")
        server = LocalRedis(directory=base / "redis", port=_port_for(url))
        server.start()
        state.redis_url, state.redis_pid, state.redis_dir = server.url, server.pid or 0, str(
            server.dir)
        say(f"Redis started at {server.url} (AOF, noeviction; data in {server.dir})")
    env = {"RELIER_REDIS_URL": state.redis_url, **(extra_env or {})}
    if imports:
        env["RELIER_IMPORTS"] = imports
    roles = [("worker", USER_QUEUES) for _ in range(workers)] + [("recovery", [RECOVERY_QUEUE])]
    for n, (role, queues) in enumerate(roles, start=1):
        hostname = f"{role}-{n}@{os.uname().nodename}"
        log = base / "logs" / f"{role}-{n}.log"
        proc = WorkerProcess("relier.tasks.app", env=env, queues=queues, hostname=hostname,
                             concurrency=concurrency if role == "worker" else 1, log_path=log)
        proc.start().wait_ready()
        state.members.append(Member(role, proc.pid, str(log), hostname, list(queues)))
        say(f"{role} {hostname} ready (pid {proc.pid}, queues {', '.join(queues)})")
    log = base / "logs" / "resurrector.log"
    resurrector = ResurrectorProcess(env=env, log_path=log)
    resurrector.start().wait_ready()
    state.members.append(Member("resurrector", resurrector.pid, str(log)))
    say(f"resurrector ready (pid {resurrector.pid})")
    state_path().write_bytes(msgspec.json.encode(state))
    return state


def _port_for(url: str) -> int | None:
    if not url:
        # The conventional port when it is free; otherwise any free one.
        with contextlib.suppress(OSError):
            import socket

            with socket.socket() as s:
                s.bind(("127.0.0.1", 6379))
            return 6379
        return None
    port = url.rsplit(":", 1)[-1].split("/")[0]
    return int(port) if port.isdigit() else None


def cluster_down(timeout: float = 30.0, progress: Any = None) -> int:
    """Stop the local stack (workers drain on SIGTERM); returns how many processes stopped."""
    say = progress or (lambda _msg: None)
    state = load_state()
    if state is None:
        return 0
    stopped = 0
    for member in state.members:
        if alive(member.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(member.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for member in state.members:
        while alive(member.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(member.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(member.pid, signal.SIGKILL)
        stopped += 1
        say(f"stopped {member.role} {member.hostname or member.pid}")
    if state.redis_pid and alive(state.redis_pid):
        os.kill(state.redis_pid, signal.SIGTERM)
        while alive(state.redis_pid) and time.monotonic() < deadline + 10:
            time.sleep(0.1)
        stopped += 1
        say(f"stopped Redis (pid {state.redis_pid}); its data stays in {state.redis_dir}")
    state_path().unlink(missing_ok=True)
    return stopped


def compose(*args: str) -> int:
    """Run ``docker compose`` on the repository's docker-compose.yml."""
    if shutil.which("docker") is None:
        raise RuntimeError("docker is not installed: use `rl cluster up` without --compose")
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True)
    if probe.returncode != 0:
        raise RuntimeError("no Docker engine answers (only the client is installed): use "
                           "`rl cluster up` without --compose, which runs processes")
    return subprocess.call(["docker", "compose", *args])


def describe(state: ClusterState) -> list[dict[str, Any]]:
    """The members of a cluster with their liveness, for ``status``."""
    rows: list[dict[str, Any]] = []
    if state.redis_pid:
        rows.append({"role": "redis", "pid": state.redis_pid, "alive": alive(state.redis_pid),
                     "detail": mask_url(state.redis_url)})
    rows.extend({"role": m.role, "pid": m.pid, "alive": alive(m.pid),
                 "detail": f"{m.hostname} {','.join(m.queues)}".strip(), "log": m.log}
                for m in state.members)
    return rows
