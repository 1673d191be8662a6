-- A server's styles: team adapters trained from design pictures (logos, illustrations, product shots), usable by
-- every member of that server and no other. A style's pictures, adapter, jobs and token are kept as a member's
-- are, under the style's own negative member id (Discord's ids are positive), so that intake, training, the
-- adapter's record and erasure serve both; this table names them. Deleting the style's members row (erasure)
-- deletes its name here with it.
CREATE TABLE styles (
    guild_id   INTEGER NOT NULL,
    style_id   INTEGER NOT NULL CHECK (style_id < 0),
    name       TEXT    NOT NULL,
    created_by INTEGER NOT NULL,          -- who started it: shown in /style list, never an owner's right
    created_at REAL    NOT NULL,
    PRIMARY KEY (guild_id, style_id),
    UNIQUE (guild_id, name),
    FOREIGN KEY (guild_id, style_id) REFERENCES members (guild_id, member_id) ON DELETE CASCADE
);
