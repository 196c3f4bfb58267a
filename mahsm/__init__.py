"""MAHSM: durable multi-agent LLM work on Temporal."""

__version__ = "0.1.0"
