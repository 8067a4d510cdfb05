"""Spans and metrics, on ``opentelemetry-api`` only.

Without an SDK (or with ``RELIER_OTEL_ENABLED=false``, in which case Relier never installs
any of this) every call here is a no-op. Task arguments never reach a span or a metric
attribute: only ids, names, queues, attempts, workers, outcomes and reasons.

Spans:
  ``rl.task.dispatch`` (producer; its context rides in the envelope), ``rl.task.run``
  (consumer, child of the dispatch: the whole delivery) with children ``rl.task.pickup``
  (claim, verify, migrate) and ``rl.task.execute`` (the body), ``rl.task.timeout``,
  ``rl.task.dead_letter`` and ``rl.task.resurrect`` (in the resurrector's own trace).

Metrics (Prometheus names in brackets):
  ``rl.tasks`` [rl_tasks_total] by outcome and task; ``rl.task.duration`` seconds;
  ``rl.dispatch.duration`` seconds (dispatch overhead) by result; ``rl.admission``
  [rl_admission_total] by result and scope; ``rl.resurrections`` by task and kind;
  ``rl.recovery.time`` seconds from a dead worker's lease deadline to its task's re-queue;
  ``rl.dead_letters`` by reason and task; ``rl.tasks.in_flight`` (up-down counter).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from relier.core import events
from relier.core.pipeline import Job, Middleware, SkipRun
from relier.core.settings import Settings
from relier.otel.sdk import process_started

__all__ = ["DispatchSpan", "Telemetry", "TracingMiddleware", "instrument", "start",
           "uninstrument"]

_VERSION = version("relier-otel")


class Telemetry:
    """The instruments, and the observer that turns Relier's events into them."""

    def __init__(self) -> None:
        self.tracer = trace.get_tracer("relier", _VERSION)
        meter = metrics.get_meter("relier", _VERSION)
        self.tasks = meter.create_counter("rl.tasks", description="Finished task runs")
        self.duration = meter.create_histogram("rl.task.duration", unit="s",
                                               description="Task run time")
        self.dispatch = meter.create_histogram("rl.dispatch.duration", unit="s",
                                               description="Dispatch time (overhead)")
        self.admission = meter.create_counter("rl.admission",
                                              description="Admission decisions")
        self.resurrections = meter.create_counter("rl.resurrections",
                                                  description="Tasks re-queued after a death")
        self.recovery = meter.create_histogram("rl.recovery.time", unit="s",
                                               description="Lease deadline to re-queue")
        self.dead_letters = meter.create_counter("rl.dead_letters",
                                                 description="Tasks dead-lettered")
        self.in_flight = meter.create_up_down_counter("rl.tasks.in_flight",
                                                      description="Task runs in progress")

    def observe(self, name: str, f: dict[str, Any]) -> None:
        """Turn one Relier event into metrics (and a span where it is a moment of its own)."""
        if name == "task.finished":
            attrs = {"outcome": f["outcome"], "rl.task.name": f["task"]}
            self.tasks.add(1, attrs)
            if f.get("seconds"):
                self.duration.record(f["seconds"], attrs)
        elif name == "task.dead_lettered":
            self.dead_letters.add(1, {"reason": f["reason"], "rl.task.name": f["task"]})
            with self.tracer.start_as_current_span("rl.task.dead_letter", attributes={
                    "rl.task.id": f["task_id"], "rl.task.name": f["task"],
                    "rl.task.queue": f["queue"], "rl.dead_letter.reason": f["reason"]}):
                pass
        elif name == "task.resurrected":
            self.resurrections.add(1, {"rl.task.name": f["task"], "kind": f["kind"]})
            if f.get("recovery_seconds") is not None:
                self.recovery.record(f["recovery_seconds"], {"rl.task.name": f["task"]})
            with self.tracer.start_as_current_span("rl.task.resurrect", attributes={
                    "rl.task.id": f["task_id"], "rl.task.name": f["task"],
                    "rl.resurrection.kind": f["kind"], "rl.resurrection.cause": f["cause"],
                    "rl.resurrection.outcome": f["outcome"]}):
                pass
        elif name == "task.timeout":
            with self.tracer.start_as_current_span("rl.task.timeout", attributes={
                    "rl.task.id": f["task_id"], "rl.task.name": f["task"],
                    "rl.timeout.kind": f["kind"]}):
                pass
        elif name == "admission.decision":
            self.admission.add(1, {"result": f["result"], "scope": f.get("scope") or ""})


_telemetry: Telemetry | None = None
_lock = threading.Lock()


def instrument() -> Telemetry:
    """Create the instruments and subscribe to Relier's events (idempotent)."""
    global _telemetry
    with _lock:
        if _telemetry is None:
            _telemetry = Telemetry()
            events.subscribe(_telemetry.observe)
    return _telemetry


def start(settings: Settings | None = None) -> Telemetry:
    """Telemetry for this process: its providers, then the instruments (idempotent).

    The one way a Relier process starts telemetry (a worker's pool child after fork, a solo
    or threads worker, ``rl run-resurrector``), so they all start it alike.
    """
    process_started(settings)
    return instrument()


def uninstrument() -> None:
    """Stop observing Relier's events."""
    global _telemetry
    with _lock:
        if _telemetry is not None:
            events.unsubscribe(_telemetry.observe)
            _telemetry = None


class DispatchSpan:
    """The producer span of one dispatch, and the trace context to carry in the envelope."""

    def __init__(self, span: trace.Span) -> None:
        self.span = span
        self.result = "error"
        self.carrier: dict[str, str] = {}
        propagate.inject(self.carrier)

    @property
    def traceparent(self) -> str:
        """The W3C traceparent of this dispatch ('' when no SDK records spans)."""
        return self.carrier.get("traceparent", "")

    def accepted(self, task_id: str, result: str) -> None:
        """Record what the dispatch became (accepted, duplicate)."""
        self.result = result
        self.span.set_attribute("rl.task.id", task_id)
        self.span.set_attribute("rl.dispatch.result", result)


@contextmanager
def dispatch_span(task_name: str, queue: str) -> Iterator[DispatchSpan]:
    """``rl.task.dispatch`` around one dispatch; yields the carrier for the envelope."""
    telemetry = instrument()
    start = time.perf_counter()
    with telemetry.tracer.start_as_current_span(
            "rl.task.dispatch", kind=SpanKind.PRODUCER,
            attributes={"rl.task.name": task_name, "rl.task.queue": queue}) as span:
        handle = DispatchSpan(span)
        try:
            yield handle
        finally:
            telemetry.dispatch.record(time.perf_counter() - start,
                                      {"rl.task.name": task_name, "result": handle.result})


class TracingMiddleware(Middleware):
    """First in the chain: the consumer span of a delivery, child of its dispatch."""

    name = "otel"

    def __init__(self) -> None:
        self.telemetry = instrument()

    def before_run(self, job: Job) -> None:
        """Open ``rl.task.run`` in the dispatcher's trace and make it current."""
        # The doorbell message carries the dispatcher's traceparent, so the span joins the
        # dispatcher's trace before the claim (the signed envelope holds the same value).
        parent = propagate.extract(job.trace)
        span = self.telemetry.tracer.start_span(
            "rl.task.run", context=parent, kind=SpanKind.CONSUMER,
            attributes={"rl.task.id": job.task_id, "rl.task.name": job.options.name,
                        "rl.task.queue": job.delivery_queue, "rl.worker.id": job.hostname})
        job.scratch["otel"] = (span, otel_context.attach(trace.set_span_in_context(span)),
                               time.time_ns())
        self.telemetry.in_flight.add(1, {"rl.task.name": job.options.name})

    def after_run(self, job: Job, error: BaseException | None) -> None:
        """Close the spans, with the run's attempt and outcome."""
        span, token, started_ns = job.scratch.pop("otel")
        self.telemetry.in_flight.add(-1, {"rl.task.name": job.options.name})
        span.set_attribute("rl.task.attempt", job.attempt)
        span.set_attribute("rl.task.epoch", job.epoch)
        body_ns = int(job.started_at * 1e9) if job.started_at else 0
        tracer = self.telemetry.tracer
        if body_ns:
            ctx = trace.set_span_in_context(span)
            tracer.start_span("rl.task.pickup", context=ctx, start_time=started_ns).end(
                end_time=body_ns)
            execute = tracer.start_span("rl.task.execute", context=ctx, start_time=body_ns)
            if error is not None and not isinstance(error, SkipRun):
                execute.record_exception(error)
                execute.set_status(Status(StatusCode.ERROR, type(error).__name__))
            execute.end()
        if isinstance(error, SkipRun):
            span.set_attribute("rl.task.skipped", error.reason)
        elif error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        otel_context.detach(token)
        span.end()
