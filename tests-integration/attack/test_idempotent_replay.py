"""Adversarial review of the issue 10 fixes: a replayed plain message of an idempotent task.

I5: for ``idempotent=True`` the body completes at most once per key within the idempotency
TTL. A plain Celery message (``.delay()``/``.apply_async()``) is adopted at pickup with the key
of its own arguments. When the same message arrives again after the task's record expired
(``RELIER_RESULT_TTL``) but while its key is still committed (``idempotency_ttl`` longer than
the result TTL, as for payments), ``task_claim`` finds the key owned by *this very task id*
and runs the body again: the charge happens twice. A duplicated publish (a producer retry) or
a replayed message is enough.
"""

from __future__ import annotations

from collections.abc import Callable

import redis

from relier_testing import tasks
from relier_testing.helpers import KEYS, counter, wait_for
from relier_testing.workers import WorkerProcess


def test_replayed_plain_message_does_not_charge_twice(
    relier_worker: Callable[..., WorkerProcess], relier_env: dict[str, str]
) -> None:
    client = redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])
    relier_worker(concurrency=1, pool="solo")
    task_id = "charge-order-42"
    tasks.charge.apply_async(("acme", 500), task_id=task_id)
    wait_for(lambda: client.hget(KEYS.task(task_id), "s") == b"done", 15, "the first charge")
    assert counter(client, "charge", "acme:500") == 1
    # The record expires after RELIER_RESULT_TTL; the committed key lives on (600 s here).
    client.delete(KEYS.task(task_id), KEYS.envelope(task_id))
    tasks.charge.apply_async(("acme", 500), task_id=task_id)  # the same message again
    wait_for(lambda: client.hget(KEYS.task(task_id), "s") in (b"done", b"dead"), 15,
             "the replay handled")
    assert counter(client, "charge", "acme:500") == 1
