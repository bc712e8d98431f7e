"""Which command is legal in which status: a table written by hand from DOMAIN.md.

Read across: in a case that is <status>, may one <command>? Y yes, . no.
Merged and withdrawn are terminal; closed only re-opens (a repeat complaint)
or takes the party's evaluation; evaluation follows the party's confirmation.
"""

from __future__ import annotations

import re

import pytest
from case_builders import COMMANDS, case_in

from domain import IllegalTransition, Status

TABLE = """
command          rec tri dis acc esc res fbk con clo mrg wdr
triage            Y   Y   .   .   .   .   .   .   .   .   .
dispatch          .   Y   .   .   .   .   .   .   .   .   .
accept            .   .   Y   Y   .   .   .   .   .   .   .
refuse            .   .   Y   Y   .   .   .   .   .   .   .
report_progress   .   .   .   Y   Y   .   .   .   .   .   .
urge              .   .   Y   Y   Y   .   .   .   .   .   .
escalate          .   Y   Y   Y   .   .   .   .   .   .   .
resolve           .   .   .   Y   Y   .   .   .   .   .   .
give_feedback     .   .   .   .   .   Y   .   .   .   .   .
confirm           .   .   .   .   .   .   Y   .   .   .   .
reject_result     .   .   .   .   .   .   Y   .   .   .   .
evaluate          .   .   .   .   .   .   .   Y   Y   .   .
close             .   .   .   .   .   .   .   Y   .   .   .
reopen            .   .   .   .   .   .   .   .   Y   .   .
merge_into        Y   Y   Y   Y   .   .   .   .   .   .   .
withdraw          Y   Y   Y   Y   Y   .   .   .   .   .   .
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
}

# A word of the rule each command's refusal must state.
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


CASES = parse(TABLE)


def test_the_table_covers_every_status_and_every_command() -> None:
    assert {s for s, _, _ in CASES} == set(Status)
    assert {c for _, c, _ in CASES} == set(COMMANDS)


@pytest.mark.parametrize(
    ("status", "command", "allowed"),
    CASES,
    ids=[f"{s.value}-{c}-{'ok' if a else 'illegal'}" for s, c, a in CASES],
)
def test_a_command_is_legal_only_in_the_statuses_domain_md_allows(
    status: Status, command: str, allowed: bool
) -> None:
    # Given a case in this status
    case, clock = case_in(status)
    case.collect_events()
    version = case.version
    if allowed:
        # When the command is given, then it is recorded as one event
        COMMANDS[command](case, clock)
        assert case.version == version + 1
        assert len(case.collect_events()) == 1
    else:
        # When the command is given, then it is refused naming the rule, and nothing happens
        with pytest.raises(IllegalTransition) as refused:
            COMMANDS[command](case, clock)
        message = str(refused.value)
        assert RULE_WORD[command] in message
        assert re.search(rf"this one is {status.value}\b", message)
        assert case.version == version
        assert case.collect_events() == []
