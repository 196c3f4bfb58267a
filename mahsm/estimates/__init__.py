"""Plan estimates: expected LLM calls, tokens, cost and duration before a plan runs.

Pure figures (`defaults`, `figures`, `schedule`, `plan_estimate`, `actuals`) and the one
read of Postgres they learn from (`history`). See docs/estimates.md.
"""
