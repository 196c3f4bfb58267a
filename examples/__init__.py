"""Runnable examples on the scripted model (see docs/pipelines.md)."""
