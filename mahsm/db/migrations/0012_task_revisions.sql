-- Replanning on failure: each revision of a task's plan (number, reason, failed subtasks,
-- time, summary), as `TaskState.revisions` holds them.
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS revisions JSONB NOT NULL DEFAULT '[]';
