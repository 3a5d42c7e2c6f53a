"""The HTTP server: ingest routes and the REST API."""
