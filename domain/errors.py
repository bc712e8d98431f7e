"""Domain errors: the class names the kind, the message states the rule.

Every command checks its rules before it records an event and raises one of these
instead: never a silent no-op, never an ``assert``.
"""

from __future__ import annotations


class DomainError(Exception):
    """A command broke a rule of the domain."""


class IllegalTransition(DomainError):
    """The command is not allowed in the case's current state."""


class ValidationError(DomainError):
    """The command's input breaks a rule (unknown code, bad range, naive time...)."""


class DeadlineInPast(ValidationError):
    """A deadline was given that lies before the time of the command."""


class UnknownCategory(ValidationError):
    """A case category code that is not in the catalog."""
