"""relier-otel: OpenTelemetry spans and metrics for Relier, on ``opentelemetry-api`` only.

Relier wires it when ``RELIER_OTEL_ENABLED=true``: ``TracingMiddleware`` first in the worker
chain, ``dispatch_span`` around every dispatch (its trace context rides in the envelope and
the broker message, so a task's span is a child of the web request that dispatched it), and
``instrument`` turning Relier's events into metrics. The SDK is an optional extra
(``relier-otel[sdk]``); see ``relier.otel.sdk``.
"""

from __future__ import annotations

from importlib.metadata import version

from relier.otel.sdk import configure, process_started, set_provider_factory
from relier.otel.telemetry import (
    DispatchSpan,
    Telemetry,
    TracingMiddleware,
    dispatch_span,
    instrument,
    start,
    uninstrument,
)

__version__ = version("relier-otel")

__all__ = [
    "DispatchSpan",
    "Telemetry",
    "TracingMiddleware",
    "__version__",
    "configure",
    "dispatch_span",
    "instrument",
    "process_started",
    "set_provider_factory",
    "start",
    "uninstrument",
]
