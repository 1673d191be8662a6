-- Members an admin blocked (/admin block): they may neither train nor ask for pictures until unblocked.
-- An admin's decision, not the member's data: /forget leaves it, so forgetting oneself does not lift a block.
CREATE TABLE blocked_members (
    guild_id   INTEGER NOT NULL,
    member_id  INTEGER NOT NULL,
    blocked_by INTEGER NOT NULL,
    blocked_at REAL    NOT NULL,
    PRIMARY KEY (guild_id, member_id)
);
