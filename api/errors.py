"""GraphQL errors with a stable ``extensions.code``, never a stack trace.

Every error the API returns carries one of :data:`CODES` in ``extensions.code``:

- ``UNAUTHENTICATED``, ``TOKEN_EXPIRED``, ``TOKEN_INVALID``, ``TENANT_RETIRED``,
  ``FORBIDDEN``: the :class:`api.auth.AuthError` codes (docs/authorization.md);
- ``NOT_FOUND``: no such case or center (inside the asker's reach);
- ``VALIDATION``: the input breaks a rule (``domain.errors.ValidationError``);
- ``ILLEGAL_TRANSITION``: not allowed in the case's current state;
- ``CONFLICT``: the case changed since it was read (``ConcurrentUpdate``, or an
  ``expectedVersion`` that is not the case's version): reload and retry;
- ``BAD_REQUEST``: the document is malformed, invalid against the schema, too
  deep, has too many aliases or tokens, asks for too many nodes, or its
  variables do not fit their types;
- ``INTERNAL``: anything unexpected. Its message is generic and names the
  trace id; the exception itself goes to the server's log, never to the client.

The mapping runs as a schema extension (:class:`ErrorCodes`) after every
operation (and every subscription result), so no error leaves unclassified.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from eventsourcing.application import AggregateNotFoundError
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError
from opentelemetry import trace
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import ExecutionResult, StreamExecutionResult

from api.auth import AuthError
from domain.errors import DomainError, IllegalTransition
from tenants.center import CaseNotFound, ConcurrentUpdate
from tenants.keys import TenantKeyShredded
from tenants.registry import UnknownTenant

__all__ = [
    "CODES",
    "ApiError",
    "ErrorCodes",
    "bad_request",
    "classify",
    "coded",
    "forbidden",
    "log_unexpected",
    "not_found",
]

log = logging.getLogger(__name__)

CODES = frozenset({
    "UNAUTHENTICATED", "TOKEN_EXPIRED", "TOKEN_INVALID", "TENANT_RETIRED", "FORBIDDEN",
    "NOT_FOUND", "VALIDATION", "ILLEGAL_TRANSITION", "CONFLICT", "BAD_REQUEST", "INTERNAL",
})
INTERNAL_MESSAGE = "internal error; it was logged"


class ApiError(Exception):
    """An error the API raises itself, with its code."""

    def __init__(self, code: str, message: str) -> None:
        if code not in CODES:
            raise ValueError(f"unknown API error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message


def bad_request(message: str) -> ApiError:
    return ApiError("BAD_REQUEST", message)


def not_found(message: str) -> ApiError:
    return ApiError("NOT_FOUND", message)


def forbidden(message: str) -> AuthError:
    return AuthError("FORBIDDEN", message)


def _expected(error: BaseException) -> str | None:
    """The code of an error the API expects (its message is safe to show)."""
    if isinstance(error, ApiError | AuthError):
        return error.code
    if isinstance(error, CaseNotFound | UnknownTenant | AggregateNotFoundError):
        return "NOT_FOUND"
    if isinstance(error, ConcurrentUpdate):
        return "CONFLICT"
    if isinstance(error, IllegalTransition | TenantKeyShredded):
        return "ILLEGAL_TRANSITION"
    if isinstance(error, DomainError):
        return "VALIDATION"
    return None


def _pre_execution(error: GraphQLError) -> bool:
    """Raised while parsing, validating or coercing variables (no field path)."""
    return error.path is None and (
        error.original_error is None or error.message.startswith("Variable '$"))


def classify(error: GraphQLError) -> tuple[str, str]:
    """The code of a GraphQL error and the message the client may see."""
    original = error.original_error
    if original is not None:
        code = _expected(original)
        if code is not None:
            message = original.message if isinstance(original, ApiError | AuthError) \
                else str(original)
            return code, message
    if _pre_execution(error):
        return "BAD_REQUEST", error.message
    return "INTERNAL", INTERNAL_MESSAGE


def coded(error: GraphQLError) -> GraphQLError:
    """The error as the client sees it: a safe message and ``extensions.code``."""
    extensions: dict[str, Any] = dict(error.extensions or {})
    if extensions.get("code") in CODES and error.original_error is None:
        return error  # already coded (e.g. processed twice)
    code, message = classify(error)
    extensions["code"] = code
    if code == "INTERNAL":
        trace_id = _trace_id()
        if trace_id:
            extensions["trace"] = trace_id
            message = f"{INTERNAL_MESSAGE} (trace {trace_id})"
        # only our own keys: an unexpected error's extensions may hold anything
        extensions = {k: v for k, v in extensions.items() if k in ("code", "trace")}
    return GraphQLError(message, nodes=error.nodes, source=error.source,
                        positions=error.positions, path=error.path, original_error=None,
                        extensions=extensions)


def _trace_id() -> str:
    """The current trace id ('' outside any span)."""
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else ""


def log_unexpected(errors: list[GraphQLError]) -> None:
    """Log (with the traceback) each error that will be answered as INTERNAL."""
    for error in errors:
        if classify(error)[0] == "INTERNAL":
            original = error.original_error or error
            log.error("GraphQL %s failed: %s", ".".join(map(str, error.path or [])) or
                      "operation", error.message,
                      exc_info=(type(original), original, original.__traceback__))
            span = trace.get_current_span()
            if span.get_span_context().is_valid:
                span.record_exception(original)


class ErrorCodes(SchemaExtension):
    """Rewrites every error of a result into its coded, client-safe form."""

    def _process(self, result: object) -> None:
        errors = getattr(result, "errors", None)
        if errors:
            log_unexpected(errors)
            result.errors = [coded(e) for e in errors]  # type: ignore[attr-defined]

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if isinstance(result, GraphQLExecutionResult | ExecutionResult):
            self._process(result)

    def on_stream_result(self, result: StreamExecutionResult) -> Iterator[None]:
        self._process(result)
        yield None
