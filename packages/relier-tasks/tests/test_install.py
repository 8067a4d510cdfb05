"""``install`` on an app of yours: it adds Relier's queues and leaves the app's own alone."""

from __future__ import annotations

from celery import Celery

from relier.core.settings import Settings
from relier.tasks.install import create_app, install

SETTINGS = Settings(redis_url="redis://127.0.0.1:6399/0")


def queue_names(app: Celery) -> list[str]:
    return [q.name for q in app.conf.task_queues]


def test_an_app_without_declared_queues_keeps_consuming_its_default_queue() -> None:
    app = Celery("shop", broker=SETTINGS.redis_url, set_as_current=False)
    app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True,
                    worker_prefetch_multiplier=4, task_serializer="pickle",
                    accept_content=["pickle"])
    install(app, SETTINGS)
    assert app.conf.task_default_queue == "celery"
    assert queue_names(app)[0] == "celery"
    assert "re-queue" in queue_names(app)
    # Delivery stays as the app set it: installing never makes a plain task less safe.
    assert (app.conf.task_acks_late, app.conf.task_reject_on_worker_lost) == (True, True)
    assert app.conf.worker_prefetch_multiplier == 4
    assert "ack_emulation" not in app.conf.broker_transport_options
    assert app.conf.task_serializer == "pickle"
    assert app.conf.accept_content == ["pickle", "json"]  # Relier's own messages are JSON
    assert app.conf.result_backend is None


def test_declared_queues_and_routes_are_kept() -> None:
    from kombu import Queue  # type: ignore[attr-defined]

    app = Celery("shop", broker=SETTINGS.redis_url, set_as_current=False)
    app.conf.update(task_queues=[Queue("emails"), Queue("billing")],  # type: ignore[no-untyped-call]
                    task_default_queue="emails",
                    task_routes={"shop.charge": {"queue": "billing"}})
    install(app, SETTINGS)
    assert queue_names(app)[:2] == ["emails", "billing"]
    assert app.conf.task_default_queue == "emails"
    assert app.conf.task_routes == {"shop.charge": {"queue": "billing"}}
    assert app.amqp.router.route({}, "shop.charge")["queue"].name == "billing"


def test_the_ready_made_app_keeps_the_delivery_relier_tasks_prefer() -> None:
    app = create_app(SETTINGS)
    assert app.conf.task_default_queue == "default"
    assert app.conf.broker_transport_options["ack_emulation"] is False
    assert (app.conf.task_acks_late, app.conf.worker_prefetch_multiplier) == (False, 1)
    assert app.conf.accept_content == ["json"]
