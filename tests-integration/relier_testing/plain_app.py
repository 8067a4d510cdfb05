"""A plain Celery app of the kind users already have, with ``relier.install`` on it.

Plain ``@app.task`` functions, the app's own ``celery`` queue, ``task_acks_late=True``
(``PLAIN_APP_ACKS_LATE=0``: Celery's default early ack) and a short visibility timeout and
sweep (so kombu's redelivery of an unacknowledged message shows within a test).
``PLAIN_APP_RELIER=0`` leaves Relier out: the same app, vanilla, for side-by-side runs.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from celery import Celery
from celery.exceptions import Reject

app = Celery("plain_app", broker=os.environ["RELIER_REDIS_URL"], set_as_current=False)
# kombu sweeps unacked messages every interval * throttle seconds (100 s by default).
app.conf.update(task_acks_late=os.environ.get("PLAIN_APP_ACKS_LATE", "1") == "1",
                broker_transport_options={
                    "visibility_timeout": 4, "unacked_restore_interval": 1,
                    "unacked_restore_throttle": 1},
                # A routed task: workers consume the app's own queues, as they always did.
                task_routes={"relier_testing.plain_app.routed": {"queue": "emails"}})
if os.environ.get("PLAIN_APP_RELIER", "1") == "1":
    from relier import install

    install(app)


def _client() -> redis.Redis:
    return redis.Redis.from_url(os.environ["RELIER_REDIS_URL"])


def _incr(key: str) -> None:
    # Retries while Redis is down, so that a Redis restart test measures the delivery, not
    # this test task's own dependency on Redis.
    deadline = time.monotonic() + 60
    while True:
        try:
            _client().incr(key)
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@app.task
def slow(key: str, seconds: float) -> str:
    """Counts its starts and its completions under ``key``."""
    _incr(f"test:started:{key}")
    time.sleep(seconds)
    _incr(f"test:done:{key}")
    return key


@app.task
def routed(key: str, seconds: float) -> str:
    """``slow``, routed to the app's own ``emails`` queue by ``task_routes``."""
    _incr(f"test:started:{key}")
    time.sleep(seconds)
    _incr(f"test:done:{key}")
    return key


@app.task
def stamp(key: str) -> float:
    """Writes the time it ran under ``key``, and counts its runs."""
    now = time.time()
    client = _client()
    client.set(f"test:stamp:{key}", now)
    client.incr(f"test:runs:{key}")
    return now


@app.task(bind=True, acks_late=True)
def rejects_once(self: Any, key: str, requeue: bool) -> str:
    """Raises ``Reject`` on its first run, succeeds on the next."""
    if _client().incr(f"test:runs:{key}") == 1:
        raise Reject("not yet", requeue=requeue)
    return key


@app.task
def boom(key: str) -> None:
    """Always fails."""
    _client().incr(f"test:runs:{key}")
    raise RuntimeError(f"boom {key}")


@app.task(time_limit=1)
def hangs(key: str) -> None:
    """Outlives its hard time limit."""
    _client().incr(f"test:runs:{key}")
    time.sleep(30)


@app.task
def tick() -> None:
    """A beat entry's task: appends the time of each run."""
    _client().rpush("test:beat:ticks", time.time())


if os.environ.get("PLAIN_APP_BEAT_EVERY"):
    app.conf.beat_schedule = {
        "tick-every": {"task": tick.name, "schedule": float(os.environ["PLAIN_APP_BEAT_EVERY"])},
    }
