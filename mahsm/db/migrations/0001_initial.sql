-- Tasks, subtasks, their event log, claim-check blobs, and tool idempotency records.
CREATE TABLE IF NOT EXISTS tasks (
    id              TEXT PRIMARY KEY,
    user_id         TEXT,
    description     TEXT NOT NULL,
    status          TEXT NOT NULL,
    model           TEXT NOT NULL DEFAULT '',
    options         JSONB NOT NULL DEFAULT '{}'::jsonb,
    plan            JSONB,
    result          TEXT,
    result_ref      JSONB,
    error           TEXT,
    usage           JSONB NOT NULL DEFAULT '{}'::jsonb,
    version         BIGINT NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_user_created ON tasks (user_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS tasks_status_created ON tasks (status, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS tasks_created ON tasks (created_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS subtasks (
    task_id                 TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    id                      TEXT NOT NULL,
    description             TEXT NOT NULL,
    required_capabilities   TEXT[] NOT NULL,
    depends_on              TEXT[] NOT NULL DEFAULT '{}',
    priority                INT NOT NULL DEFAULT 5,
    status                  TEXT NOT NULL,
    output                  TEXT,
    output_ref              JSONB,
    error                   TEXT,
    agent                   TEXT,
    pool                    TEXT,
    attempts                INT NOT NULL DEFAULT 0,
    usage                   JSONB NOT NULL DEFAULT '{}'::jsonb,
    started_at              TIMESTAMPTZ,
    finished_at             TIMESTAMPTZ,
    version                 BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (task_id, id)
);

-- Append-only log: state changes of the task and its subtasks, agent logs.
CREATE TABLE IF NOT EXISTS task_events (
    task_id     TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    subtask_id  TEXT,
    status      TEXT,
    data        JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (task_id, seq)
);

CREATE TABLE IF NOT EXISTS blobs (
    id          TEXT PRIMARY KEY,
    sha256      TEXT NOT NULL,
    size_bytes  BIGINT NOT NULL,
    content     BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Results of side-effecting tool calls, keyed by workflow id + activity id, so a retried
-- activity returns the recorded result instead of repeating the effect.
CREATE TABLE IF NOT EXISTS tool_effects (
    idempotency_key TEXT PRIMARY KEY,
    result          JSONB NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS shared_state (
    task_id     TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       JSONB NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, key)
);
