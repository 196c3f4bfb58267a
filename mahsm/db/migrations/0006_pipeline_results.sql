-- Pipelines: what each step is and produced, and the run's declared outputs.
-- `value` is a step's output as JSON when it is not text (a structured answer, a transform's
-- value, a group's outputs); `model` the model that served its last call; `detections` what
-- middleware found, counted by kind.
ALTER TABLE subtasks ADD COLUMN IF NOT EXISTS kind TEXT NOT NULL DEFAULT 'agent';
ALTER TABLE subtasks ADD COLUMN IF NOT EXISTS value JSONB;
ALTER TABLE subtasks ADD COLUMN IF NOT EXISTS model TEXT;
ALTER TABLE subtasks ADD COLUMN IF NOT EXISTS detections JSONB NOT NULL DEFAULT '{}';
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS pipeline TEXT;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS outputs JSONB;
