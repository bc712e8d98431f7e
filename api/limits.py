"""What one GraphQL document may ask for: depth, aliases, tokens and nodes.

Every refusal is a validation error, answered before anything runs with
``extensions.code`` ``BAD_REQUEST`` (see :mod:`api.errors`):

- depth: at most :data:`MAX_DEPTH` nested selections (strawberry's
  ``QueryDepthLimiter``; introspection fields are not counted);
- aliases: at most :data:`MAX_ALIASES` (``MaxAliasesLimiter``'s rule);
- tokens: at most :data:`MAX_TOKENS` lexical tokens (``MaxTokensLimiter``);
- page sizes: every ``first`` (and ``top``) is 1 to :data:`MAX_FIRST`;
- text: no string may hold a NUL character (PostgreSQL's text cannot, and a
  case recorded with one could not be projected);
- nodes: the estimated number of nodes the document can return, i.e. the sum,
  over every paginated field, of the product of the page sizes from the root
  down to it (a ``first`` not given counts as its default, a variable as its
  value), is at most :data:`MAX_NODES`. Unpaginated lists of a case (its
  timeline) count as :data:`LIST_WEIGHT` nodes each.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    ValidationContext,
    VariableNode,
)
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.extensions.max_aliases import create_validator as create_alias_validator
from strawberry.schema.schema import validate_document

__all__ = [
    "DEFAULT_FIRST",
    "LIST_WEIGHT",
    "MAX_ALIASES",
    "MAX_DEPTH",
    "MAX_FIRST",
    "MAX_NODES",
    "MAX_TOKENS",
    "CostLimiter",
    "KeptByText",
    "alias_rule",
    "depth_rule",
    "estimate",
    "limits",
]

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 2000
MAX_FIRST = 100
MAX_NODES = 5000
DEFAULT_FIRST = 20
DEFAULT_TOP = 10
#: Fields that return an unpaginated list whose length grows with a case's life.
LIST_WEIGHT = 20
WEIGHTED_LISTS = frozenset({"timeline", "accessLog", "units"})
PAGE_ARGUMENTS = {"first": DEFAULT_FIRST, "top": DEFAULT_TOP}


class CostError(Exception):
    pass


def _page(field: FieldNode, variables: Mapping[str, Any]) -> int | None:
    """The page size a field asks for (None when it is not paginated)."""
    for argument in field.arguments or ():
        name = argument.name.value
        if name not in PAGE_ARGUMENTS:
            continue
        node = argument.value
        value: Any
        if isinstance(node, IntValueNode):
            value = int(node.value)
        elif isinstance(node, VariableNode):
            value = variables.get(node.name.value, PAGE_ARGUMENTS[name])
        else:
            return None  # not an Int: the schema's own validation refuses it
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        if not 1 <= value <= MAX_FIRST:
            raise CostError(f"{name} must be 1 to {MAX_FIRST}; {field.name.value} asks for "
                            f"{value}")
        return value
    if field.name.value in WEIGHTED_LISTS:
        return LIST_WEIGHT
    return None


def _selections(selection_set: SelectionSetNode | None,
                fragments: Mapping[str, FragmentDefinitionNode],
                seen: frozenset[str]) -> Iterator[tuple[FieldNode, frozenset[str]]]:
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode):
            yield selection, seen
        elif isinstance(selection, InlineFragmentNode):
            yield from _selections(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in seen:
                yield from _selections(fragment.selection_set, fragments, seen | {name})


def _nodes(selection_set: SelectionSetNode | None, fragments: Mapping[str, FragmentDefinitionNode],
           variables: Mapping[str, Any], multiplier: int, seen: frozenset[str]) -> int:
    total = 0
    for field, inside in _selections(selection_set, fragments, seen):
        page = _page(field, variables)
        below = multiplier * page if page else multiplier
        if page:
            total += below
        total += _nodes(field.selection_set, fragments, variables, below, inside)
        if total > MAX_NODES:
            return total  # enough to refuse; do not walk a huge document to the end
    return total


def estimate(document: DocumentNode, variables: Mapping[str, Any] | None = None,
             operation_name: str | None = None) -> int:
    """The estimated nodes of the operation that would run (each operation's
    maximum when none is named); ``CostError`` for a page size out of range."""
    fragments = {d.name.value: d for d in document.definitions
                 if isinstance(d, FragmentDefinitionNode)}
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)
                  and (operation_name is None or (d.name and d.name.value == operation_name))]
    return max((_nodes(op.selection_set, fragments, variables or {}, 1, frozenset())
                for op in operations), default=0)


def _cost_errors(document: DocumentNode, variables: Mapping[str, Any],
                 operation_name: str | None) -> list[GraphQLError]:
    """The page-size and node-count rule, with this request's variables."""
    try:
        nodes = estimate(document, variables, operation_name)
    except CostError as e:
        return [GraphQLError(str(e))]
    if nodes > MAX_NODES:
        return [GraphQLError(
            f"the query may return about {nodes} nodes; at most {MAX_NODES} are "
            "allowed: ask for smaller pages or fewer nested lists")]
    return []


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


class NoNulStrings(ASTValidationRule):
    """No NUL character in a string of the document: PostgreSQL's text cannot hold
    one, so a case recorded with one could never be projected (the variables are
    checked apart, per request)."""

    def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
        if "\x00" in node.value:
            self.report_error(GraphQLError(NUL_MESSAGE, node))


NUL_MESSAGE = "strings may not contain the NUL character (U+0000)"

#: Query texts whose parse and validation a process keeps (an LRU each, so unique texts
#: sent to a public endpoint cannot grow them).
TEXTS_KEPT = 512

T = TypeVar("T")


class KeptByText(Generic[T]):
    """What a query text gave, by (schema, text): its parsed document, or what
    validating it found. Every rule but the cost and the variables depends on the text
    alone (the limits are constants); parsing and validating were half of a small
    query's CPU (a county's overdue page, profiled)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._kept: OrderedDict[tuple[int, str], T] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, schema: object, query: str | None) -> T | None:
        if query is None:  # a document handed over parsed: nothing to key it by
            return None
        key = (id(schema), query)
        with self._lock:
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)
            return found

    def put(self, schema: object, query: str | None, value: T) -> None:
        if query is None:
            return
        with self._lock:
            self._kept[(id(schema), query)] = value
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)


parsed: KeptByText[DocumentNode] = KeptByText(TEXTS_KEPT)
validated: KeptByText[tuple[GraphQLError, ...]] = KeptByText(TEXTS_KEPT)


class CostLimiter(SchemaExtension):
    """Parses and validates the operation: the schema's rules and the limits above
    once per query text (kept), the page sizes, node count and variables' NUL check
    for every request (they depend on its variables)."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.validation_rules = (*context.validation_rules, NoNulStrings)
        yield

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None:
            context.graphql_document = parsed.get(context.schema, context.query)
        yield  # a text not kept is parsed here, its errors answered as ever
        if context.graphql_document is not None:
            parsed.put(context.schema, context.query, context.graphql_document)

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.pre_execution_errors is None:
            # the rule classes of the limits are made per request, but to the same
            # constants: the text decides what they find
            found = validated.get(context.schema, context.query)
            if found is None:
                found = tuple(validate_document(context.schema._schema, document,
                                                context.validation_rules))
                validated.put(context.schema, context.query, found)
            errors = list(found)
            variables = context.variables if isinstance(context.variables, dict) else {}
            errors += _cost_errors(document, variables, context.operation_name)
            if _has_nul(dict(variables)):
                errors.append(GraphQLError(NUL_MESSAGE))
            context.pre_execution_errors = errors
        yield


def _spreads(node: Any) -> Iterator[str]:
    """The names of every fragment spread below ``node``."""
    if isinstance(node, FragmentSpreadNode):
        yield node.name.value
    selection_set = getattr(node, "selection_set", None)
    for selection in selection_set.selections if selection_set else ():
        yield from _spreads(selection)


@functools.cache
def depth_rule(max_depth: int) -> type[ASTValidationRule]:
    """strawberry's ``QueryDepthLimiter`` rule, which fails with a ``KeyError`` on a
    spread of an unknown fragment: that document is left to graphql-core's own
    ``KnownFragmentNames`` rule (a validation error) instead. One class per depth
    for the process (a class made per request cost more than the request's checks)."""
    inner = QueryDepthLimiter(max_depth=max_depth).validation_rules[0]

    class SafeDepthRule(ASTValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            definitions = context.document.definitions
            known = {d.name.value for d in definitions
                     if isinstance(d, FragmentDefinitionNode)}
            if all(name in known for d in definitions for name in _spreads(d)):
                inner(context)  # checks the depth on construction

    return SafeDepthRule


#: strawberry's ``MaxAliasesLimiter`` rule, made once.
alias_rule = functools.cache(create_alias_validator)


def limits() -> list[Callable[[], SchemaExtension]]:
    """Factories of the schema extensions that enforce every limit above (one
    instance per request: extensions hold the request's execution context)."""
    return [
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: AddValidationRules([depth_rule(MAX_DEPTH)]),
        lambda: AddValidationRules([alias_rule(MAX_ALIASES)]),
        CostLimiter,
    ]
