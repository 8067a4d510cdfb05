"""Imported by a test worker (``RELIER_IMPORTS``): export its spans as JSON lines to a file.

Providers are built per process by Relier (``process_started``), so the file receives the
spans of every prefork child.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from relier.otel import set_provider_factory


class FileExporter(SpanExporter):
    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with open(self.path, "a", encoding="utf-8") as handle:
            for span in spans:
                handle.write(json.dumps({
                    "name": span.name,
                    "trace_id": format(span.context.trace_id, "032x"),
                    "span_id": format(span.context.span_id, "016x"),
                    "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
                    "attributes": dict(span.attributes or {}),
                    "pid": os.getpid(),
                }) + "\n")
        return SpanExportResult.SUCCESS


def factory(settings: Any) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(FileExporter(os.environ["TEST_SPAN_FILE"])))
    trace.set_tracer_provider(provider)


set_provider_factory(factory)
