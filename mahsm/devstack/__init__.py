"""The embedded dev stack: Temporal dev server, Postgres, worker and API as child processes."""
