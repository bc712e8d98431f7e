"""Which command is legal in which status: tables written by hand from DOMAIN.md.

Read across: in a case that is <status>, may one <command>? Y yes, . no.
Merged, withdrawn and returned are terminal; closed only re-opens (a repeat
complaint) or takes the party's evaluation; evaluation follows the party's
confirmation. A command that also needs a linked case or an origin is read in
the table of cases that have one.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from case_builders import (
    COMMANDS,
    Clock,
    case_in,
    handed_over_in,
    linked_case_in,
)

from domain import LEGAL_FROM, Case, IllegalTransition, Status

# Any case (the canonical path; returned: a handed-down case that refused the order).
TABLE = """
command            rec tri dis acc esc res fbk con clo mrg wdr ret
triage              Y   Y   .   .   .   .   .   .   .   .   .   .
dispatch            .   Y   .   .   .   .   .   .   .   .   .   .
accept              .   .   Y   Y   .   .   .   .   .   .   .   .
refuse              .   .   Y   Y   .   .   .   .   .   .   .   .
report_progress     .   .   .   Y   Y   .   .   .   .   .   .   .
urge                .   .   Y   Y   Y   .   .   .   .   .   .   .
escalate            .   Y   Y   Y   .   .   .   .   .   .   .   .
resolve             .   .   .   Y   .   .   .   .   .   .   .   .
give_feedback       .   .   .   .   .   Y   .   .   .   .   .   .
confirm             .   .   .   .   .   .   Y   .   .   .   .   .
reject_result       .   .   .   .   .   .   Y   .   .   .   .   .
evaluate            .   .   .   .   .   .   .   Y   Y   .   .   .
close               .   .   .   .   .   .   .   Y   .   .   .   .
reopen              .   .   .   .   .   .   .   .   Y   .   .   .
merge_into          Y   Y   Y   Y   .   .   .   .   .   .   .   .
withdraw            Y   Y   Y   Y   Y   .   .   .   .   .   .   .
raise_severity      .   Y   Y   Y   .   .   .   .   .   .   .   .
mark_group_matter   Y   Y   Y   Y   Y   .   .   .   .   .   .   .
keep_separate       Y   Y   Y   Y   Y   Y   Y   Y   .   .   .   .
"""

# A case with a linked case: lower co-centers of its dispatch (answers come from one
# that has not answered, outcomes from one that accepted), or the upper center it
# escalated to (triaged: its lead village returned the order, ending the dispatch).
LINKED_TABLE = """
command                 rec tri dis acc esc res fbk con clo mrg wdr ret
note_linked_acceptance   .   .   Y   Y   .   Y   Y   Y   .   .   .   .
note_linked_refusal      .   .   Y   Y   .   Y   Y   Y   .   .   .   .
note_linked_progress     .   Y   Y   Y   Y   Y   Y   Y   .   .   .   .
note_linked_outcome      .   Y   Y   Y   Y   Y   Y   Y   .   .   .   .
"""

# A handed-over case: a township's case for a village's escalation.
HANDED_OVER_TABLE = """
command               rec tri dis acc esc res fbk con clo mrg wdr ret
close_with_origin      .   .   .   .   .   Y   .   .   .   .   .   .
rework                 .   .   .   .   .   Y   .   .   .   .   .   .
withdraw_with_origin   .   Y   Y   Y   Y   Y   .   .   .   .   .   .
"""

COLUMNS = {
    "rec": Status.RECEIVED,
    "tri": Status.TRIAGED,
    "dis": Status.DISPATCHED,
    "acc": Status.ACCEPTED,
    "esc": Status.ESCALATED,
    "res": Status.RESOLVED,
    "fbk": Status.FEEDBACK_GIVEN,
    "con": Status.CONFIRMED,
    "clo": Status.CLOSED,
    "mrg": Status.MERGED,
    "wdr": Status.WITHDRAWN,
    "ret": Status.RETURNED,
}

# A word of the rule each command's refusal must state, and the event it records.
RULE_WORD = {
    "triage": "triaged",
    "dispatch": "dispatched",
    "accept": "accepted",
    "refuse": "refused",
    "report_progress": "progress",
    "urge": "urged",
    "escalate": "escalated",
    "resolve": "resolved",
    "give_feedback": "feedback",
    "confirm": "confirmed",
    "reject_result": "rejected",
    "evaluate": "evaluated",
    "close": "closed only after the party confirmed",
    "reopen": "reopened",
    "merge_into": "merged",
    "withdraw": "withdrawn",
    "raise_severity": "severity raised",
    "mark_group_matter": "marked a group matter",
    "keep_separate": "kept separate",
    "note_linked_acceptance": "acceptance",
    "note_linked_refusal": "refusal",
    "note_linked_progress": "linked case's progress",
    "note_linked_outcome": "linked case's outcome",
    "close_with_origin": "closes with its origin",
    "rework": "sent back for rework",
    "withdraw_with_origin": "ends with its origin",
}
EVENT = {
    "triage": "Triaged",
    "dispatch": "Dispatched",
    "accept": "Accepted",
    "refuse": "Refused",
    "report_progress": "ProgressReported",
    "urge": "Urged",
    "escalate": "Escalated",
    "resolve": "Resolved",
    "give_feedback": "FeedbackGiven",
    "confirm": "Confirmed",
    "reject_result": "ResultRejected",
    "evaluate": "Evaluated",
    "close": "Closed",
    "reopen": "Reopened",
    "merge_into": "Merged",
    "withdraw": "Withdrawn",
    "raise_severity": "SeverityRaised",
    "mark_group_matter": "GroupMatterMarked",
    "keep_separate": "KeptSeparate",
    "note_linked_acceptance": "Accepted",
    "note_linked_refusal": "Refused",
    "note_linked_progress": "LinkedProgressNoted",
    "note_linked_outcome": "LinkedOutcomeNoted",
    "close_with_origin": "ClosedWithOrigin",
    "rework": "ReworkRequested",
    "withdraw_with_origin": "Withdrawn",
}
# Commands after which the same command may escalate the case (DOMAIN.md rule 6).
MAY_ESCALATE = {"triage", "raise_severity", "mark_group_matter"}

Builder = Callable[[Status], tuple[Case, Clock]]
TABLES: dict[str, tuple[str, Builder]] = {
    "any": (TABLE, case_in),
    "linked": (LINKED_TABLE, linked_case_in),
    "handed-over": (HANDED_OVER_TABLE, handed_over_in),
}


def parse(table: str) -> list[tuple[Status, str, bool]]:
    header, *rows = table.strip().splitlines()
    statuses = [COLUMNS[column] for column in header.split()[1:]]
    cases = []
    for row in rows:
        command, *marks = row.split()
        assert len(marks) == len(statuses), row
        cases += [(s, command, m == "Y") for s, m in zip(statuses, marks, strict=True)]
    return cases


CASES = [(kind, *row) for kind, (table, _) in TABLES.items() for row in parse(table)]


@pytest.mark.parametrize("kind", list(TABLES))
def test_each_table_covers_every_status(kind: str) -> None:
    assert {s for s, _, _ in parse(TABLES[kind][0])} == set(Status)


def test_the_tables_cover_every_command_once() -> None:
    commands = [c for table, _ in TABLES.values() for _, c, _ in parse(table)]
    assert set(commands) == set(COMMANDS) >= set(LEGAL_FROM)
    assert len(commands) == len(COMMANDS) * len(Status)


@pytest.mark.parametrize(
    ("kind", "status", "command", "allowed"),
    CASES,
    ids=[f"{k}-{s.value}-{c}-{'ok' if a else 'illegal'}" for k, s, c, a in CASES],
)
def test_a_command_is_legal_only_in_the_statuses_domain_md_allows(
    kind: str, status: Status, command: str, allowed: bool
) -> None:
    # Given a case in this status
    case, clock = TABLES[kind][1](status)
    case.collect_events()
    version = case.version
    if allowed:
        # When the command is given, then it is recorded as its event (and maybe an escalation)
        COMMANDS[command](case, clock)
        names = [type(e).__name__ for e in case.collect_events()]
        escalated = (
            command in MAY_ESCALATE
            and case.status is Status.ESCALATED
            and status is not Status.ESCALATED
        )
        assert names == [EVENT[command], *(["Escalated"] if escalated else [])]
        assert case.version == version + len(names)
    else:
        # When the command is given, then it is refused naming the rule, and nothing happens
        with pytest.raises(IllegalTransition) as refused:
            COMMANDS[command](case, clock)
        message = str(refused.value)
        assert RULE_WORD[command] in message
        assert re.search(rf"this one is {status.value}\b", message)
        assert case.version == version
        assert case.collect_events() == []
