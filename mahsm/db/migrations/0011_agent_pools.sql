-- Capability pools and the agent profile serving each, published by workers when they start
-- (mahsm/profiles/registry.py). Whether a pool is live is Temporal's answer (its pollers);
-- this table says which pool queues exist beyond the built-in capability sets, and what the
-- planner, the pool lookup and GET /agents are told about them. One row per pool queue:
-- the worker that started last wins.
CREATE TABLE IF NOT EXISTS agent_pools (
    task_queue      TEXT PRIMARY KEY,
    queue_prefix    TEXT NOT NULL,
    capabilities    TEXT[] NOT NULL,
    profile         JSONB,
    worker_identity TEXT NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS agent_pools_prefix ON agent_pools (queue_prefix);
