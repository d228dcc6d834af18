"""The HTTP layer: the GraphQL API and the GUI (a Starlette app over the query layer)."""
