"""Postgres access: migrations and the per-process connection pool."""
