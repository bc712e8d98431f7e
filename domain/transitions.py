"""Which command is legal in which status, and the rule each one states.

The closed loop (DOMAIN.md): received → triaged → dispatched → accepted →
resolved → feedback-given → confirmed → closed, with refusals (back to triaged),
urging, escalation (to the next tier up), rejection of a result (back to
accepted), re-opening (a repeat complaint, back to triaged), merging into
another case and withdrawal. Merged and withdrawn are terminal.
"""

from __future__ import annotations

from domain.errors import IllegalTransition
from domain.values import Status

__all__ = ["LEGAL_FROM", "RULES", "require"]

S = Status

LEGAL_FROM: dict[str, frozenset[Status]] = {
    # Re-triage is allowed before dispatch (severity raised, deadlines recounted).
    "triage": frozenset({S.RECEIVED, S.TRIAGED}),
    "dispatch": frozenset({S.TRIAGED}),
    # Co-units may still answer after the lead accepted.
    "accept": frozenset({S.DISPATCHED, S.ACCEPTED}),
    "refuse": frozenset({S.DISPATCHED, S.ACCEPTED}),
    "report_progress": frozenset({S.ACCEPTED, S.ESCALATED}),
    "urge": frozenset({S.DISPATCHED, S.ACCEPTED, S.ESCALATED}),
    "escalate": frozenset({S.TRIAGED, S.DISPATCHED, S.ACCEPTED}),
    "resolve": frozenset({S.ACCEPTED, S.ESCALATED}),
    "give_feedback": frozenset({S.RESOLVED}),
    "confirm": frozenset({S.FEEDBACK_GIVEN}),
    "reject_result": frozenset({S.FEEDBACK_GIVEN}),
    "evaluate": frozenset({S.CONFIRMED, S.CLOSED}),
    "close": frozenset({S.CONFIRMED}),
    "reopen": frozenset({S.CLOSED}),
    "merge_into": frozenset({S.RECEIVED, S.TRIAGED, S.DISPATCHED, S.ACCEPTED}),
    "withdraw": frozenset({S.RECEIVED, S.TRIAGED, S.DISPATCHED, S.ACCEPTED, S.ESCALATED}),
}

RULES: dict[str, str] = {
    "triage": "only a received or triaged (not yet dispatched) case can be triaged",
    "dispatch": "only a triaged case can be dispatched",
    "accept": "only a dispatched or accepted case can be accepted by an assignee",
    "refuse": "only a dispatched or accepted case can be refused by an assignee",
    "report_progress": "only an accepted or escalated case can have progress reported",
    "urge": "only a dispatched, accepted or escalated case can be urged",
    "escalate": "only a triaged, dispatched or accepted case can be escalated",
    "resolve": "only an accepted or escalated case can be resolved",
    "give_feedback": "only a resolved case can have feedback given to the party",
    "confirm": "only a case whose result was fed back can be confirmed by the party",
    "reject_result": "only a case whose result was fed back can have its result rejected",
    "evaluate": "only a confirmed or closed case can be evaluated",
    "close": "a case can be closed only after the party confirmed the result",
    "reopen": "only a closed case can be reopened",
    "merge_into": "only a case not yet resolved or escalated can be merged into another",
    "withdraw": "only a case not yet resolved can be withdrawn",
}


def require(command: str, status: Status) -> None:
    """Raise IllegalTransition naming the rule unless ``command`` is legal in ``status``."""
    if status not in LEGAL_FROM[command]:
        msg = f"{RULES[command]}; this one is {status}"
        raise IllegalTransition(msg)
