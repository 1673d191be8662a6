-- The durable record of every GPU job. Ray runs jobs; this table says what they are.
CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT    NOT NULL CHECK (kind IN ('train', 'generate')),
    guild_id        INTEGER NOT NULL,
    member_id       INTEGER NOT NULL,
    params          TEXT    NOT NULL,                -- JSON, as submitted
    state           TEXT    NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    attempts        INTEGER NOT NULL DEFAULT 0,      -- dispatches that ended in a lost worker count
    progress        TEXT,                            -- JSON: the latest progress seen
    error           TEXT,                            -- for a person to read
    result          TEXT,                            -- JSON: paths under the data folder
    checkpoint      TEXT,                            -- newest checkpoint: where a retry resumes
    checkpoint_step INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    worker          TEXT,                            -- the Ray actor running it now
    created_at      REAL    NOT NULL,
    started_at      REAL,                            -- first dispatch
    finished_at     REAL,
    updated_at      REAL    NOT NULL
);

CREATE INDEX jobs_by_state ON jobs (state, kind, id);
CREATE INDEX jobs_by_owner ON jobs (guild_id, member_id, state);
