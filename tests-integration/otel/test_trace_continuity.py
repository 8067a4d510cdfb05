"""A task's span is a child of the web request that dispatched it, across processes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from relier_testing import tasks
from relier_testing.workers import WorkerProcess


def test_fastapi_request_is_the_ancestor_of_the_task_span(
    relier_worker: Callable[..., WorkerProcess], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from opentelemetry import trace
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    span_file = tmp_path / "worker-spans.jsonl"
    relier_worker(concurrency=2, env={
        "RELIER_OTEL_ENABLED": "true", "TEST_SPAN_FILE": str(span_file),
        "RELIER_IMPORTS": "relier_testing.tasks,relier_testing.otel_spans",
    })
    monkeypatch.setenv("RELIER_OTEL_ENABLED", "true")
    from relier.core.settings import reset_settings
    from relier.tasks.dispatch import reset_dispatcher

    reset_settings(None)
    reset_dispatcher(None)
    exporter = InMemorySpanExporter()
    # OpenTelemetry lets a process set its global provider once, and in a whole-suite run
    # relier-otel's unit tests already did: record through that one when it exists.
    current = trace.get_tracer_provider()
    provider = current if isinstance(current, TracerProvider) else TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    if provider is not current:
        trace.set_tracer_provider(provider)

    app = FastAPI()

    @app.post("/charge/{customer}")
    async def charge(customer: str) -> dict[str, str]:
        receipt = await tasks.charge.apush(customer, 4200)
        return {"task_id": receipt.id}

    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    task_id = TestClient(app).post("/charge/cus_otel").json()["task_id"]
    ours = {s.name: s for s in exporter.get_finished_spans()}
    request = next(s for s in ours.values() if s.kind == trace.SpanKind.SERVER)
    dispatch = ours["rl.task.dispatch"]
    assert dispatch.parent.span_id == request.context.span_id

    deadline = time.monotonic() + 20
    worker_spans: dict[str, dict[str, object]] = {}
    while time.monotonic() < deadline and "rl.task.execute" not in worker_spans:
        if span_file.exists():
            for line in span_file.read_text().splitlines():
                span = json.loads(line)
                if span["attributes"].get("rl.task.id") == task_id or \
                        span["name"] in ("rl.task.pickup", "rl.task.execute"):
                    worker_spans[span["name"]] = span
        time.sleep(0.1)
    run = worker_spans["rl.task.run"]
    trace_id = format(request.context.trace_id, "032x")
    assert run["trace_id"] == trace_id
    assert run["parent_id"] == format(dispatch.context.span_id, "016x")
    assert worker_spans["rl.task.execute"]["parent_id"] == run["span_id"]
    assert run["attributes"]["rl.task.name"] == "relier_testing.tasks.charge"
    assert run["attributes"]["rl.task.attempt"] == 1
    assert "cus_otel" not in json.dumps(run["attributes"])  # never the arguments
