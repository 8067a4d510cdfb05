"""Two-tier timeouts and bad payloads in real workers: all end in the dead-letter queue."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis

from relier.core.exceptions import TaskDeadLetteredError
from relier.envelope import Keyring, migrations
from relier_testing import tasks
from relier_testing.helpers import KEYS, counter, dispatch_raw, record, wait_for
from relier_testing.workers import WorkerProcess


@pytest.fixture
def client(relier_env: dict[str, str]) -> redis.Redis:
    return redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])


def test_soft_hook_saves_progress_then_hard_timeout_dead_letters(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis
) -> None:
    relier_worker(concurrency=1)
    receipt = tasks.slow_with_hook.push(100)
    with pytest.raises(TaskDeadLetteredError, match=r"\(TimeoutError\)"):
        receipt.get(timeout=20)
    rec = record(client, receipt.id)
    assert rec.reason == "TimeoutError"
    assert rec.history[-1].outcome == "timeout"
    assert counter(client, "soft", receipt.id) == 1
    assert b"last_cursor" in rec.checkpoint  # the hook's checkpoint is kept with the entry
    assert tasks.slow_with_hook.push(3).get(timeout=20) == 3  # a short run finishes


def test_hook_is_cancelled_at_the_hard_deadline(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis
) -> None:
    relier_worker(concurrency=1)
    receipt = tasks.hook_outlives_hard.push("h")
    with pytest.raises(TaskDeadLetteredError):
        receipt.get(timeout=20)
    wait_for(lambda: counter(client, "hook-cancelled", receipt.id), 5, "hook cancellation")
    assert counter(client, "hook-start", receipt.id) == 1


def test_body_swallowing_cancellation_is_reported_and_frees_its_slot(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis
) -> None:
    relier_worker(pool="solo", concurrency=1)
    receipt = tasks.swallows_cancel.push("s")
    with pytest.raises(TaskDeadLetteredError, match="TimeoutError"):
        receipt.get(timeout=20)
    assert counter(client, "swallowed", "s") >= 1
    assert tasks.multiply.push(2, 21).get(timeout=10) == 42  # the worker serves on


def test_exception_is_dead_lettered_with_traceback(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis
) -> None:
    relier_worker(concurrency=1)
    receipt = tasks.fail.push("card declined")
    with pytest.raises(TaskDeadLetteredError, match="card declined"):
        receipt.get(timeout=20)
    rec = record(client, receipt.id)
    assert rec.reason == "ValueError"
    assert rec.exc_type == "builtins.ValueError"
    assert 'raise ValueError(message)' in rec.traceback
    assert rec.envelope  # the original payload stays for a release


def test_tampered_payload_is_dead_lettered_with_its_bytes_and_never_run(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = "k1:0123456789abcdef0123456789"
    monkeypatch.setenv("RELIER_SIGNING_KEYS", keys)
    from relier.core.settings import reset_settings
    from relier.tasks.dispatch import reset_dispatcher

    reset_settings(None)
    reset_dispatcher(None)
    receipt = tasks.record.push("tamper")
    sealed = client.get(KEYS.envelope(receipt.id))
    assert sealed is not None
    tampered = sealed.replace(b"tamper", b"tamped")
    client.set(KEYS.envelope(receipt.id), tampered)
    relier_worker(concurrency=1, env={"RELIER_SIGNING_KEYS": keys})
    with pytest.raises(TaskDeadLetteredError, match="PayloadIntegrityError"):
        receipt.get(timeout=20)
    rec = record(client, receipt.id)
    assert rec.envelope == tampered
    assert "signature mismatch" in rec.message
    assert counter(client, "start", "tamper") == 0


def test_tampered_unsigned_payload_fails_its_digest_and_never_runs(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis
) -> None:
    # Default settings: no RELIER_SIGNING_KEYS. The envelope's digest still catches one changed
    # character of a stored argument; the task is dead-lettered with the altered bytes.
    receipt = tasks.record.push("tamper")
    sealed = client.get(KEYS.envelope(receipt.id))
    assert sealed is not None
    tampered = sealed.replace(b"tamper", b"tamped")
    assert tampered != sealed
    client.set(KEYS.envelope(receipt.id), tampered)
    relier_worker(concurrency=1)
    with pytest.raises(TaskDeadLetteredError, match="PayloadIntegrityError"):
        receipt.get(timeout=20)
    rec = record(client, receipt.id)
    assert rec.state == "dead"
    assert rec.envelope == tampered
    assert "digest mismatch" in rec.message
    assert client.zscore(KEYS.dlq, receipt.id) is not None
    assert counter(client, "start", "tamped") == 0
    assert counter(client, "start", "tamper") == 0


@pytest.fixture
def newer_producer() -> Iterator[None]:
    """This (producer) process knows a version 2 of ``record`` that the workers do not."""
    name = "relier_testing.tasks.record"
    migrations.step(name, from_version=1)(lambda a, k: (a, k))
    yield
    del migrations._steps[name]


def test_payload_from_newer_code_is_dead_lettered(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis, newer_producer: None
) -> None:
    relier_worker(concurrency=1)
    receipt = tasks.record.push("too-new")
    with pytest.raises(TaskDeadLetteredError, match="SchemaVersionTooNewError"):
        receipt.get(timeout=20)
    assert counter(client, "start", "too-new") == 0


def test_missing_and_failing_migrations_are_dead_lettered(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis
) -> None:
    relier_worker(concurrency=1)
    keyring = Keyring()
    dispatch_raw("relier_testing.tasks.versioned", "gap-1", ["x"], version=1, keyring=keyring)
    dispatch_raw("relier_testing.tasks.migrating", "bad-1", ["explode"], version=1,
                 keyring=keyring)
    dispatch_raw("relier_testing.tasks.migrating", "good-1", ["fine"], version=1,
                 keyring=keyring)
    wait_for(lambda: record(client, "gap-1").state == "dead", 20, "gap dead-lettered")
    wait_for(lambda: record(client, "bad-1").state == "dead", 20, "bad migration")
    assert record(client, "gap-1").reason == "MigrationMissingError"
    bad = record(client, "bad-1")
    assert bad.reason == "SchemaMigrationError"
    assert b"explode" in bad.envelope  # original payload kept
    wait_for(lambda: record(client, "good-1").state == "done", 20, "good migration")
    assert record(client, "good-1").result == b'"fine/v2"'


def test_unstorable_result_completes_once_and_says_why(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis
) -> None:
    relier_worker(concurrency=1)
    receipt = tasks.returns_object.push()
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        receipt.get(timeout=20)
    assert record(client, receipt.id).state == "done"
    assert counter(client, "done", "object") == 1
