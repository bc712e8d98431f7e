"""Flows between centers and over time: the router (hand-overs) and the scheduler (the clock)."""
