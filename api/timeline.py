"""A case's history as staff read it: one line per event, no personal field.

The ``Received`` event carries the parties (decrypted by the center's mapper);
nothing here reads them. Work notes, reasons and summaries that staff typed
are shown as recorded, as in every working view.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["Entry", "entry"]


@dataclass(frozen=True)
class Entry:
    version: int
    kind: str
    at: datetime
    by: str | None
    summary: str


def _text(value: Any) -> str:
    return "" if value is None else str(getattr(value, "value", value))


def _assignees(values: Any) -> str:
    shown = []
    for a in values or []:
        lead = ", lead" if getattr(a, "lead", False) else ""
        shown.append(f"{_text(getattr(a, 'ref', a))} ({_text(getattr(a, 'kind', ''))}{lead})")
    return ", ".join(shown)


def _received(e: Any) -> str:
    origin = getattr(e, "origin", None)
    if origin is not None:
        direction = "dispatched down from" if _text(origin.direction) == "up" \
            else "escalated from"
        return (f"opened by hand-over: {direction} {origin.tenant} "
                f"(case {_text(getattr(e, 'origin_case_number', ''))}): "
                f"{_text(getattr(e, 'handover_reason', ''))}")
    return f"received via {_text(e.channel)}: {_text(e.category)}"


def _resolved(e: Any) -> str:
    court = getattr(e, "court_reference", None)
    text = f"{_text(e.outcome)}: {_text(e.summary)}"
    return f"{text} (court {court})" if court else text


SUMMARIES: dict[str, Any] = {
    "Received": _received,
    "Triaged": lambda e: f"triaged {_text(e.severity)}, {_text(e.handling)}",
    "Dispatched": lambda e: f"dispatched to {_assignees(e.assignees)}",
    "Accepted": lambda e: f"accepted by {e.ref}",
    "Refused": lambda e: f"refused by {e.ref}: {e.reason}",
    "ProgressReported": lambda e: f"progress: {e.note}",
    "Urged": lambda e: (f"{_text(e.instrument)}"
                        + (f" to {e.responsible_unit}" if e.responsible_unit else "")
                        + f": {e.reason}"),
    "Escalated": lambda e: f"escalated to {e.to_tenant}: {e.reason}",
    "LinkedProgressNoted": lambda e: f"progress at linked case {e.linked_case}: {e.note}",
    "LinkedOutcomeNoted": lambda e: f"linked case {e.linked_case} reported {_resolved(e)}",
    "ClosedWithOrigin": lambda e: "closed with its origin case",
    "ReworkRequested": lambda e: f"sent back for rework: {e.reason}",
    "Resolved": lambda e: f"resolved {_resolved(e)}",
    "FeedbackGiven": lambda e: f"result fed back to the party: {e.message}",
    "Confirmed": lambda e: "the party confirmed the result",
    "ResultRejected": lambda e: f"the party rejected the result: {e.reason}",
    "Evaluated": lambda e: f"evaluated {e.stars} stars" + (f": {e.comment}" if e.comment
                                                           else ""),
    "Closed": lambda e: "closed",
    "Reopened": lambda e: f"re-opened: {e.reason}",
    "Merged": lambda e: f"merged into case {e.into}",
    "KeptSeparate": lambda e: f"kept separate from case {e.other_case_id}: {e.reason}",
    "Withdrawn": lambda e: f"withdrawn: {e.reason}",
    "SeverityRaised": lambda e: f"severity raised to {_text(e.severity)}: {e.reason}",
    "GroupMatterMarked": lambda e: f"marked a group matter: {e.reason}",
    "CallbackRecorded": lambda e: (f"callback ({_text(e.result)})"
                                   + ("" if e.satisfied is None else
                                      ", satisfied" if e.satisfied else ", dissatisfied")
                                   + (f": {e.note}" if e.note else "")),
    "PhotoAttached": lambda e: f"photo attached ({e.content_type}, {e.size} bytes, "
                               f"sha256 {e.sha256[:12]}…)",
}


def entry(event: Any) -> Entry:
    """The timeline line of one decoded case event."""
    kind = type(event).__name__
    at = getattr(event, "at", None) or getattr(event, "received_at", None) or event.timestamp
    by = getattr(event, "by", None) or getattr(event, "received_by", None)
    summarize = SUMMARIES.get(kind)
    try:
        summary = summarize(event) if summarize is not None else kind
    except AttributeError:  # an older shape of the event: say what it is
        summary = kind
    return Entry(int(event.originator_version), kind, at, by, summary)
