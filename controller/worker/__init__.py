"""Celery: background work. Tasks take ids, are idempotent, and call the same services as
the API; they never open PBX sockets and hold no business rules."""
