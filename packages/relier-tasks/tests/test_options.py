"""``task.with_options(...)``: every per-call option is checked before any call is made."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from relier.core.exceptions import ConfigurationError
from relier.core.settings import Settings
from relier.envelope import Envelope
from relier.tasks.options import call_options

SETTINGS = Settings(redis_url="redis://127.0.0.1:6399/0", queues="default,emails")


def test_countdown_eta_and_expires_become_a_delay_and_an_absolute_expiry() -> None:
    before = time.time()
    opts = call_options("shop.mail", SETTINGS, queue="emails", countdown=30, expires=60)
    assert (opts.queue, opts.delay_s) == ("emails", 30.0)
    assert before + 60 <= opts.expires_at <= time.time() + 60
    due = call_options("shop.mail", SETTINGS, eta=datetime.now(UTC) + timedelta(seconds=90))
    assert 88 < due.delay_s <= 90
    naive_utc = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=50)
    assert 48 < call_options("shop.mail", SETTINGS, eta=naive_utc).delay_s <= 50
    iso = (datetime.now(UTC) + timedelta(seconds=40)).isoformat()
    assert 38 < call_options("shop.mail", SETTINGS, eta=iso).delay_s <= 40  # as Celery takes it
    past = call_options("shop.mail", SETTINGS, eta=datetime.now(UTC) - timedelta(hours=1))
    assert past.delay_s == 0.0  # as in Celery, an eta in the past runs now


@pytest.mark.parametrize(("options", "error", "says"), [
    ({"queue": "re-queue"}, ValueError, "internal queue"),
    ({"queue": "billing"}, ValueError, "add it to RELIER_QUEUES"),
    ({"countdown": -1}, ValueError, "negative"),
    ({"countdown": 400 * 86_400}, ValueError, "RELIER_MAX_COUNTDOWN"),
    ({"countdown": 5, "eta": datetime.now(UTC)}, ValueError, "not both"),
    ({"countdown": "5"}, TypeError, "number of seconds"),
    ({"countdown": float("nan")}, TypeError, "number of seconds"),
    ({"expires": 0}, ValueError, "above 0"),
    ({"countdown": 60, "expires": 30}, ValueError, "before the task is due"),
    ({"eta": "tomorrow"}, TypeError, "not an ISO 8601 time"),
    ({"countdown": 10**400}, TypeError, "finite"),
])
def test_bad_options_are_refused_with_the_fix(options: dict[str, object],
                                              error: type[Exception], says: str) -> None:
    with pytest.raises(error, match=says):
        call_options("shop.mail", SETTINGS, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["", "a,,b", "a, a", "re-queue,default", "x y", "q{1}"])
def test_relier_queues_is_checked_with_the_settings(value: str) -> None:
    with pytest.raises(ConfigurationError, match="RELIER_QUEUES"):
        Settings(redis_url="redis://127.0.0.1:6399/0", queues=value).validate()


def test_an_envelope_without_an_expiry_decodes_as_never_expiring() -> None:
    older = b'["t.x","id1",1,[1],{},[1700000000.0,"host:1",{}]]'
    assert msgspec.json.decode(older, type=Envelope).headers.expires_at == 0.0
