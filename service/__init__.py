"""FastAPI app, schemas, settings, web UI and the ``gaitsearch`` CLI."""
