"""Plain Celery, configured the common way, for side-by-side figures.

``celery -A relier.lab.bench.vanilla worker`` runs it; ``VANILLA_ACKS_LATE=1`` switches on
``task_acks_late`` with ``task_reject_on_worker_lost`` (Celery's own at-least-once mode).
"""

from __future__ import annotations

import os

import redis
from celery import Celery

broker = os.environ.get("RELIER_BROKER_URL") or os.environ.get("RELIER_REDIS_URL",
                                                               "redis://localhost:6379/0")
app = Celery("vanilla", broker=broker, backend=os.environ.get("VANILLA_BACKEND") or None)
app.conf.update(
    task_serializer="json", accept_content=["json"], broker_connection_retry_on_startup=True,
    task_ignore_result=True,
)
if os.environ.get("VANILLA_ACKS_LATE") == "1":
    app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True)

_client: dict[int, redis.Redis] = {}


@app.task(name="vanilla.noop")
def noop() -> None:
    """Does nothing."""


@app.task(name="vanilla.incr")
def incr(key: str) -> None:
    """One INCR, like ``bench.incr``."""
    pid = os.getpid()
    if pid not in _client:
        _client[pid] = redis.Redis.from_url(broker)
    _client[pid].incr(key)


@app.task(name="vanilla.record")
def record(key: str, seconds: float = 0.05) -> None:
    """Sleep, then record the completion of ``key`` (delivery counting)."""
    import time

    time.sleep(seconds)
    pid = os.getpid()
    if pid not in _client:
        _client[pid] = redis.Redis.from_url(broker)
    pipe = _client[pid].pipeline()
    pipe.sadd("bench:vanilla:done", key)
    pipe.incr(f"bench:vanilla:runs:{key}")
    pipe.execute()
