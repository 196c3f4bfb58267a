-- Optimization runs (`mahsm optimize`): every LM call's answer, by run, request digest and
-- occurrence, so an optimizer re-run after a crash replays finished calls instead of making
-- them again (the optimizer itself is synchronous code in one activity).
CREATE TABLE IF NOT EXISTS optimize_calls (
    run_id     TEXT        NOT NULL,
    call_key   TEXT        NOT NULL,
    occurrence INTEGER     NOT NULL,
    response   JSONB       NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, call_key, occurrence)
);
