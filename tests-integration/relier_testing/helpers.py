"""Small helpers shared by the integration tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from relier.core import Keys
from relier.core.ops import DispatchRequest
from relier.core.record import TaskRecord, decode_record
from relier.envelope import Envelope, Keyring, seal
from relier.phoenix import Ledger

T = TypeVar("T")

KEYS = Keys()


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll until ``predicate()`` is truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def record(client: redis.Redis, task_id: str) -> TaskRecord:
    # Read on the test's own client (tests may point it anywhere), decoded by the one decoder.
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(KEYS.task(task_id))
    pipe.get(KEYS.envelope(task_id))
    fields, envelope = pipe.execute()
    return decode_record(task_id, fields, envelope)


def counter(client: redis.Redis, kind: str, key: str) -> int:
    return int(client.get(f"test:{kind}:{key}") or 0)


def dispatch_raw(task_name: str, task_id: str, args: list[Any], *, version: int = 1,
                 keyring: Keyring | None = None, queue: str = "default") -> bytes:
    """Dispatch an envelope built by hand (to send old or odd payloads)."""
    ledger = Ledger()
    env = Envelope(task_name, task_id, version, args, {})
    sealed = seal(env, keyring or Keyring.from_settings(ledger.settings))
    assert ledger.dispatch(DispatchRequest(task_id=task_id, task_name=task_name, queue=queue,
                                           envelope=sealed, max_resurrections=2)
                           ).kind == "accepted"
    return sealed


def plain_message(task: Any, *args: Any, **kwargs: Any) -> Any:
    """Send a plain Celery message of an ``@rl_task``, as a producer without Relier does.

    (``.delay()`` of an ``@rl_task`` is a ``push``; such messages still arrive from producers
    that do not run Relier, and the worker adopts them at pickup.)
    """
    from relier.tasks.app import app

    return app.send_task(task.name, args=list(args), kwargs=kwargs,
                         queue=task._relier_spec.options.queue)
