"""Optimization runs: a DSPy optimizer on a program, durable, saved as a prompt artifact."""
