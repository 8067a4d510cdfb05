"""``relier.install(app)``: add Relier to a Celery app (yours, or the ready-made one)."""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import import_modules, worker_init, worker_process_init
from kombu import Queue  # type: ignore[attr-defined]

from relier.core.connection import kombu_broker_options
from relier.core.exceptions import ConfigurationError
from relier.core.queues import DEFAULT_QUEUE, RECOVERY_QUEUE
from relier.core.settings import Settings, get_settings, mask_url
from relier.phoenix import celery as phoenix_celery
from relier.tasks import beat, plain
from relier.tasks.runtime import process_loop
from relier.tasks.transport import transport_for

__all__ = ["create_app", "install"]

log = logging.getLogger("relier.tasks")


def _warm_child(**_: Any) -> None:
    # A fresh pool child: start its own event loop now, not on its first task; and give it
    # telemetry providers of its own (exporter threads do not survive a fork).
    process_loop().get()
    _start_telemetry()


def _warm_main(sender: Any = None, **_: Any) -> None:
    # The solo and threads pools run tasks in the worker's own process.
    pool = getattr(sender, "pool_cls", None)
    if pool is not None and getattr(pool, "__module__", "").endswith(("solo", "threads")):
        _start_telemetry()


def _import_local_tasks(sender: Any = None, **_: Any) -> None:
    """A worker with no RELIER_IMPORTS imports ``tasks`` from the directory it starts in.

    Connected to Celery's ``import_modules`` signal, which the loader sends only when a worker
    (or beat) imports its task modules, never in a producer. This is what makes the documented
    command (``celery -A relier.tasks.app worker ...``, run in a project holding ``tasks.py``)
    register the project's tasks.
    """
    if sender is None or not sender.conf.get("relier_installed") or \
            get_settings().import_modules:
        return
    cwd = Path.cwd()
    if not ((cwd / "tasks.py").is_file() or (cwd / "tasks" / "__init__.py").is_file()):
        log.info("RELIER_IMPORTS is unset and %s holds no tasks.py: no task module imported "
                 "by default", cwd)
        return
    if str(cwd) not in sys.path:
        sys.path.insert(0, str(cwd))
    module = importlib.import_module("tasks")
    log.warning("RELIER_IMPORTS is unset: imported tasks from %s (set RELIER_IMPORTS to name "
                "your task modules explicitly)", getattr(module, "__file__", cwd))


def _start_telemetry() -> None:
    settings = get_settings()
    if settings.otel_enabled:
        from relier.otel import start

        start(settings)


def install(app: Celery, settings: Settings | None = None) -> Celery:
    """Add Relier to ``app`` (idempotent), leaving the app's own routing and delivery alone.

    What it adds: the recording transport (``relier.tasks.transport``: every task message the
    app publishes becomes a ledger record in the same script call, countdowns and etas wait
    in Redis); the plain-task gate (``relier.tasks.plain``: workers claim each message when it
    arrives and settle the record when the run ends); the queues Relier publishes to
    (``re-queue`` for resurrected and handed-off tasks, and ``RELIER_QUEUES`` for ``@rl_task``)
    beside the app's own; JSON among the accepted content types (a Relier message is JSON);
    the Phoenix worker bootstep (preflight, lease, drain); a beat scheduler that sends each
    occurrence once even when two beats run (when the app uses Celery's default); the import
    of ``RELIER_IMPORTS`` in workers (unset: a ``tasks`` module in the worker's working
    directory, if there is one).

    What it leaves as the app set it: the default queue, routes and declared queues (workers
    started as before consume what they did, plus ``re-queue``), serializers, the result
    backend, ``task_acks_late``, ``task_reject_on_worker_lost``, prefetch and kombu's ack
    emulation, so that no plain Celery task of the app is less safe than before. The
    ready-made app (``create_app``) sets the delivery settings Relier's own tasks prefer.

    Raises:
        ConfigurationError: the app already uses a broker other than ``RELIER_BROKER_URL``
            (Relier publishes there, so workers would never see its messages).
    """
    settings = settings or get_settings()
    broker, transport_options = kombu_broker_options(settings)
    current = app.conf.get("broker_url")
    if current and current != broker:
        raise ConfigurationError(
            "RELIER_BROKER_URL", mask_url(broker),
            f"the broker of the Celery app being installed on ({mask_url(str(current))}); "
            "set RELIER_BROKER_URL to it",
        )
    declared = list(app.conf.get("task_queues") or [])
    if not declared:
        # With no declared queues Celery consumes its default queue alone; declaring Relier's
        # must not take that one away.
        default = app.conf.get("task_default_queue") or "celery"
        declared = [Queue(default, routing_key=default)]  # type: ignore[no-untyped-call]
    existing = {q.name for q in declared}
    queues = declared + [
        Queue(name, routing_key=name)  # type: ignore[no-untyped-call]
        for name in relier_queues(settings) if name not in existing
    ]
    accepted = list(app.conf.get("accept_content") or ["json"])
    if app.conf.get("beat_scheduler") in (None, beat.CELERY_DEFAULT):
        # Each beat occurrence is sent once even with two beats; a custom scheduler adds
        # relier.tasks.beat.BeatOccurrences to its bases for the same.
        app.conf.beat_scheduler = "relier.tasks.beat:Scheduler"
    app.conf.update(
        broker_url=broker,
        # Every task message the app publishes is recorded in the ledger with it.
        broker_transport=transport_for(broker),
        broker_transport_options={**transport_options,
                                  **(app.conf.get("broker_transport_options") or {})},
        broker_connection_retry_on_startup=True,
        accept_content=accepted if "json" in accepted else [*accepted, "json"],
        task_queues=queues,
        relier_installed=True,
        imports=tuple(dict.fromkeys([*(app.conf.get("imports") or ()),
                                     *settings.import_modules])),
    )
    phoenix_celery.install(app)
    plain.install(app)
    worker_process_init.connect(_warm_child, weak=False, dispatch_uid="relier-warm-child")
    worker_init.connect(_warm_main, weak=False, dispatch_uid="relier-warm-main")
    import_modules.connect(_import_local_tasks, weak=False,
                           dispatch_uid="relier-local-tasks")
    return app


def relier_queues(settings: Settings) -> tuple[str, ...]:
    """The queues Relier publishes to: ``RELIER_QUEUES`` for ``@rl_task``, then ``re-queue``."""
    return (*settings.queue_names(), RECOVERY_QUEUE)


def create_app(settings: Settings | None = None) -> Celery:
    """A new Celery app configured from ``RELIER_*`` settings, with Relier installed.

    Unlike ``install`` on an app of yours, it also sets the delivery Relier's own tasks
    prefer: JSON only; ``default`` as the default queue; no prefetch beyond free pool slots;
    early acknowledgement and no kombu ack emulation (Relier's ledger owns redelivery from the
    claim on, so kombu's visibility timeout never re-runs a long task, and the unacked
    bookkeeping would only cost writes that a full Redis refuses, stopping consumption exactly
    when a backlog most needs draining).
    """
    settings = settings or get_settings()
    broker, transport_options = kombu_broker_options(settings)
    app = Celery("relier", set_as_current=True)
    app.conf.update(
        broker_url=broker,
        broker_transport_options={**transport_options, "ack_emulation": False},
        result_backend=broker,
        result_backend_transport_options=transport_options,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_queues=[Queue(name, routing_key=name)  # type: ignore[no-untyped-call]
                     for name in relier_queues(settings)],
        task_default_queue=DEFAULT_QUEUE if DEFAULT_QUEUE in settings.queue_names()
        else settings.queue_names()[0],
        task_create_missing_queues=True,
        worker_prefetch_multiplier=1,
        worker_disable_prefetch=True,
        task_acks_late=False,
        task_reject_on_worker_lost=False,
    )
    return install(app, settings)
