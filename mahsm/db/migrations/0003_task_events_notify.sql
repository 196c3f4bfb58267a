-- Push the task event log: every row inserted into task_events notifies the channel
-- `mahsm_task_events` with its task id, so the API's event streams read new rows when they
-- appear instead of polling. Postgres delivers notifications at commit and folds identical
-- ones of one transaction into one, so a batch of events costs one notification per task.
-- An insert skipped by ON CONFLICT DO NOTHING (a retried write) fires no trigger.
CREATE OR REPLACE FUNCTION mahsm_notify_task_event() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mahsm_task_events', NEW.task_id);
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS task_events_notify ON task_events;
CREATE TRIGGER task_events_notify
    AFTER INSERT ON task_events
    FOR EACH ROW EXECUTE FUNCTION mahsm_notify_task_event();
