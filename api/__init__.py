"""The GraphQL API (not built yet: see the GraphQL/projections issue)."""
