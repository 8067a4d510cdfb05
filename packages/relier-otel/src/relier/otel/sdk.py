"""Providers: the OpenTelemetry SDK set up per process (an optional extra).

``pip install relier-otel[sdk]`` brings the SDK and the OTLP/HTTP exporter; ``configure``
then sets tracer and meter providers exporting to ``RELIER_OTEL_EXPORTER_OTLP_ENDPOINT``.
Relier calls ``process_started`` in every prefork child right after the fork (and in
the worker's own process for the solo and threads pools): exporter threads do not survive a
fork, so each process gets providers of its own. Use ``set_provider_factory`` to build
providers your way (another exporter, sampling, resources).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from relier.core.settings import Settings, get_settings

__all__ = ["configure", "process_started", "set_provider_factory"]

log = logging.getLogger("relier.otel")

ProviderFactory = Callable[[Settings], None]
_factory: ProviderFactory | None = None


def set_provider_factory(factory: ProviderFactory | None) -> None:
    """Build providers with ``factory(settings)`` in each process instead of ``configure``."""
    global _factory
    _factory = factory


def configure(settings: Settings) -> bool:
    """Set SDK providers with OTLP/HTTP exporters; False when the SDK is not installed."""
    try:
        from opentelemetry import metrics, trace
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("RELIER_OTEL_ENABLED=true but the OpenTelemetry SDK is not installed: "
                    "spans and metrics go nowhere. `pip install relier-otel[sdk]`, or set "
                    "providers yourself.")
        return False
    endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/")
    resource = Resource.create({"service.name": "relier-worker"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
    trace.set_tracer_provider(tracer_provider)
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics"))
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
    return True


def process_started(settings: Settings | None = None) -> None:
    """Providers for this process (called after fork in each pool child)."""
    settings = settings or get_settings()
    if _factory is not None:
        _factory(settings)
    else:
        configure(settings)
