-- Registered pipelines (POST /pipelines): one row per name@version, never changed once
-- written. `digest` is the SHA-256 of the definition's canonical JSON, so registering the
-- same definition again is recognised (idempotent) and a different one under a taken
-- name@version is refused (409). `seq` orders versions: the latest is the highest.
CREATE TABLE IF NOT EXISTS pipelines (
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    seq         BIGSERIAL,
    definition  JSONB NOT NULL,
    digest      TEXT NOT NULL,
    description TEXT,
    created_by  TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);
CREATE INDEX IF NOT EXISTS pipelines_name_seq ON pipelines (name, seq DESC);

-- What a pipeline run adds to the task projection: the pipeline's name[@version] and its
-- rendered outputs on the task; each step's kind, JSON value, serving model and middleware
-- detections on its subtask row.
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS pipeline TEXT;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS outputs JSONB;
ALTER TABLE subtasks ADD COLUMN IF NOT EXISTS kind TEXT NOT NULL DEFAULT 'agent';
ALTER TABLE subtasks ADD COLUMN IF NOT EXISTS value JSONB;
ALTER TABLE subtasks ADD COLUMN IF NOT EXISTS model TEXT;
ALTER TABLE subtasks ADD COLUMN IF NOT EXISTS detections JSONB NOT NULL DEFAULT '{}'::jsonb;
