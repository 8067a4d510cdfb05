"""The drain's decisions without Redis: which runs it stops after its deadline."""

from __future__ import annotations

from collections.abc import Collection
from types import SimpleNamespace
from typing import Any

import pytest

from relier.core.ops import TransitionReply
from relier.phoenix import drain as drain_module
from relier.phoenix.drain import Drain


@pytest.fixture(autouse=True)
def _no_drain_left_behind() -> Any:
    """A drain marks its whole process as shutting down: undo it for the tests that follow."""
    yield
    drain_module._draining.clear()


class FakeKeeper:
    """Owns ``tasks`` until the drain's deadline; ``finished`` complete just before it."""

    def __init__(self, tasks: set[str], finished: set[str],
                 over_cap: frozenset[str] = frozenset()) -> None:
        self.ledger = SimpleNamespace(settings=SimpleNamespace(graceful_shutdown_timeout=0.0))
        self.hostname = "w@test"
        self.tasks = tasks
        self.finished = finished
        self.over_cap = over_cap
        self.released: list[tuple[str, str]] = []

    def set_state(self, state: str) -> None:
        pass

    def owned(self) -> set[str]:
        return set(self.tasks)

    def release(self, task_id: str, *, kind: str, cause: str) -> TransitionReply:
        self.released.append((task_id, kind))
        if task_id in self.finished:
            return TransitionReply("skipped")
        return TransitionReply("dead" if task_id in self.over_cap else "done")

    def stop(self) -> None:
        raise AssertionError("a process pool drain never exits the process itself")


def run(keeper: Any) -> list[list[str]]:
    stopped: list[list[str]] = []

    def stop_runs(task_ids: Collection[str]) -> None:
        stopped.append(sorted(task_ids))

    drain = Drain(keeper, stop_runs=stop_runs)
    drain.begin(0.0)
    drain.wait()
    assert drain.finished.is_set()
    return stopped


def test_only_handed_off_runs_are_stopped() -> None:
    keeper = FakeKeeper({"a", "b"}, finished={"b"})
    assert run(keeper) == [["a"]]
    assert keeper.released == [("a", "handoff"), ("b", "handoff")]


def test_nothing_is_stopped_when_every_task_finished_at_the_deadline() -> None:
    # The tasks completed between the drain's last look and its deadline: their pool children
    # may still be sending the results to Celery, so killing them would lose those reports.
    assert run(FakeKeeper({"a"}, finished={"a"})) == []


def test_a_run_dead_lettered_past_the_hand_off_cap_is_stopped_too() -> None:
    # The hand-off was refused (RELIER_MAX_HANDOFFS) and the task dead-lettered instead: the
    # run is no longer the task's either, and Celery's warm shutdown must not wait for it.
    keeper = FakeKeeper({"a", "b", "c"}, finished={"b"}, over_cap=frozenset({"c"}))
    assert run(keeper) == [["a", "c"]]
