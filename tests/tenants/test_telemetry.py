"""Traces cross the hop from a write to the projector it wakes (NOTIFY payload),
and a running projector reports its lag."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from domain import Channel, Party, Personal, Place
from projections.cases import CaseIndex
from tenants.service import Tenants
from tenants.telemetry import tracer

CST = timezone(timedelta(hours=8))


def test_a_write_and_the_projector_it_wakes_share_a_trace(
        tenants: Tenants, city_tree: dict[str, list[str]], city: str) -> None:
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # nothing configured it yet in this process
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    projector = CaseIndex(tenants, city)
    projector.catch_up()
    stop = threading.Event()
    follower = threading.Thread(target=projector.run, args=(stop.is_set, 0.2))
    follower.start()
    time.sleep(1.0)  # let it LISTEN before the write
    try:
        village = city_tree["village"][0]
        with tracer.start_as_current_span("request") as request:
            case = tenants.center(village).receive_case(
                channel=Channel.WINDOW, category="neighbour-dispute", summary="漏水",
                parties=[Party(Personal("王五"))], place=Place(village, "某路"), by="clerk",
                at=datetime(2026, 3, 2, 9, tzinfo=CST))
        deadline = time.monotonic() + 10
        while projector.lag() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert projector.lag() == 0
    finally:
        stop.set()
        follower.join()
    trace_id = request.get_span_context().trace_id
    spans = exporter.get_finished_spans()
    inserts = [s for s in spans if s.name == "store.insert"
               and s.context is not None and s.context.trace_id == trace_id]
    assert inserts and inserts[0].attributes is not None
    assert inserts[0].attributes["zongzhi.tenant"] == village
    woken = [s for s in spans if s.name == "projection.case_index"
             and any(link.context.trace_id == trace_id for link in s.links)]
    assert woken, "the projector's batch links to the write that woke it"
    assert case.case_number
