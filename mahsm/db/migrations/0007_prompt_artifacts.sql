-- Prompt artifacts (`mahsm.prompt`): a DSPy program's learned state (instructions, demos),
-- the tool schemas it expects, the model it was tuned for. Versions are immutable and
-- numbered per name from 1; saving content already stored returns its version.
CREATE TABLE IF NOT EXISTS prompt_artifacts (
    name         TEXT        NOT NULL,
    version      INTEGER     NOT NULL CHECK (version >= 1),
    content_hash TEXT        NOT NULL,
    artifact     JSONB       NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version),
    UNIQUE (name, content_hash)
);
