"""The local cluster's state file, ``.relier/cluster.json``: the one thing ``rl`` reads from it.

``rl cluster up`` (relier-lab) writes the file; every ``rl`` command reads it here, so that
without ``RELIER_REDIS_URL`` the shell talks to the Redis of the stack started in this
directory. The reader lives in relier-cli because the shell must work without relier-lab
installed; the writer imports these structs, so the format has one definition.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

__all__ = ["ClusterState", "Member", "adopt_local_cluster", "alive", "base_dir", "load_state",
           "state_path"]


class Member(msgspec.Struct):
    """One process of the local cluster."""

    role: str
    pid: int
    log: str
    hostname: str = ""
    queues: list[str] = []


class ClusterState(msgspec.Struct):
    """What ``.relier/cluster.json`` records."""

    redis_url: str
    redis_pid: int = 0
    redis_dir: str = ""
    members: list[Member] = []
    started: float = 0.0


def base_dir() -> Path:
    """``.relier/`` in the working directory."""
    return Path.cwd() / ".relier"


def state_path() -> Path:
    """Where the local cluster's state lives."""
    return base_dir() / "cluster.json"


def alive(pid: int) -> bool:
    """True when ``pid`` runs (and is not a zombie)."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True


def load_state() -> ClusterState | None:
    """The local cluster's state, if one was started here."""
    path = state_path()
    if not path.is_file():
        return None
    try:
        return msgspec.json.decode(path.read_bytes(), type=ClusterState)
    except msgspec.DecodeError:
        return None


def adopt_local_cluster() -> None:
    """Point ``RELIER_REDIS_URL`` at the local cluster's Redis when nothing else is set."""
    if os.environ.get("RELIER_REDIS_URL"):
        return
    state = load_state()
    if state is not None and (not state.redis_pid or alive(state.redis_pid)):
        os.environ["RELIER_REDIS_URL"] = state.redis_url
