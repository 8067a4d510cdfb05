"""Adversarial review of the issue 10 fixes: forged broker messages must not touch other tasks.

The promise: a forged message is dead-lettered with its bytes (or dropped as a harmless
duplicate), never run, and never changes the fate of a task it does not belong to. Message
headers (``task``, ``id``, ``rl_*``) are unsigned; only the record and the signed envelope are
trusted.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from relier.phoenix.broker import build_message
from relier_testing import runtime_tasks, tasks
from relier_testing.helpers import KEYS, record, wait_for
from relier_testing.workers import WorkerProcess

IMPORTS = {"RELIER_IMPORTS": "relier_testing.tasks,relier_testing.runtime_tasks"}


@pytest.fixture
def client(relier_env: dict[str, str]) -> redis.Redis:
    return redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])


def _forge_first(client: redis.Redis, task_id: str, name: str, queue: str = "default") -> None:
    """Put a forged doorbell for ``task_id`` under task ``name`` at the consuming end.

    kombu's Redis transport LPUSHes and BRPOPs, so an RPUSH is delivered before every message
    already queued (the victim's own message included).
    """
    client.rpush(KEYS.broker_list(queue), build_message(task_id, name, queue))


def _done(client: redis.Redis, task_id: str) -> bool:
    return client.hget(KEYS.task(task_id), "s") in (b"done", b"dead")


def test_forged_message_with_unknown_task_name_does_not_dead_letter_the_victim(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis
) -> None:
    """Hole: ``task_unknown`` handling trusts the message's ``task`` header.

    A message naming a task nobody registered, carrying the id of another (queued) task, made
    the worker dead-letter that other task as ``UnregisteredTask``: its own, valid message then
    found it dead and was dropped. The victim never ran.
    """
    receipt = runtime_tasks.echo.push("victim")  # no worker yet: stays queued
    _forge_first(client, receipt.id, "no.such.task")
    relier_worker(concurrency=1, pool="solo", env=IMPORTS)
    wait_for(lambda: _done(client, receipt.id), 20, "the victim to finish one way or another")
    rec = record(client, receipt.id)
    assert rec.state == "done", (rec.state, rec.reason, rec.message)
    assert receipt.get(timeout=5) == "victim"


def test_forged_message_with_another_registered_name_does_not_dead_letter_the_victim(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis
) -> None:
    """Hole: the claim does not compare the message's task name with the record's.

    A forged doorbell naming another registered task (``tasks.noop``) with the id of a queued
    ``echo`` claims the victim's record, the envelope check then sees the name mismatch and the
    victim is dead-lettered as ``PayloadIntegrityError``: one forged message, one lost task.
    """
    receipt = runtime_tasks.echo.push("victim")
    _forge_first(client, receipt.id, tasks.noop.name)
    relier_worker(concurrency=1, pool="solo", env=IMPORTS)
    wait_for(lambda: _done(client, receipt.id), 20, "the victim to finish one way or another")
    rec = record(client, receipt.id)
    assert rec.state == "done", (rec.state, rec.reason, rec.message)
    assert receipt.get(timeout=5) == "victim"


def test_plain_message_with_a_malformed_rl_unknown_header_is_dead_lettered_not_dropped(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis
) -> None:
    """Hole: ``handle_unknown`` parses the unsigned ``rl_unknown`` header with ``int()``.

    A plain Celery message for a task this worker lacks, whose ``rl_unknown`` header is not a
    number, raised ``ValueError`` in the ``task_unknown`` handler: Celery had already dropped
    the message, it has no record, and the log line promised that the resurrector would
    re-publish it (it cannot: nothing records it). The message vanished.
    """
    worker = relier_worker(concurrency=1, pool="solo")  # lacks relier_testing.runtime_tasks
    task_id = runtime_tasks.echo.apply_async((7,), headers={"rl_unknown": "many"}).id
    try:
        wait_for(lambda: _done(client, task_id), 15, "the message dead-lettered")
    except AssertionError:
        raise AssertionError(worker.log()[-3000:]) from None
    rec = record(client, task_id)
    assert rec.state == "dead"
    assert rec.reason == "UnregisteredTask"
    assert client.zscore(KEYS.dlq, task_id) is not None


@pytest.mark.xfail(strict=True, reason=(
    "hole 10: a message Celery cannot decode is deleted by its consumer, never dead-lettered: "
    "docs/limitations.md"))
@pytest.mark.parametrize(("body", "content_type"), [
    (b"\x80\x04not json at all", "application/json"),
    (b"\x80\x04K\x01.", "application/x-python-serialize"),  # pickle: not an accepted content
])
def test_undecodable_message_is_dead_lettered_with_its_bytes(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis, body: bytes,
    content_type: str,
) -> None:
    """Hole: a message Celery cannot decode never reaches Relier.

    Celery's consumer rejects a message whose body does not decode, or whose content type is
    not accepted, before any task code or signal Relier listens to runs: the message is
    deleted with a log line. The promise says a bad message is dead-lettered with its bytes.
    """
    import base64
    import json

    task_id = "bad00000-0000-4000-8000-000000000001"
    message = json.loads(build_message(task_id, tasks.noop.name, "default"))
    del message["headers"]["rl"]  # a plain Celery message (no record to fall back on)
    message["body"] = base64.b64encode(body).decode()
    message["content-type"] = content_type
    client.lpush(KEYS.broker_list("default"), json.dumps(message))
    worker = relier_worker(concurrency=1, pool="solo", env=IMPORTS)
    wait_for(lambda: client.llen(KEYS.broker_list("default")) == 0, 15, "the message taken")
    try:
        wait_for(lambda: _done(client, task_id), 10, "the bad message dead-lettered")
    except AssertionError:
        raise AssertionError(worker.log()[-2500:]) from None
    assert client.zscore(KEYS.dlq, task_id) is not None


@pytest.mark.xfail(strict=True, reason=(
    "hole 12: a forged doorbell for an unused id pre-poisons an app-chosen plain message id: "
    "docs/limitations.md"))
def test_forged_doorbell_cannot_pre_poison_a_plain_message_id(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis
) -> None:
    """Hole: a forged doorbell for an id nobody used yet leaves a dead record under that id.

    Celery code often chooses task ids itself (``apply_async(task_id=f"report-{day}")``, the
    usual way to deduplicate). A forged Relier doorbell (header ``rl``) for such an id is
    dead-lettered as ``LedgerRecordMissing``, which writes a dead record under the id; when the
    real plain message arrives, its claim finds the record dead and drops it as a duplicate:
    never run, never dead-lettered, no trace of its bytes. Vanilla Celery would have run it.
    """
    task_id = "report-2026-11-28"
    client.lpush(KEYS.broker_list("default"), build_message(task_id, tasks.noop.name, "default"))
    worker = relier_worker(concurrency=1, pool="solo", env=IMPORTS)
    wait_for(lambda: _done(client, task_id), 15, "the forged doorbell dead-lettered")
    tasks.multiply.apply_async((6, 7), task_id=task_id)  # the application's real message
    wait_for(lambda: client.llen(KEYS.broker_list("default")) == 0, 15, "the message taken")
    wait_for(lambda: "not run" in worker.log().split("report-2026-11-28", 2)[-1]
             or client.hget(KEYS.task(task_id), "n") != tasks.noop.name.encode(), 10,
             "the real message handled")
    rec = record(client, task_id)
    # The real message's call (multiply(6, 7)) must have run or be kept somewhere: today the
    # only record of this id is the forged doorbell's.
    assert rec.task_name == tasks.multiply.name, (rec.task_name, rec.state, rec.reason)
