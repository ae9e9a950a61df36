"""The REST API: thin FastAPI routes that validate, authorize, call one service, return."""
