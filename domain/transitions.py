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
    # An escalated case is resolved by the upper tier's outcome (note_linked_outcome).
    "resolve": frozenset({S.ACCEPTED}),
    "give_feedback": frozenset({S.RESOLVED}),
    "confirm": frozenset({S.FEEDBACK_GIVEN}),
    "reject_result": frozenset({S.FEEDBACK_GIVEN}),
    "evaluate": frozenset({S.CONFIRMED, S.CLOSED}),
    "close": frozenset({S.CONFIRMED}),
    "reopen": frozenset({S.CLOSED}),
    "merge_into": frozenset({S.RECEIVED, S.TRIAGED, S.DISPATCHED, S.ACCEPTED}),
    "withdraw": frozenset({S.RECEIVED, S.TRIAGED, S.DISPATCHED, S.ACCEPTED, S.ESCALATED}),
    "raise_severity": frozenset({S.TRIAGED, S.DISPATCHED, S.ACCEPTED}),
    "mark_group_matter": frozenset(
        {S.RECEIVED, S.TRIAGED, S.DISPATCHED, S.ACCEPTED, S.ESCALATED}),
    "keep_separate": frozenset({S.RECEIVED, S.TRIAGED, S.DISPATCHED, S.ACCEPTED, S.ESCALATED,
                                S.RESOLVED, S.FEEDBACK_GIVEN, S.CONFIRMED}),
    # What linked cases report back, and what the origin sends on (the router).
    "note_linked_progress": frozenset({S.TRIAGED, S.DISPATCHED, S.ACCEPTED, S.ESCALATED,
                                       S.RESOLVED, S.FEEDBACK_GIVEN, S.CONFIRMED}),
    "note_linked_outcome": frozenset({S.TRIAGED, S.DISPATCHED, S.ACCEPTED, S.ESCALATED,
                                      S.RESOLVED, S.FEEDBACK_GIVEN, S.CONFIRMED}),
    # A co-center may answer its order while the lead's result is with the party.
    "note_linked_acceptance": frozenset({S.DISPATCHED, S.ACCEPTED, S.RESOLVED,
                                         S.FEEDBACK_GIVEN, S.CONFIRMED}),
    "note_linked_refusal": frozenset({S.DISPATCHED, S.ACCEPTED, S.RESOLVED,
                                      S.FEEDBACK_GIVEN, S.CONFIRMED}),
    "close_with_origin": frozenset({S.RESOLVED}),
    "rework": frozenset({S.RESOLVED}),
    "withdraw_with_origin": frozenset({S.TRIAGED, S.DISPATCHED, S.ACCEPTED, S.ESCALATED,
                                       S.RESOLVED}),
}

RULES: dict[str, str] = {
    "triage": "only a received or triaged (not yet dispatched) case can be triaged",
    "dispatch": "only a triaged case can be dispatched",
    "accept": "only a dispatched or accepted case can be accepted by an assignee",
    "refuse": "only a dispatched or accepted case can be refused by an assignee",
    "report_progress": "only an accepted or escalated case can have progress reported",
    "urge": "only a dispatched, accepted or escalated case can be urged",
    "escalate": "only a triaged, dispatched or accepted case can be escalated",
    "resolve": (
        "only an accepted case can be resolved (an escalated one is resolved by the"
        " outcome the upper tier reports)"
    ),
    "give_feedback": "only a resolved case can have feedback given to the party",
    "confirm": "only a case whose result was fed back can be confirmed by the party",
    "reject_result": "only a case whose result was fed back can have its result rejected",
    "evaluate": "only a confirmed or closed case can be evaluated",
    "close": "a case can be closed only after the party confirmed the result",
    "reopen": "only a closed case can be reopened",
    "merge_into": "only a case not yet resolved or escalated can be merged into another",
    "withdraw": "only a case not yet resolved can be withdrawn",
    "raise_severity": "only a triaged, dispatched or accepted case can have its severity raised",
    "mark_group_matter": "only a case not yet resolved can be marked a group matter",
    "keep_separate": "only an open case can be kept separate from a suspected duplicate",
    "note_linked_progress": "only an open, triaged case can take a linked case's progress",
    "note_linked_outcome": "only an open, triaged case can take a linked case's outcome",
    "note_linked_acceptance": "only a dispatched case, or one awaiting its party, takes a"
                              " lower center's acceptance",
    "note_linked_refusal": "only a dispatched case, or one awaiting its party, takes a"
                           " lower center's refusal",
    "close_with_origin": "only a resolved handed-over case closes with its origin",
    "rework": "only a resolved handed-over case can be sent back for rework",
    "withdraw_with_origin": "only a handed-over case not yet closed ends with its origin",
}


def require(command: str, status: Status) -> None:
    """Raise IllegalTransition naming the rule unless ``command`` is legal in ``status``."""
    if status not in LEGAL_FROM[command]:
        msg = f"{RULES[command]}; this one is {status}"
        raise IllegalTransition(msg)
