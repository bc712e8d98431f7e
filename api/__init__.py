"""The API: GraphQL (``api.schema``, served by ``api.app.create_app``), Open311
intake, authentication and authorization. See docs/api.md."""
