"""Admission control against real Redis: accuracy, Retry-After, scopes, failure modes."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis

from relier.admission import Admission, admission_key, counters
from relier.core.exceptions import AdmissionRejectedError, TaskDeadLetteredError
from relier.core.settings import Settings, reset_settings
from relier.phoenix import DeadLetterQueue
from relier_testing import tasks
from relier_testing.workers import WorkerProcess


@pytest.fixture
def limited(relier_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
            ) -> Callable[..., None]:
    def configure(**env: str) -> None:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        reset_settings(None)
        from relier.tasks.dispatch import reset_dispatcher

        reset_dispatcher(None)

    return configure


def test_at_most_limit_admitted_then_retry_after_admits(
    limited: Callable[..., None], relier_env: dict[str, str]
) -> None:
    limited(RELIER_ADMISSION_LIMIT="20", RELIER_ADMISSION_WINDOW="2")
    admitted, refusals = 0, []
    for _ in range(60):
        try:
            tasks.noop.push()
            admitted += 1
        except AdmissionRejectedError as exc:
            refusals.append(exc)
    assert admitted == 20
    assert len(refusals) == 40
    assert all(1 <= e.retry_after <= 2 for e in refusals)
    assert refusals[0].scope == "global"
    client = redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])
    assert client.llen("default") == 20  # refused dispatches enqueued nothing
    time.sleep(refusals[-1].retry_after)
    tasks.noop.push()  # capacity is back


def test_no_window_ever_holds_more_than_the_limit(limited: Callable[..., None]) -> None:
    limit, window = 10, 1.0
    limited(RELIER_ADMISSION_LIMIT=str(limit), RELIER_ADMISSION_WINDOW=str(window))
    stamps: list[float] = []
    end = time.monotonic() + 3.5 * window
    while time.monotonic() < end:
        try:
            tasks.noop.push()
            stamps.append(time.monotonic())
        except AdmissionRejectedError:
            time.sleep(0.01)
    assert len(stamps) >= 3 * limit  # capacity keeps coming back
    for i, t in enumerate(stamps):
        in_window = [s for s in stamps[i:] if s - t < window * 0.98]
        assert len(in_window) <= limit, f"{len(in_window)} admitted within one window"


def test_queue_and_key_limits(limited: Callable[..., None]) -> None:
    limited(RELIER_ADMISSION_QUEUE_LIMITS="high_priority=2", RELIER_ADMISSION_KEY_LIMIT="3",
            RELIER_ADMISSION_WINDOW="30")
    tasks.record.push("q1")
    tasks.record.push("q2")
    with pytest.raises(AdmissionRejectedError) as info:
        tasks.record.push("q3")
    assert info.value.scope == "queue:high_priority"
    tasks.noop.push()  # another queue is unaffected
    with admission_key("tenant:a"):
        for _ in range(3):
            tasks.noop.push()
        with pytest.raises(AdmissionRejectedError) as info:
            tasks.noop.push()
    assert info.value.scope == "key:tenant:a"
    with admission_key("tenant:b"):
        tasks.noop.push()


def test_standalone_check_and_failure_modes(limited: Callable[..., None]) -> None:
    limited(RELIER_ADMISSION_LIMIT="1", RELIER_ADMISSION_WINDOW="30")
    admission = Admission()
    assert admission.check().admitted
    refused = admission.check()
    assert (refused.admitted, refused.scope) == (False, "global")
    assert refused.retry_after >= 1
    with pytest.raises(AdmissionRejectedError):
        admission.admit()

    down = "redis://127.0.0.1:1/0"
    before = dict(counters.values)
    open_ = Admission(Settings.load(environ={"RELIER_REDIS_URL": down,
                                             "RELIER_REDIS_CONNECT_TIMEOUT": "0.2"},
                                    env_file=None)).check()
    assert (open_.admitted, open_.degraded) == (True, True)
    closed = Admission(Settings.load(environ={"RELIER_REDIS_URL": down,
                                              "RELIER_ADMISSION_FAIL": "closed",
                                              "RELIER_REDIS_CONNECT_TIMEOUT": "0.2"},
                                     env_file=None)).check()
    assert (closed.admitted, closed.degraded) == (False, True)
    assert counters.values["fail_open"] == before["fail_open"] + 1
    assert counters.values["fail_closed"] == before["fail_closed"] + 1


def test_dead_letter_release_passes_admission(
    limited: Callable[..., None], relier_worker: Callable[..., WorkerProcess]
) -> None:
    limited(RELIER_ADMISSION_LIMIT="1", RELIER_ADMISSION_WINDOW="30")
    relier_worker(concurrency=1)
    receipt = tasks.fail.push("once")
    with pytest.raises(TaskDeadLetteredError):
        receipt.get(timeout=20)
    from relier.admission import AdmissionPolicy

    policy = AdmissionPolicy()
    dlq = DeadLetterQueue(admission=lambda rec: policy.scopes(rec.queue))
    with pytest.raises(AdmissionRejectedError):
        dlq.release(receipt.id)
    assert dlq.count() == 1  # still there, untouched
