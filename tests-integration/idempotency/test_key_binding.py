"""One call, one key: idempotency keys are hashed over the arguments bound to the signature."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from relier_testing import tasks
from relier_testing.helpers import counter, plain_message, wait_for
from relier_testing.workers import WorkerProcess


@pytest.fixture
def client(relier_env: dict[str, str]) -> redis.Redis:
    return redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])


def test_every_spelling_of_one_call_is_deduplicated(client: redis.Redis) -> None:
    # charge(customer, cents, seconds=0.0): positional, by name, all by name, and the
    # default left out or spelled out are one call.
    first = tasks.charge.push("cus_1", 500)
    again = [
        tasks.charge.push("cus_1", cents=500),
        tasks.charge.push(customer="cus_1", cents=500),
        tasks.charge.push("cus_1", 500, 0.0),
        tasks.charge.push(cents=500, customer="cus_1", seconds=0.0),
    ]
    assert not first.deduplicated
    assert all(r.deduplicated and r.id == first.id for r in again)
    assert client.llen("default") == 1  # one message, one record, one key
    assert len(client.keys("rl:t:*")) == 1
    assert len(client.keys("rl:i:*")) == 1
    other = tasks.charge.push("cus_1", 501)
    assert not other.deduplicated


def test_legacy_message_is_keyed_like_push(relier_worker: Callable[..., WorkerProcess],
                                           client: redis.Redis) -> None:
    # The worker's adoption of a plain Celery message binds the same way as push does.
    relier_worker(concurrency=1)
    assert tasks.charge.push("cus_2", 700).get(timeout=20)["charge_number"] == 1
    legacy = plain_message(tasks.charge, customer="cus_2", cents=700, seconds=0.0)
    rec = f"rl:t:{{{legacy.id}}}"
    wait_for(lambda: client.hget(rec, "s") in (b"done", b"dead"), 20,
             "the legacy message to be claimed")
    assert client.hget(rec, "s") == b"done"
    assert client.hget(rec, "dup") is not None  # recorded as the first task's duplicate
    assert counter(client, "charge", "cus_2:700") == 1  # the body ran once
