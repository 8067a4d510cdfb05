"""Every decision of the middleware, the lease keeper and the resurrector, without Redis.

They run against ``StubLedger``, an in-memory implementation of ``LedgerPort`` (the ledger
interface they depend on). The same decisions are exercised end to end against a real Redis
and real workers in ``tests-integration/phoenix``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from typing import Any

import pytest

from relier.core import codec
from relier.core.exceptions import EpochFencedError, RelierError, TaskTimeoutError
from relier.core.pipeline import Job, SkipRun, TaskOptions
from relier.core.queues import RECOVERY_QUEUE
from relier.phoenix import drain as drain_module
from relier.phoenix import lease as lease_module
from relier.phoenix.lease import LeaseKeeper
from relier.phoenix.ledger import Ledger
from relier.phoenix.middleware import PhoenixMiddleware
from relier.phoenix.port import LedgerPort
from relier.phoenix.resurrector import Resurrector
from stub_ledger import StubLedger, settings_for_tests

W = "celery@w1:1:aa"


def job(task_id: str = "t1", *, legacy: bool = False, idem_key: str = "",
        **scratch: Any) -> Job:
    return Job(task_id=task_id, options=TaskOptions("app.job", "default", False),
               delivery_queue="default", worker_id=W, hostname="celery@w1", legacy=legacy,
               idem_key=idem_key, sealed=b"SEALED" if legacy else b"", scratch=dict(scratch))


@pytest.fixture
def ledger() -> StubLedger:
    stub = StubLedger()
    stub.register_worker(W, ttl_ms=60_000, facts={"hostname": "celery@w1"})
    return stub


@pytest.fixture
def phoenix(ledger: StubLedger) -> PhoenixMiddleware:
    return PhoenixMiddleware(ledger)


# -- the interface --------------------------------------------------------------------------------

def test_the_stub_and_the_ledger_have_the_same_port_methods() -> None:
    port = {name for name, value in vars(LedgerPort).items()
            if callable(value) and not name.startswith("_")}
    assert port >= {"claim", "complete", "fail", "requeue", "renew_worker"}
    for name in sorted(port):
        expected = inspect.signature(getattr(LedgerPort, name))
        for impl in (Ledger, StubLedger):
            got = inspect.signature(getattr(impl, name))
            assert list(got.parameters) == list(expected.parameters), f"{impl.__name__}.{name}"


# -- PhoenixMiddleware: before the body -----------------------------------------------------------

def test_claim_fills_the_job_and_the_result_is_committed(
    ledger: StubLedger, phoenix: PhoenixMiddleware
) -> None:
    ledger.add("t1", max_resurrections=3, checkpoint=codec.encode({"step": 2}))
    j = job()
    phoenix.before_run(j)
    assert (j.epoch, j.attempt, j.max_resurrections) == (1, 1, 3)
    assert j.checkpoint == {"step": 2}
    j.result = {"ok": True}
    phoenix.after_run(j, None)
    rec = ledger.records["t1"]
    assert rec.state == "done"
    assert codec.decode(rec.result or b"") == {"ok": True}
    assert ledger.worker_tasks(W) == set()


def test_duplicate_delivery_is_skipped_without_running(
    ledger: StubLedger, phoenix: PhoenixMiddleware
) -> None:
    ledger.add("t1", state="running", owner="celery@other:2:bb")
    expected = r"duplicate delivery: the task is running \(owner celery@other:2:bb\)"
    with pytest.raises(SkipRun, match=expected):
        phoenix.before_run(job())
    assert ledger.calls == ["claim:"]


def test_missing_record_is_dead_lettered_with_the_message(
    ledger: StubLedger, phoenix: PhoenixMiddleware
) -> None:
    with pytest.raises(SkipRun, match="no ledger record"):
        phoenix.before_run(job())
    rec = ledger.records["t1"]
    assert (rec.state, rec.reason) == ("dead", "LedgerRecordMissing")
    assert rec.outcomes == ["rejected"]
    assert codec.decode(rec.envelope)["id"] == "t1"


def test_a_worker_without_a_lease_refuses_to_run(
    ledger: StubLedger, phoenix: PhoenixMiddleware
) -> None:
    ledger.add("t1")
    ledger.now_ms += 120_000  # the lease expired
    with pytest.raises(RelierError, match="holds no live Relier lease"):
        phoenix.before_run(job())
    assert ledger.records["t1"].state == "queued"


def test_wrong_idempotency_key_claims_again_with_the_records_own(
    ledger: StubLedger, phoenix: PhoenixMiddleware, caplog: pytest.LogCaptureFixture
) -> None:
    ledger.add("t1", idem_key="rl:i:app.job:v1:real", idem_ttl=60)
    j = job(idem_key="rl:i:app.job:v1:forged")
    with caplog.at_level(logging.WARNING):
        phoenix.before_run(j)
    assert ledger.calls == ["claim:rl:i:app.job:v1:forged", "claim:rl:i:app.job:v1:real"]
    assert (j.epoch, j.idem_key) == (1, "rl:i:app.job:v1:real")
    assert "header is not trusted" in caplog.text


def test_missing_idempotency_header_rekeys_without_a_warning(
    ledger: StubLedger, phoenix: PhoenixMiddleware, caplog: pytest.LogCaptureFixture
) -> None:
    ledger.add("t1", idem_key="rl:i:app.job:v1:real", idem_ttl=60)
    with caplog.at_level(logging.WARNING):
        phoenix.before_run(job())
    assert ledger.calls == ["claim:", "claim:rl:i:app.job:v1:real"]
    assert "not trusted" not in caplog.text


def test_idempotent_duplicate_returns_the_owners_result(
    ledger: StubLedger, phoenix: PhoenixMiddleware
) -> None:
    ledger.idem_owners["k"] = ("t0", codec.encode(42))
    ledger.add("t1", idem_key="k", idem_ttl=60)
    with pytest.raises(SkipRun, match="already owned by task t0") as info:
        phoenix.before_run(job(idem_key="k"))
    assert info.value.result == 42


def test_legacy_message_rejected_when_unsigned_messages_are_refused() -> None:
    ledger = StubLedger(settings_for_tests(accept_unsigned="false"))
    ledger.register_worker(W, ttl_ms=60_000, facts={})
    with pytest.raises(SkipRun, match="RELIER_ACCEPT_UNSIGNED=false"):
        PhoenixMiddleware(ledger).before_run(job(legacy=True, raw=b"RAW BODY"))
    rec = ledger.records["t1"]
    assert (rec.state, rec.reason, rec.envelope) == ("dead", "LegacyMessageRejectedError",
                                                     b"RAW BODY")
    assert not any(c.startswith("claim") for c in ledger.calls)


def test_legacy_message_that_cannot_be_adopted_is_dead_lettered() -> None:
    ledger = StubLedger(settings_for_tests(accept_unsigned="true"))
    ledger.register_worker(W, ttl_ms=60_000, facts={})
    j = job(legacy=True, adoption_error=ValueError("NaN has no JSON form"), raw=b"RAW")
    with pytest.raises(SkipRun, match="not adoptable"):
        PhoenixMiddleware(ledger).before_run(j)
    rec = ledger.records["t1"]
    assert (rec.state, rec.reason, rec.envelope) == ("dead", "LegacyAdoptionFailed", b"RAW")
    assert "NaN has no JSON form" in rec.message


def test_legacy_message_is_adopted_by_its_claim() -> None:
    ledger = StubLedger(settings_for_tests(accept_unsigned="true"))
    ledger.register_worker(W, ttl_ms=60_000, facts={})
    j = job(legacy=True)
    PhoenixMiddleware(ledger).before_run(j)
    assert j.epoch == 1
    assert ledger.records["t1"].legacy


# -- PhoenixMiddleware: after the body ------------------------------------------------------------

def claimed(ledger: StubLedger, phoenix: PhoenixMiddleware, task_id: str = "t1") -> Job:
    ledger.add(task_id)
    j = job(task_id)
    phoenix.before_run(j)
    return j


def test_failure_is_dead_lettered_with_its_reason(
    ledger: StubLedger, phoenix: PhoenixMiddleware
) -> None:
    j = claimed(ledger, phoenix)
    phoenix.after_run(j, KeyError("missing"))
    rec = ledger.records["t1"]
    assert (rec.state, rec.reason, rec.exc_type, rec.outcomes) == (
        "dead", "KeyError", "builtins.KeyError", ["failed"])


def test_timeout_is_dead_lettered_as_a_timeout(
    ledger: StubLedger, phoenix: PhoenixMiddleware
) -> None:
    j = claimed(ledger, phoenix)
    phoenix.after_run(j, TaskTimeoutError("app.job", 1.0))
    rec = ledger.records["t1"]
    assert (rec.reason, rec.outcomes) == ("TimeoutError", ["timeout"])


def test_a_fenced_run_writes_nothing(
    ledger: StubLedger, phoenix: PhoenixMiddleware, caplog: pytest.LogCaptureFixture
) -> None:
    zombie = claimed(ledger, phoenix)
    ledger.requeue("t1", owner=W, kind="killed", cause="presumed dead")
    fresh = job()
    phoenix.before_run(fresh)
    assert fresh.epoch == zombie.epoch + 1
    with caplog.at_level(logging.WARNING):
        zombie.result = "late"
        phoenix.after_run(zombie, None)  # its result is refused
        phoenix.after_run(zombie, ValueError("late failure"))  # and so is its failure
        phoenix.after_run(zombie, EpochFencedError("t1", zombie.epoch, "checkpoint"))
    assert ledger.calls.count("complete") == 1
    assert ledger.calls.count("fail") == 1  # the EpochFencedError is not even sent
    rec = ledger.records["t1"]
    assert (rec.state, rec.epoch, rec.result) == ("running", fresh.epoch, None)
    assert caplog.text.count("run fenced off") == 3


def test_checkpoints_are_fenced_on_the_epoch(
    ledger: StubLedger, phoenix: PhoenixMiddleware
) -> None:
    zombie = claimed(ledger, phoenix)
    assert zombie.checkpointer is not None
    asyncio.run(zombie.checkpointer({"step": 1}))
    assert codec.decode(ledger.records["t1"].checkpoint) == {"step": 1}
    ledger.requeue("t1", owner=W, kind="killed", cause="presumed dead")
    phoenix.before_run(job())
    with pytest.raises(EpochFencedError):
        asyncio.run(zombie.checkpointer({"step": 2}))
    assert codec.decode(ledger.records["t1"].checkpoint) == {"step": 1}


@pytest.mark.parametrize("error",
                         [asyncio.CancelledError(), SystemExit(0), KeyboardInterrupt()])
def test_interrupted_while_shutting_down_is_handed_off(
    ledger: StubLedger, phoenix: PhoenixMiddleware, error: BaseException
) -> None:
    j = claimed(ledger, phoenix)
    ledger.set_worker_state(W, "draining")  # what a draining worker records for its children
    phoenix.after_run(j, error)
    rec = ledger.records["t1"]
    assert (rec.state, rec.message_queue, rec.outcomes) == ("queued", RECOVERY_QUEUE,
                                                            ["handoff"])
    assert rec.resurrections == 0  # a hand-off is not a death


def test_cancelled_by_the_body_itself_is_a_failure(
    ledger: StubLedger, phoenix: PhoenixMiddleware, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(drain_module._draining, "is_set", lambda: False)
    j = claimed(ledger, phoenix)
    started = time.monotonic()
    phoenix.after_run(j, asyncio.CancelledError())
    assert time.monotonic() - started >= 1.0  # it looked again for a late drain (settle)
    rec = ledger.records["t1"]
    assert (rec.state, rec.reason) == ("dead", "CancelledError")
    assert "while its worker was not shutting down" in rec.message
    assert not any(c.startswith("requeue") for c in ledger.calls)


# -- the lease keeper -----------------------------------------------------------------------------

@pytest.fixture
def keeper(monkeypatch: pytest.MonkeyPatch) -> tuple[StubLedger, LeaseKeeper, set[str]]:
    monkeypatch.setattr(lease_module, "_current", None)
    ledger = StubLedger()
    active: set[str] = set()
    drains: list[float] = []
    k = LeaseKeeper(ledger, hostname="celery@w1", queues=["default"],
                    active_ids=lambda: set(active), on_drain=drains.append)
    k.register()
    k.drains = drains  # type: ignore[attr-defined]
    return ledger, k, active


def run_on(ledger: StubLedger, keeper: LeaseKeeper, task_id: str) -> None:
    ledger.add(task_id)
    assert ledger.claim(task_id=task_id, worker_id=keeper.worker_id,
                        queue="default").kind == "claimed"


def test_renewal_extends_the_lease_and_passes_on_a_drain_request(
    keeper: tuple[StubLedger, LeaseKeeper, set[str]]
) -> None:
    ledger, k, _ = keeper
    assert lease_module.current_keeper() is k
    ledger.now_ms += 1_000  # a third of the TTL: a renewal on schedule
    ledger.facts[k.worker_id]["drain"] = "12.5"
    k.renew()
    assert ledger.leases[k.worker_id] == ledger.now_ms + k.ttl_ms
    assert k.drains == [12.5]  # type: ignore[attr-defined]
    assert "drain" not in ledger.facts[k.worker_id]
    assert (k.renewals, k.lost_leases) == (1, 0)


def test_a_lost_lease_fences_and_requeues_every_owned_task_then_registers_again(
    keeper: tuple[StubLedger, LeaseKeeper, set[str]]
) -> None:
    ledger, k, active = keeper
    run_on(ledger, k, "t1")
    active.add("t1")
    ledger.now_ms += k.ttl_ms + 1  # silent past the TTL
    k.renew()
    assert k.lost_leases == 1
    rec = ledger.records["t1"]
    assert (rec.state, rec.outcomes) == ("queued", ["lease_expired"])
    assert "requeue:t1:lease_expired" in ledger.calls
    assert ledger.leases[k.worker_id] > ledger.now_ms  # registered again


def test_reconciliation_releases_a_task_only_when_seen_twice(
    keeper: tuple[StubLedger, LeaseKeeper, set[str]]
) -> None:
    ledger, k, _ = keeper
    run_on(ledger, k, "t1")  # owned in the ledger, not running here (its child died)
    k.renew()
    assert ledger.records["t1"].state == "running"  # a suspect after one look
    k.renew()
    rec = ledger.records["t1"]
    assert (rec.state, rec.outcomes, rec.resurrections) == ("queued", ["killed"], 1)


def test_release_lost_requeues_a_claimed_task_and_republishes_an_unclaimed_one(
    keeper: tuple[StubLedger, LeaseKeeper, set[str]]
) -> None:
    ledger, k, _ = keeper
    run_on(ledger, k, "t1")
    assert k.release_lost("t1", "child killed by signal 9") == "done"
    ledger.add("t2")  # the child died before it claimed: the message is gone
    assert k.release_lost("t2", "child killed by signal 9") == "republished"
    assert ledger.records["t2"].republished == 1


def test_release_lost_leaves_a_handed_off_task_alone(
    keeper: tuple[StubLedger, LeaseKeeper, set[str]]
) -> None:
    ledger, k, _ = keeper
    run_on(ledger, k, "t1")
    assert k.release("t1", kind="handoff", cause="drain").kind == "done"
    calls = len(ledger.calls)
    assert k.release_lost("t1", "child exited") == "skipped"
    assert len(ledger.calls) == calls


@pytest.mark.parametrize(("first", "second"), [("watch", "celery"), ("celery", "watch")])
def test_the_second_report_of_one_child_death_leaves_the_next_run_alone(
    keeper: tuple[StubLedger, LeaseKeeper, set[str]], first: str, second: str
) -> None:
    ledger, k, _ = keeper
    run_on(ledger, k, "t1")
    assert k.release_lost("t1", "child killed by signal 9", source=first) == "done"
    # A sibling child (same lease id) claims the next run before the other report arrives.
    assert ledger.claim(task_id="t1", worker_id=k.worker_id, queue="default").kind == "claimed"
    assert k.release_lost("t1", "child killed by signal 9", source=second) == "skipped"
    rec = ledger.records["t1"]
    assert (rec.state, rec.epoch, rec.resurrections) == ("running", 2, 1)
    assert "t1" in ledger.worker_tasks(k.worker_id)
    # A later death of that next run is released again (its first report).
    assert k.release_lost("t1", "child killed by signal 9", source=first) == "done"
    assert (rec.state, rec.resurrections) == ("queued", 2)


def test_a_release_naming_an_older_epoch_ends_nothing(
    keeper: tuple[StubLedger, LeaseKeeper, set[str]]
) -> None:
    ledger, k, _ = keeper
    run_on(ledger, k, "t1")
    assert k.release("t1", kind="killed", cause="x", epoch=2).kind == "skipped"
    assert ledger.records["t1"].state == "running"
    assert k.release("t1", kind="killed", cause="x", epoch=1).kind == "done"


def test_a_message_naming_another_task_than_its_record_is_not_run(
    ledger: StubLedger, phoenix: PhoenixMiddleware
) -> None:
    ledger.add("t1", name="app.other")
    with pytest.raises(SkipRun, match="not this record's message"):
        phoenix.before_run(job())
    rec = ledger.records["t1"]
    assert (rec.state, rec.epoch) == ("queued", 0)


def test_stop_returns_the_lease(keeper: tuple[StubLedger, LeaseKeeper, set[str]]) -> None:
    ledger, k, _ = keeper
    k.stop()
    assert k.worker_id not in ledger.leases


# -- the resurrector ------------------------------------------------------------------------------

def dead_worker(ledger: StubLedger, task_id: str, **fields: Any) -> None:
    ledger.register_worker("gone", ttl_ms=1_000, facts={"hostname": "celery@gone"})
    ledger.add(task_id, **fields)
    assert ledger.claim(task_id=task_id, worker_id="gone", queue="default").kind == "claimed"
    ledger.now_ms += 2_000


def resurrector(ledger: StubLedger) -> Resurrector:
    return Resurrector(ledger=ledger)


def test_tasks_of_a_dead_worker_are_requeued_and_the_worker_reaped() -> None:
    ledger = StubLedger()
    dead_worker(ledger, "t1")
    report, _ = resurrector(ledger).run_pass()
    assert (report.requeued, report.dead_workers, report.dead_lettered) == (1, 1, 0)
    rec = ledger.records["t1"]
    assert (rec.state, rec.message_queue, rec.resurrections) == ("queued", RECOVERY_QUEUE, 1)
    assert "gone" not in ledger.leases
    assert len(ledger.resurrector_passes) == 1


def test_a_task_past_max_resurrections_is_dead_lettered() -> None:
    ledger = StubLedger()
    dead_worker(ledger, "t1", max_resurrections=0)
    report, _ = resurrector(ledger).run_pass()
    assert (report.requeued, report.dead_lettered) == (0, 1)
    assert ledger.records["t1"].reason == "max_resurrections_exceeded"


def test_a_live_worker_is_left_alone_and_the_next_deadline_sets_the_sleep() -> None:
    ledger = StubLedger()
    ledger.register_worker("alive", ttl_ms=300, facts={})
    report, sleep_for = resurrector(ledger).run_pass()
    assert not report
    assert sleep_for == pytest.approx(0.3)


def test_a_message_lost_behind_the_watermark_is_published_again() -> None:
    ledger = StubLedger(settings_for_tests(resurrection_claim_grace_period="0.01"))
    lost = ledger.add("lost")  # seq 1: left the list, never claimed
    waiting = ledger.add("waiting")  # seq 2: still in the list
    ledger.marks = {"default": (2, 1)}  # published up to 2, claimed up to 1
    ledger.depths = {"default": 1}
    r = resurrector(ledger)
    r.run_pass()  # first sample of the frontier
    time.sleep(0.02)
    report, _ = r.run_pass()  # the frontier has stood still for the grace period
    assert report.republished == 1
    assert (lost.republished, waiting.republished) == (1, 0)


def test_resurrections_pause_while_the_recovery_queue_is_deep() -> None:
    ledger = StubLedger(settings_for_tests(resurrection_max_queue_depth="5"))
    dead_worker(ledger, "t1")
    ledger.depths = {RECOVERY_QUEUE: 5}
    report, _ = resurrector(ledger).run_pass()
    assert report.throttled
    assert report.requeued == 0
    assert ledger.records["t1"].state == "running"
    ledger.depths = {RECOVERY_QUEUE: 4}  # room for one: the budget is what is left
    report, _ = resurrector(ledger).run_pass()
    assert (report.throttled, report.requeued) == (False, 1)


def test_due_scheduled_tasks_are_promoted_and_the_next_due_time_sets_the_sleep() -> None:
    ledger = StubLedger()
    ledger.due = {"now": ledger.now_ms - 1, "soon": ledger.now_ms + 40, "later": ledger.now_ms
                  + 60_000}
    report, sleep_for = resurrector(ledger).run_pass()
    assert (report.promoted, ledger.promoted) == (1, ["now"])
    assert sleep_for == pytest.approx(0.04)


def test_promotion_goes_on_while_the_recovery_queue_is_deep() -> None:
    ledger = StubLedger(settings_for_tests(resurrection_max_queue_depth="5"))
    ledger.depths = {RECOVERY_QUEUE: 5}
    ledger.due = {"t1": ledger.now_ms}
    report, _ = resurrector(ledger).run_pass()
    assert report.throttled
    assert ledger.promoted == ["t1"]
