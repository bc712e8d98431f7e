"""Every kind of case event reads as a sentence in the staff's timeline."""

from __future__ import annotations

from api.timeline import SUMMARIES
from domain import Case


def test_every_case_event_type_has_a_timeline_sentence() -> None:
    declared = {name for name, value in vars(Case).items()
                if isinstance(value, type) and issubclass(value, Case.Event)
                and name not in {"Event", "Created"}}
    assert declared - set(SUMMARIES) == set()  # a new event needs its line in api/timeline.py
