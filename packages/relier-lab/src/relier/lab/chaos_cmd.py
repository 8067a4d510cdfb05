"""``rl chaos``: break a local cluster on purpose and watch Relier recover (no Docker).

The scenarios act on processes of this machine: the workers registered in the ledger with
this host's name, and a Redis server running here. Workers must import
``relier.lab.chaos_tasks`` (``rl cluster up`` sets that up).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import typer

from relier.cli._common import ago, console, fail, guard, ledger, settings
from relier.core.codec import text
from relier.core.record import DEAD_REASON, STATE

app = typer.Typer(no_args_is_help=True, help="Break things on purpose; watch Relier recover.")


def _local_workers() -> list[dict[str, str]]:
    here = socket.gethostname()
    return [{"lease": w.worker_id, "hostname": w.hostname, "host": w.host, "pid": str(w.pid)}
            for w in ledger().workers(live_only=True) if w.host == here and w.pid is not None]


def _dispatch_long(seconds: float) -> tuple[Any, str]:
    settings()  # RELIER_REDIS_URL of the local cluster, when one runs here
    from relier.lab.chaos_tasks import long_running

    marker = uuid.uuid4().hex[:8]
    return long_running.push(seconds, marker), marker


def _attempt_pids(marker: str) -> list[tuple[int, int]]:
    from relier.core.connection import redis_client

    client = redis_client(settings())
    return [tuple(map(int, text(v).split(":"))) for v in  # type: ignore[misc]
            client.lrange(f"rl-chaos:{marker}", 0, -1)]


def _wait_started(marker: str, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = _attempt_pids(marker)
        if pids:
            return pids[-1][1]
        time.sleep(0.05)
    fail("the chaos task never started: do the workers import relier.lab.chaos_tasks "
         "(RELIER_IMPORTS), and consume the default queue?")


def _watch(receipt: Any, killed_at: float, timeout: float) -> None:
    """Follow the task's story until it completes, printing each change."""
    from relier.phoenix import task_story

    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        story = task_story(receipt.id, settings())
        rec = story.record
        line = f"{rec.state} attempt {rec.attempt}" + (
            f" on {story.owner_hostname}" if rec.state == "running" else "")
        if line != seen:
            console.print(f"  +{time.monotonic() - killed_at:5.2f}s  {line}")
            seen = line
        if rec.state in ("done", "dead"):
            if rec.history:
                console.print(f"  causes: {'; '.join(a.cause for a in rec.history if a.cause)}")
            return
        time.sleep(0.1)
    fail(f"task {receipt.id} did not finish within {timeout:g}s", 1)


def _recovered_after(marker: str, attempts: int, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if len(_attempt_pids(marker)) >= attempts:
            return time.monotonic() - t0
        time.sleep(0.02)
    fail(f"the task did not run again within {timeout:g}s: is a resurrector running "
         "(`rl doctor`) and does a worker consume re-queue?", 1)


@app.command("worker-kill")
@guard
def worker_kill(
    watch: bool = typer.Option(False, "--watch", help="Follow the task until it completes."),
    seconds: float = typer.Option(5.0, "--seconds", help="How long the victim task runs."),
) -> None:
    """SIGKILL the whole worker (main process and pool) running a task; time its return."""
    receipt, marker = _dispatch_long(seconds)
    child = _wait_started(marker)
    victim = next((w for w in _local_workers()
                   if child in _pool_of(int(w["pid"])) or child == int(w["pid"])), None)
    if victim is None:
        fail("the task runs on a worker of another host; run rl chaos there")
    pid = int(victim["pid"])
    console.print(f"task {receipt.id} runs on {victim['hostname']} (pid {pid}); SIGKILL")
    killed_at = time.monotonic()
    _kill_tree(pid)
    _report_return(receipt, marker, killed_at, watch, timeout=60, seconds=seconds)


@app.command("child-kill")
@guard
def child_kill(
    watch: bool = typer.Option(False, "--watch", help="Follow the task until it completes."),
    seconds: float = typer.Option(5.0, "--seconds", help="How long the victim task runs."),
) -> None:
    """SIGKILL only the pool child running a task (its worker lives); time the re-run."""
    receipt, marker = _dispatch_long(seconds)
    child = _wait_started(marker)
    console.print(f"task {receipt.id} runs in pool child {child}; SIGKILL")
    killed_at = time.monotonic()
    os.kill(child, signal.SIGKILL)
    _report_return(receipt, marker, killed_at, watch, timeout=30, seconds=seconds)


def _report_return(receipt: Any, marker: str, killed_at: float, watch: bool, *,
                   timeout: float, seconds: float) -> None:
    """Follow the killed task to completion (--watch), or time its second start."""
    if watch:
        _watch(receipt, killed_at, seconds + timeout)
    else:
        took = _recovered_after(marker, 2, timeout)
        console.print(f"task running again after {took:.2f}s")


@app.command("redis-restart")
@guard
def redis_restart(
    tasks: int = typer.Option(20, "--tasks", help="Tasks in flight during the restart."),
    down: float = typer.Option(1.0, "--down", help="Seconds Redis stays down."),
) -> None:
    """SIGKILL the local Redis mid-run and restart it from its AOF; count what survived."""
    import redis

    from relier.core.connection import redis_client

    client = redis_client(settings())
    # A message kombu popped just before the kill never reaches a worker; only the resurrector
    # finds and re-publishes it. Without one the count below would blame Relier for it.
    if not ledger().resurrectors_alive():
        fail("no live resurrector: it re-publishes messages lost when Redis dies mid-pop; "
             "start `rl run-resurrector` (or use `rl cluster up`) and run this again")
    info = client.info("server")
    pid = int(info["process_id"])
    if not Path(f"/proc/{pid}").exists():
        fail("Redis does not run on this machine: rl chaos redis-restart needs a local one")
    argv = _restart_argv(client, info)
    cwd = os.readlink(f"/proc/{pid}/cwd")
    if client.config_get("appendonly").get("appendonly") != "yes":
        fail("this Redis runs without AOF: a restart would lose everything; refusing")
    from relier.lab.chaos_tasks import long_running

    markers = [uuid.uuid4().hex[:8] for _ in range(tasks)]
    receipts = [long_running.push(0.5, m) for m in markers]
    time.sleep(0.5)
    console.print(f"{tasks} tasks dispatched; SIGKILL Redis (pid {pid})")
    os.kill(pid, signal.SIGKILL)
    time.sleep(down)
    restarted = subprocess.Popen(argv, cwd=cwd, start_new_session=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _follow_in_cluster_state(pid, restarted.pid)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError):
            if client.ping() and client.info("persistence").get("loading", 0) == 0:
                break
        time.sleep(0.1)
    console.print("Redis restarted from its AOF; waiting for the tasks")
    done = sum(1 for r in receipts if _finished(r, 90))
    if done == tasks:
        console.print(f"delivered {done} of {tasks}, lost 0")
    else:
        console.print(f"delivered {done} of {tasks}; {tasks - done} not delivered (why: above)")
    if done != tasks:
        raise typer.Exit(1)


def _follow_in_cluster_state(old_pid: int, new_pid: int) -> None:
    """Point a local cluster's state at the restarted Redis, so `rl cluster down` stops it."""
    import msgspec

    from relier.lab import cluster

    state = cluster.load_state()
    if state is not None and state.redis_pid == old_pid:
        state.redis_pid = new_pid
        cluster.state_path().write_bytes(msgspec.json.encode(state))


#: What a restarted server must keep to come back as the same server with the same data.
_KEEP = ("port", "bind", "dir", "appendonly", "appendfsync", "appendfilename",
         "appenddirname", "dbfilename", "save", "maxmemory", "maxmemory-policy", "unixsocket",
         "requirepass", "logfile")


def _restart_argv(client: Any, info: dict[str, Any]) -> list[str]:
    """How to start this server again (its config file, else its live configuration).

    Redis rewrites its process title, so /proc/<pid>/cmdline does not hold its arguments.
    """
    binary = info.get("executable") or shutil.which("redis-server") or "redis-server"
    if info.get("config_file"):
        return [binary, info["config_file"]]
    argv = [binary]
    for name in _KEEP:
        value = client.config_get(name).get(name)
        if value is None:
            continue
        argv += [f"--{name}", str(value)]
    return argv


def _finished(receipt: Any, timeout: float) -> bool:
    try:
        receipt.get(timeout=timeout)
        return True
    except Exception as exc:
        console.print(f"  task {receipt.id}: {type(exc).__name__}: {exc}")
        return False


@app.command("poison")
@guard
def poison() -> None:
    """Dispatch a tampered payload: it must land in the dead-letter queue, never run."""
    from relier.core.ops import DispatchRequest
    from relier.envelope import Envelope, Keyring, seal

    s = settings()
    led = ledger()
    task_id = f"chaos-poison-{uuid.uuid4().hex[:8]}"
    sealed = bytearray(seal(Envelope("chaos.noop", task_id, 1, [], {}), Keyring.from_settings(s)))
    sealed[-3] ^= 0xFF  # one flipped byte in the body
    led.dispatch(DispatchRequest(task_id=task_id, task_name="chaos.noop", queue="default",
                                 envelope=bytes(sealed), max_resurrections=0))
    console.print(f"dispatched tampered task {task_id}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rec = led.record_fields(task_id, STATE, DEAD_REASON)
        if rec.state == "dead":
            console.print(f"[green]dead-lettered[/green] with reason {rec.reason}; the "
                          f"payload was never run. `rl dlq show {task_id}`")
            return
        time.sleep(0.1)
    fail("the poison task was not dead-lettered within 30s: is a worker running?", 1)


@app.command("load-spike")
@guard
def load_spike(
    rps: int = typer.Option(200, "--rps", help="Dispatches per second."),
    duration: float = typer.Option(5.0, "--duration", help="Seconds."),
) -> None:
    """Dispatch at a fixed rate; count admitted, refused (429) and failed dispatches."""
    settings()
    from relier.core.exceptions import AdmissionRejectedError
    from relier.lab.chaos_tasks import noop

    admitted = refused = failed = 0
    retry_after: set[int] = set()
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < duration:
        n += 1
        try:
            noop.push()
            admitted += 1
        except AdmissionRejectedError as exc:
            refused += 1
            retry_after.add(exc.retry_after)
        except Exception:
            failed += 1
        pause = start + n / rps - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    took = time.monotonic() - start
    console.print(f"{n} dispatches in {ago(took * 1000)}: admitted {admitted}, refused "
                  f"{refused}" + (f" (Retry-After {sorted(retry_after)})" if refused else "")
                  + f", failed {failed}")


def _pool_of(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _kill_tree(pid: int) -> None:
    """SIGKILL a worker and its pool at once, as the OOM killer of a container would."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
            return
    except OSError:
        pass
    for child in _pool_of(pid):
        with contextlib.suppress(OSError):
            os.kill(child, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
