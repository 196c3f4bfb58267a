-- Circuit breakers, one per 'provider/model', shared by every worker (activities/llm/breaker.py).
-- `failures` holds the times of the latest retryable failures (at most the threshold's worth);
-- those inside the window count. Times come from the database clock, so workers agree on them.
CREATE TABLE IF NOT EXISTS provider_breakers (
    model               TEXT PRIMARY KEY,
    state               TEXT NOT NULL DEFAULT 'closed'
                            CHECK (state IN ('closed', 'open', 'half_open')),
    failures            TIMESTAMPTZ[] NOT NULL DEFAULT '{}',
    last_error          TEXT,
    opened_at           TIMESTAMPTZ,
    next_probe_at       TIMESTAMPTZ,
    probe_started_at    TIMESTAMPTZ,
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Every transition, for GET /providers and for operators.
CREATE TABLE IF NOT EXISTS provider_breaker_transitions (
    id          BIGSERIAL PRIMARY KEY,
    model       TEXT NOT NULL,
    from_state  TEXT NOT NULL,
    to_state    TEXT NOT NULL,
    reason      TEXT NOT NULL,
    at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS provider_breaker_transitions_model_at
    ON provider_breaker_transitions (model, at DESC, id DESC);
