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

