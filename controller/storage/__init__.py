"""Postgres for what must last (psycopg 3, Alembic migrations); Redis for live state."""
