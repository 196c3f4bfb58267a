-- Plan estimates (docs/estimates.md): the LLM calls each completed agent made, learned from
-- with its tokens and duration; the estimate a task carried, next to its actuals (GET /usage);
-- and an index for the history query (the most recent completed subtasks).
ALTER TABLE subtasks ADD COLUMN IF NOT EXISTS llm_calls INTEGER;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS estimate JSONB;
CREATE INDEX IF NOT EXISTS subtasks_completed_finished
    ON subtasks (finished_at DESC) WHERE status = 'completed';
