-- What must happen because a job succeeded (make the adapter the member's, announce it), written in the
-- same transaction as the success and marked done once carried out: a crash in between loses nothing.
CREATE TABLE followups (
    job_id  INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    name    TEXT    NOT NULL,
    seq     INTEGER NOT NULL,                -- the order they run in
    done_at REAL,
    PRIMARY KEY (job_id, name)
);
CREATE INDEX followups_pending ON followups (done_at, job_id, seq);

-- An adapter's identity: the SHA-256 of its file. A retrained or re-chosen adapter is another one.
ALTER TABLE adapters ADD COLUMN identity TEXT;
