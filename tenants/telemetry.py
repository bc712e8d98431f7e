"""OpenTelemetry for every zongzhi process: traces and metrics, exported over
OTLP when configured, silent otherwise.

Set ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the SDK's standard variable; e.g.
``http://collector:4318``) to export; ``OTEL_SERVICE_NAME`` names the process.
Without it spans are still created (so trace ids appear in logs and NOTIFY
payloads) but nothing is printed or sent.

The hop from a write to the projectors and the router goes through
PostgreSQL: the writer's trace context (W3C ``traceparent``) travels as the
payload of the log group's NOTIFY, and a follower's batch span links to it.
"""

from __future__ import annotations

import os
import threading

from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link

ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
_configured = threading.Lock()
_done = False

tracer = trace.get_tracer("zongzhi")
meter = metrics.get_meter("zongzhi")


def configure(service: str = "zongzhi") -> bool:
    """Install the SDK providers once per process; True if exporting over OTLP."""
    global _done
    with _configured:
        if _done:
            return bool(os.environ.get(ENDPOINT))
        _done = True
        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME",
                                                                   service)})
        provider = TracerProvider(resource=resource)
        readers = []
        if os.environ.get(ENDPOINT):
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
        trace.set_tracer_provider(provider)
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
        return bool(readers)


def traceparent() -> str:
    """The current span's W3C trace context, or '' outside any span."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent", "")


def context_of(parent: str) -> Context:
    """The context a ``traceparent`` string names (empty if it names none)."""
    return propagate.extract({"traceparent": parent} if parent else {})


def links_to(parents: list[str]) -> list[Link]:
    """Span links to the writers' spans whose NOTIFY woke a follower."""
    links = []
    for parent in parents:
        context = trace.get_current_span(context_of(parent)).get_span_context()
        if context.is_valid:
            links.append(Link(context))
    return links


__all__ = ["configure", "context_of", "links_to", "meter", "traceparent", "tracer"]
