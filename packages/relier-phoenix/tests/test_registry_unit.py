"""A message for a task this worker lacks, while a live worker that has it is busy.

``handle_unknown`` must neither drop such a task nor bounce it into ``NeverClaimed`` within a
second: it puts the task back after a growing delay (from a timer, here a list the test runs
by hand), counted apart from lost messages, and dead-letters it as ``UnregisteredTask`` naming
the busy workers only past ``MAX_BOUNCES``. End to end, against real workers:
``tests-integration/attack/test_unknown_bounce.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from relier.phoenix.ledger import MAX_BOUNCES, MAX_REPUBLISH
from relier.phoenix.registry import BOUNCE_DELAY_MAX, bounce_delay, handle_unknown
from stub_ledger import StubLedger, settings_for_tests

NAME = "app.echo"
HAS_IT = "celery@big:1:aa"
LACKS_IT = "celery@small:2:bb"


class Timers:
    """``later`` that keeps the delayed actions for the test to run."""

    def __init__(self) -> None:
        self.pending: list[tuple[float, Callable[[], None]]] = []

    def __call__(self, delay: float, action: Callable[[], None]) -> None:
        self.pending.append((delay, action))

    def fire(self) -> float:
        delay, action = self.pending.pop(0)
        action()
        return delay


def fleet(*, capable: bool = True, grace: str = "60") -> StubLedger:
    stub = StubLedger(settings_for_tests(resurrection_claim_grace_period=grace))
    workers = {LACKS_IT: ("celery@small", [])}
    if capable:
        workers[HAS_IT] = ("celery@big", [NAME])
    for worker_id, (hostname, names) in workers.items():
        stub.register_worker(worker_id, ttl_ms=10**9, facts={
            "hostname": hostname, "queues": "default", "tasks": json.dumps(names)})
    return stub


def unknown(stub: StubLedger, later: Timers, task_id: str = "t1") -> str:
    return handle_unknown(stub, task_id=task_id, name=NAME, queue="default", body=b"[]",
                          headers={}, content_type="", content_encoding="", later=later)


def test_bounce_delay_doubles_to_its_cap_and_stays_under_half_the_grace_period() -> None:
    assert [bounce_delay(n, 60.0) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert bounce_delay(1000, 60.0) == BOUNCE_DELAY_MAX
    assert [bounce_delay(n, 5.0) for n in range(5)] == [0.5, 1.0, 2.0, 2.5, 2.5]
    assert bounce_delay(0, 0.0) > 0  # never a busy loop, even with no grace period


def test_a_task_only_a_busy_worker_has_waits_past_the_never_claimed_limit() -> None:
    stub, later = fleet(), Timers()
    rec = stub.add("t1", NAME)
    delays = []
    for _ in range(MAX_REPUBLISH + 5):
        assert unknown(stub, later) == "deferred"
        assert len(later.pending) == 1
        seq = rec.message_seq
        delays.append(later.fire())  # the timer: only now is it published again
        assert rec.message_seq != seq
    assert rec.state == "queued", rec.reason  # not NeverClaimed: the busy worker may free up
    assert (rec.republished, rec.bounces) == (0, MAX_REPUBLISH + 5)
    assert delays[:5] == [0.5, 1.0, 2.0, 4.0, 5.0]
    # The busy worker frees up and claims it: a later bounce waits from the start again.
    stub.claim(task_id="t1", worker_id=HAS_IT, queue="default")
    assert rec.bounces == 0


def test_the_delay_is_not_taken_on_the_calling_thread() -> None:
    stub, later = fleet(), Timers()
    stub.add("t1", NAME)
    assert unknown(stub, later) == "deferred"
    assert "republish:t1:bounce" not in stub.calls  # scheduled, not done in the handler
    assert len(later.pending) == 1


def test_capable_workers_that_never_free_up_end_in_unregistered_task_naming_them() -> None:
    stub, later = fleet(), Timers()
    rec = stub.add("t1", NAME)
    for _ in range(MAX_BOUNCES + 1):
        assert unknown(stub, later) == "deferred"
        later.fire()
    assert (rec.state, rec.reason) == ("dead", "UnregisteredTask")
    for part in ("celery@big", "celery@small", NAME, "rl dlq release t1"):
        assert part in rec.message
    assert unknown(stub, later) == "ignored"
    assert not later.pending


def test_a_task_no_live_worker_registered_is_dead_lettered_at_once() -> None:
    stub, later = fleet(capable=False), Timers()
    rec = stub.add("t1", NAME)
    assert unknown(stub, later) == "dead"
    assert (rec.state, rec.reason) == ("dead", "UnregisteredTask")
    assert not later.pending


@pytest.mark.parametrize("moved", ["claimed", "republished by a resurrector"])
def test_a_delayed_put_back_is_a_no_op_once_the_task_moved(moved: str) -> None:
    stub, later = fleet(), Timers()
    rec = stub.add("t1", NAME)
    assert unknown(stub, later) == "deferred"
    if moved == "claimed":
        stub.claim(task_id="t1", worker_id=HAS_IT, queue="default")
    else:
        assert stub.republish("t1", "default", rec.message_seq).kind == "done"
    state, seq = rec.state, rec.message_seq
    later.fire()
    assert (rec.state, rec.message_seq, rec.bounces) == (state, seq, 0)
