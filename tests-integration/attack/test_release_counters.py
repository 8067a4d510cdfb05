"""Adversarial review of the issue 10 fixes: `rl dlq release` and the hand-off cap.

`dlq_release` gives a released task a fresh budget of deaths (``k`` = 0) and of
re-publications, but not of hand-offs (``ho``): a task dead-lettered ``max_handoffs_exceeded``
and released after the operator fixed the cause is dead-lettered again at its very first
hand-off (the next ordinary deploy), without ever having been handed off too often since.
"""

from __future__ import annotations

import pytest
import redis

from relier_testing import tasks
from relier_testing.helpers import record


def test_released_task_gets_a_fresh_handoff_budget(
    relier_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from relier.core.settings import reset_settings
    from relier.phoenix import Ledger

    monkeypatch.setenv("RELIER_MAX_HANDOFFS", "1")
    reset_settings(None)
    ledger = Ledger()
    client = redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])
    ledger.register_worker("w1", ttl_ms=60_000, facts={"hostname": "h"})
    task_id = tasks.multiply.push(2, 3).id

    def claim(queue: str) -> None:
        reply = ledger.claim(task_id=task_id, worker_id="w1", queue=queue)
        assert reply.kind == "claimed", reply

    def hand_off() -> str:
        return ledger.requeue(task_id, owner="w1", kind="handoff", cause="deploy").kind

    claim("default")
    assert hand_off() == "done"
    claim("re-queue")
    assert hand_off() == "dead"  # over RELIER_MAX_HANDOFFS=1
    assert record(client, task_id).reason == "max_handoffs_exceeded"
    assert ledger.release(task_id).kind == "done"  # the operator releases it
    claim("default")
    # One ordinary hand-off after the release: within the budget, as for kills.
    assert hand_off() == "done", record(client, task_id).message
