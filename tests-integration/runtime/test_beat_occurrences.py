"""Two Celery beat processes by accident (a classic deploy mistake): each occurrence runs once.

Vanilla Celery runs every scheduled task once per beat process. With ``relier.install`` the
app's beat scheduler tags each send with its entry, and the dispatch script records only the
first send of an occurrence; the second beat's send writes nothing. Two real ``celery beat``
processes (each with its own schedule file, as on two hosts) run the same 1 s entry.
"""

from __future__ import annotations

import importlib
import itertools
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from relier_testing.workers import ManagedProcess, WorkerProcess

EVERY = 1.0
BOTH_FOR = 8.0


class BeatProcess(ManagedProcess):
    """``celery beat`` of the plain app, with a schedule file of its own."""

    ready_marker = "beat: Starting..."

    def __init__(self, env: dict[str, str], schedule: Path) -> None:
        super().__init__([sys.executable, "-m", "celery", "-A", "relier_testing.plain_app",
                          "beat", "-l", "INFO", "-s", str(schedule)], env=env)


@pytest.fixture
def beats() -> Iterator[Callable[[dict[str, str]], BeatProcess]]:
    started: list[BeatProcess] = []
    folder = Path(tempfile.mkdtemp(prefix="relier-beat-"))

    def start(env: dict[str, str]) -> BeatProcess:
        beat = BeatProcess(env, folder / f"schedule-{len(started)}")
        started.append(beat)
        beat.start().wait_ready()
        return beat

    yield start
    for beat in started:
        beat.kill_group()
        if beat.proc is not None:
            beat.proc.wait(10)


def _ticks(client: redis.Redis) -> list[float]:
    return sorted(float(t) for t in client.lrange("test:beat:ticks", 0, -1))


@pytest.mark.parametrize("with_relier", [False, True], ids=["vanilla", "relier"])
def test_two_beats_run_each_occurrence_once(
    with_relier: bool, relier_env: dict[str, str],
    worker_factory: Callable[..., WorkerProcess],
    beats: Callable[[dict[str, str]], BeatProcess], monkeypatch: pytest.MonkeyPatch,
) -> None:
    flags = {"PLAIN_APP_RELIER": "1" if with_relier else "0",
             "PLAIN_APP_BEAT_EVERY": str(EVERY)}
    for name, value in flags.items():
        monkeypatch.setenv(name, value)
    import relier_testing.plain_app as plain_app

    importlib.reload(plain_app)
    env = {**relier_env, **flags, "RELIER_PREFLIGHT": "warn"}
    client = redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])
    worker_factory("relier_testing.plain_app", env=env, queues=("celery", "re-queue"),
                   concurrency=2).wait_ready()
    first = beats(env)
    time.sleep(0.4)  # the second beat runs out of phase with the first, as on another host
    beats(env)
    client.delete("test:beat:ticks")
    time.sleep(BOTH_FOR)
    both = _ticks(client)
    periods = BOTH_FOR / EVERY

    if not with_relier:
        assert len(both) >= 1.6 * periods, f"vanilla runs each occurrence twice: {len(both)}"
        return
    assert periods - 2 <= len(both) <= periods + 1, f"{len(both)} runs in {periods:g} periods"
    gaps = [b - a for a, b in itertools.pairwise(both)]
    assert min(gaps) >= 0.8 * EVERY, f"two runs of one occurrence: gaps {gaps}"
    # No occurrence is lost either: with the first beat gone, the second one's sends run.
    first.kill_group()
    client.delete("test:beat:ticks")
    time.sleep(5 * EVERY)
    assert len(_ticks(client)) >= 3, "the remaining beat's occurrences run"


@pytest.fixture
def shop(relier_env: dict[str, str]) -> Any:
    from celery import Celery

    from relier import install

    app = Celery("shop", broker=relier_env["RELIER_REDIS_URL"], set_as_current=False)
    return install(app)


def _sent(client: redis.Redis, task_id: str) -> bool:
    return bool(client.exists(f"rl:t:{{{task_id}}}"))


def test_only_the_scheduler_marks_an_occurrence_never_a_message_header(
        shop: Any, relier_env: dict[str, str]) -> None:
    """A publisher's own headers cannot pass for a beat send (and silence the entry)."""
    from relier.tasks.beat import _occurrence

    client = redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])
    forged = shop.send_task("shop.tick", headers={"rl_beat_entry": "tick",
                                                  "rl_beat_gap_ms": 10**13}).id
    with _occurrence("tick", 5_000):
        beat = shop.send_task("shop.tick").id
    assert _sent(client, forged)
    assert _sent(client, beat), "a header written by a publisher silenced the beat entry"


def test_occurrences_are_per_task_and_entry_and_a_retry_is_never_one(
        shop: Any, relier_env: dict[str, str]) -> None:
    from relier.tasks.beat import _occurrence

    client = redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])
    with _occurrence("cleanup", 5_000):
        first = shop.send_task("billing.cleanup").id
        other_app = shop.send_task("mail.cleanup").id  # another app's entry of the same name
        second_beat = shop.send_task("billing.cleanup").id
        retry = shop.send_task("billing.cleanup", task_id=first).id  # the same id again
    assert _sent(client, first)
    assert _sent(client, other_app)
    assert not _sent(client, second_beat), "the second beat's send of one occurrence"
    assert retry == first
    # first, the other app's and the re-dispatch: three messages, the second beat's none.
    assert client.llen("celery") == 3, "the re-dispatch of an existing id was dropped"


def test_a_marker_of_a_longer_period_does_not_swallow_a_shorter_schedule(
        shop: Any, relier_env: dict[str, str]) -> None:
    """The entry's schedule went from hourly to every 2 s: the next sends are new ones."""
    from relier.tasks.beat import _occurrence

    client = redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])
    with _occurrence("report", 3_240_000):
        hourly = shop.send_task("shop.report").id
    with _occurrence("report", 1_800):
        now = shop.send_task("shop.report").id
    assert _sent(client, hourly)
    assert _sent(client, now), "a marker left by the old period lost a run of the new one"
