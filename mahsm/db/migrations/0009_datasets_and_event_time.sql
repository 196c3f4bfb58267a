-- Registered datasets (POST /datasets, `mahsm dataset register`): rows an experiment can name
-- (`dataset_ref`) instead of carrying them. Registering a name again replaces its rows; an
-- experiment copies the rows when it is submitted, so a running one never sees the change.
CREATE TABLE IF NOT EXISTS datasets (
    name        TEXT PRIMARY KEY,
    rows        JSONB NOT NULL,
    row_count   INTEGER NOT NULL,
    digest      TEXT NOT NULL,
    description TEXT,
    created_by  TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- GET /logs across tasks, newest first, with `since`/`until`: an index in that order, so a
-- time window (and each next page) is read from the index instead of sorting every event.
CREATE INDEX IF NOT EXISTS task_events_created_at
    ON task_events (created_at DESC, task_id DESC, seq DESC);

-- The task's OpenTelemetry trace id, written by the projection from the activity's trace
-- context when tracing is on: GET /tasks/{id} turns it into a Langfuse link.
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS trace_id TEXT;
