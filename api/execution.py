"""The schema's executor: plain leaf fields answered without graphql-core's per-field work.

A case row, a figure or a KPI is an object whose fields are plain attributes of a
Python value (no resolver, no arguments, no field extension) of a scalar or enum
type. graphql-core executes each such field like any other: it builds a resolve-info
object, checks for arguments and awaitables, and walks its completion through the
non-null wrapper before coercing the value; strawberry adds a resolver call to read
the attribute. A 20-row list asks for ~250 of them, and that walk was most of a
request's execution (~17 µs a field, profiled).

:class:`PlainLeaves` answers a plain leaf field by reading the attribute and
coercing it with the field's own type, exactly as the generic path would. Any value
that path would not simply coerce (``None``, an exception, an awaitable, a value the
type refuses) is handed to graphql-core's own ``execute_field``, so errors, null
propagation and their messages are graphql-core's, unchanged. Every other field
(resolvers, arguments, objects, lists, abstract types, introspection) takes the
generic path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from graphql import (
    GraphQLEnumType,
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
)
from graphql.pyutils import Undefined, is_awaitable
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter

__all__ = ["PlainLeaf", "PlainLeaves", "plain_leaves"]


class PlainLeaf(NamedTuple):
    """How to answer one plain leaf field: read ``name`` of the source with
    ``read`` (strawberry's default resolver) and coerce it with ``type``."""

    read: Callable[[Any, str], Any]
    name: str
    type: GraphQLLeafType


def plain_leaves(schema: GraphQLSchema) -> dict[str, dict[str, PlainLeaf]]:
    """Per object type name, its fields a plain attribute answers: strawberry marks
    their resolver as its default (no resolver, no extension, no permission class);
    they take no argument and are of a scalar or enum type."""
    plans: dict[str, dict[str, PlainLeaf]] = {}
    for type_ in schema.type_map.values():
        if not isinstance(type_, GraphQLObjectType) or type_.name.startswith("__"):
            continue
        fields: dict[str, PlainLeaf] = {}
        for name, field in type_.fields.items():
            definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            leaf = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
            if (definition is None or field.args or not getattr(field.resolve, "_is_default",
                                                                 False)
                    or not isinstance(leaf, GraphQLScalarType | GraphQLEnumType)):
                continue
            fields[name] = PlainLeaf(definition.default_resolver, definition.python_name, leaf)
        if fields:
            plans[type_.name] = fields
    return plans


class PlainLeaves(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, with plain leaf fields answered directly (see the
    module's docstring). The plans are made once per schema and kept for the process."""

    def execute_field(self, parent_type: GraphQLObjectType, source: Any,
                      field_details_list: Any, path: Any, position_context: Any) -> Any:
        node = field_details_list[0].node
        leaf = None
        manager = self.middleware_manager  # strawberry passes one, empty unless an
        # extension resolves fields: then every field takes the generic path
        if (manager is None or not manager.middlewares) and not node.arguments:
            plans = _plans(self.schema).get(parent_type.name)
            if plans is not None:
                leaf = plans.get(node.name.value)
        if leaf is not None:
            value = leaf.read(source, leaf.name)
            if value is not None and not isinstance(value, Exception) \
                    and not is_awaitable(value):
                try:
                    coerced = leaf.type.coerce_output_value(value)
                except Exception:  # the generic path reports it, in its words
                    coerced = None
                if coerced is not None and coerced is not Undefined:
                    return coerced
        return super().execute_field(parent_type, source, field_details_list, path,
                                     position_context)


_PLANS: dict[int, tuple[GraphQLSchema, dict[str, dict[str, PlainLeaf]]]] = {}


def _plans(schema: GraphQLSchema) -> dict[str, dict[str, PlainLeaf]]:
    kept = _PLANS.get(id(schema))
    if kept is None or kept[0] is not schema:
        kept = _PLANS[id(schema)] = (schema, plain_leaves(schema))
    return kept[1]
