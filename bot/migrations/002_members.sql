-- Members, their photos, their adapter, who they share it with, and where their progress is shown.
CREATE TABLE members (
    guild_id   INTEGER NOT NULL,
    member_id  INTEGER NOT NULL,
    token      TEXT    NOT NULL UNIQUE,   -- the trigger token; stable across retraining
    created_at REAL    NOT NULL,
    PRIMARY KEY (guild_id, member_id)
);

CREATE TABLE photos (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id   INTEGER NOT NULL,
    member_id  INTEGER NOT NULL,
    sha256     TEXT    NOT NULL,          -- of the stored, re-encoded file; also its name
    phash      INTEGER NOT NULL,          -- perceptual hash, for near duplicates
    path       TEXT    NOT NULL,
    caption    TEXT    NOT NULL DEFAULT '',
    shown_name TEXT    NOT NULL,          -- the uploader's file name, for messages only
    width      INTEGER NOT NULL,
    height     INTEGER NOT NULL,
    added_at   REAL    NOT NULL,
    UNIQUE (guild_id, member_id, sha256),
    FOREIGN KEY (guild_id, member_id) REFERENCES members (guild_id, member_id) ON DELETE CASCADE
);

CREATE TABLE adapters (
    guild_id   INTEGER NOT NULL,
    member_id  INTEGER NOT NULL,
    path       TEXT    NOT NULL,
    job_id     INTEGER,
    steps      INTEGER NOT NULL,
    created_at REAL    NOT NULL,
    PRIMARY KEY (guild_id, member_id),
    FOREIGN KEY (guild_id, member_id) REFERENCES members (guild_id, member_id) ON DELETE CASCADE
);

-- grantee_id 0 means everyone in the server.
CREATE TABLE shares (
    guild_id   INTEGER NOT NULL,
    owner_id   INTEGER NOT NULL,
    grantee_id INTEGER NOT NULL,
    PRIMARY KEY (guild_id, owner_id, grantee_id),
    FOREIGN KEY (guild_id, owner_id) REFERENCES members (guild_id, member_id) ON DELETE CASCADE
);

-- The channel message a training job's progress is edited into, so a restarted bot finds it again.
CREATE TABLE progress_messages (
    job_id     INTEGER PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    channel_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL
);

CREATE INDEX photos_by_member ON photos (guild_id, member_id, id);
