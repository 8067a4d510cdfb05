from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from relier.core import events
from relier.core.pipeline import Job, SkipRun, TaskOptions
from relier.otel import TracingMiddleware, dispatch_span, instrument, uninstrument

SPANS = InMemorySpanExporter()
READER = InMemoryMetricReader()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(SPANS))
trace.set_tracer_provider(_provider)
metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    SPANS.clear()
    instrument()
    yield
    uninstrument()


def job(trace_ctx: dict[str, str]) -> Job:
    j = Job(task_id="t1", options=TaskOptions("app.charge", "default", True), worker_id="w",
            delivery_queue="default", hostname="celery@h", args=["secret-card-4242"])
    j.trace = trace_ctx
    return j


def metric_points() -> dict[str, list[object]]:
    data = READER.get_metrics_data()
    out: dict[str, list[object]] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out[m.name] = list(m.data.data_points)
    return out


def test_dispatch_then_run_form_one_trace_without_arguments() -> None:
    with dispatch_span("app.charge", "default") as span:
        carrier = dict(span.carrier)
        span.accepted("t1", "accepted")
    assert "traceparent" in carrier
    mw = TracingMiddleware()
    j = job(carrier)
    mw.before_run(j)
    j.attempt, j.epoch, j.started_at = 2, 5, time.time()
    mw.after_run(j, None)
    spans = {s.name: s for s in SPANS.get_finished_spans()}
    assert set(spans) >= {"rl.task.dispatch", "rl.task.run", "rl.task.pickup",
                          "rl.task.execute"}
    dispatch, run = spans["rl.task.dispatch"], spans["rl.task.run"]
    assert run.context.trace_id == dispatch.context.trace_id
    assert run.parent is not None
    assert run.parent.span_id == dispatch.context.span_id
    assert spans["rl.task.execute"].parent.span_id == run.context.span_id
    assert run.attributes["rl.task.attempt"] == 2
    assert run.attributes["rl.task.id"] == "t1"
    for s in spans.values():
        assert "secret-card-4242" not in str(dict(s.attributes or {}))


def test_failure_and_skip_are_recorded() -> None:
    mw = TracingMiddleware()
    j = job({})
    mw.before_run(j)
    j.started_at = time.time()
    mw.after_run(j, ValueError("declined"))
    run = next(s for s in SPANS.get_finished_spans() if s.name == "rl.task.run")
    assert run.status.status_code == trace.StatusCode.ERROR
    SPANS.clear()
    j2 = job({})
    mw.before_run(j2)
    mw.after_run(j2, SkipRun("duplicate delivery"))
    run = next(s for s in SPANS.get_finished_spans() if s.name == "rl.task.run")
    assert run.attributes["rl.task.skipped"] == "duplicate delivery"


def test_events_become_metrics_and_spans() -> None:
    events.emit("task.finished", task="app.charge", task_id="t1", queue="default", attempt=1,
                outcome="completed", seconds=0.25)
    events.emit("task.dead_lettered", task="app.charge", task_id="t2", queue="default",
                reason="TimeoutError")
    events.emit("task.resurrected", task="app.charge", task_id="t3", kind="lease_expired",
                cause="lease expired", outcome="done", recovery_seconds=3.1)
    events.emit("task.timeout", task="app.charge", task_id="t4", kind="hard")
    events.emit("admission.decision", result="rejected", scope="global")
    points = metric_points()
    assert {"rl.tasks", "rl.task.duration", "rl.dead_letters", "rl.resurrections",
            "rl.recovery.time", "rl.admission"} <= set(points)
    names = {s.name for s in SPANS.get_finished_spans()}
    assert {"rl.task.dead_letter", "rl.task.resurrect", "rl.task.timeout"} <= names


def test_in_flight_goes_up_and_down() -> None:
    mw = TracingMiddleware()
    j = job({})
    mw.before_run(j)
    mw.after_run(j, None)
    (point,) = metric_points()["rl.tasks.in_flight"]
    assert point.value == 0  # type: ignore[attr-defined]
