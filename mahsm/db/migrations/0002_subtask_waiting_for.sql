-- Why a pending subtask has not started yet (e.g. no worker serves its capabilities).
ALTER TABLE subtasks ADD COLUMN IF NOT EXISTS waiting_for TEXT;
