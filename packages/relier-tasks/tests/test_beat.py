"""The beat scheduler's occurrence headers (the dedup itself is tested with two real beats)."""

from __future__ import annotations

from datetime import timedelta

from celery import Celery
from celery.beat import ScheduleEntry
from celery.schedules import crontab, schedule

from relier.core.settings import Settings
from relier.tasks.beat import GAP_FRACTION, occurrence_gap_ms
from relier.tasks.install import install

SETTINGS = Settings(redis_url="redis://127.0.0.1:6399/0")


def _entry(app: Celery, run_every: object) -> ScheduleEntry:
    return ScheduleEntry(name="report", task="shop.report", schedule=run_every, app=app)


def test_an_interval_entry_is_one_occurrence_for_90_percent_of_its_period() -> None:
    app = Celery("shop", set_as_current=False)
    gap = occurrence_gap_ms(_entry(app, schedule(timedelta(seconds=30), app=app)))
    assert abs(gap - 30_000 * GAP_FRACTION) <= 1


def test_a_crontab_entry_is_one_occurrence_until_shortly_before_the_next() -> None:
    app = Celery("shop", set_as_current=False)
    gap = occurrence_gap_ms(_entry(app, crontab(minute="*", app=app)))
    # Asked at any second of a minute, the next every-minute occurrence is at most 60 s away.
    assert 0 < gap <= int(60_000 * GAP_FRACTION)


def test_a_schedule_that_answers_no_usable_gap_is_sent_without_deduplication() -> None:
    app = Celery("shop", set_as_current=False)

    class Odd(schedule):  # type: ignore[misc]
        def __init__(self, answer: object) -> None:
            super().__init__(timedelta(seconds=1), app=app)
            self.answer = answer

        def is_due(self, last_run_at: object) -> tuple[bool, object]:
            return False, self.answer

    for answer in (float("inf"), float("nan"), 1e300, -5, None, "soon"):
        assert occurrence_gap_ms(_entry(app, Odd(answer))) == 0, answer


def test_install_replaces_only_celerys_default_scheduler() -> None:
    default = Celery("shop", broker=SETTINGS.redis_url, set_as_current=False)
    install(default, SETTINGS)
    assert default.conf.beat_scheduler == "relier.tasks.beat:Scheduler"
    custom = Celery("shop", broker=SETTINGS.redis_url, set_as_current=False)
    custom.conf.beat_scheduler = "django_celery_beat.schedulers:DatabaseScheduler"
    install(custom, SETTINGS)
    assert custom.conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"
