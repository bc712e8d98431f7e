"""Read models fed by the log groups (not built yet: see the GraphQL/projections issue)."""
