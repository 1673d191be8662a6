-- The round-robin's front, kept beside the jobs so a dispatch pass and a queue position read a few rows, not the
-- whole queue (bot/jobs/line.py): per kind and member, how many of their jobs wait, the oldest of them, and when
-- one of theirs last started. Triggers keep it exact whatever changes a job, so no caller has to remember to.
CREATE TABLE queue_members (
    kind         TEXT    NOT NULL,
    guild_id     INTEGER NOT NULL,
    member_id    INTEGER NOT NULL,
    queued       INTEGER NOT NULL DEFAULT 0,
    first_queued INTEGER,  -- the id of their oldest queued job of this kind
    last_started REAL,     -- NULL: never served, which goes first (SQLite sorts NULL before any number)
    PRIMARY KEY (kind, guild_id, member_id)
);
-- The fair order's first round: served longest ago first, ties to the older job.
CREATE INDEX queue_members_in_turn ON queue_members (kind, last_started, first_queued) WHERE queued > 0;
-- A member's queued jobs of a kind, oldest first: what the triggers count and a position's rank reads.
CREATE INDEX jobs_queued_of_member ON jobs (guild_id, member_id, kind, state, id);

INSERT INTO queue_members (kind, guild_id, member_id, queued, first_queued, last_started)
    SELECT kind, guild_id, member_id, SUM(state = 'queued'), MIN(CASE WHEN state = 'queued' THEN id END),
           MAX(started_at)
    FROM jobs GROUP BY kind, guild_id, member_id;

CREATE TRIGGER queue_members_on_insert AFTER INSERT ON jobs
BEGIN
    INSERT INTO queue_members (kind, guild_id, member_id) VALUES (NEW.kind, NEW.guild_id, NEW.member_id)
        ON CONFLICT DO NOTHING;
    UPDATE queue_members SET
        queued = queued + (NEW.state = 'queued'),
        first_queued = CASE WHEN NEW.state = 'queued' AND (first_queued IS NULL OR NEW.id < first_queued)
                            THEN NEW.id ELSE first_queued END,
        last_started = CASE WHEN NEW.started_at > last_started OR last_started IS NULL
                            THEN NEW.started_at ELSE last_started END
    WHERE kind = NEW.kind AND guild_id = NEW.guild_id AND member_id = NEW.member_id;
END;

-- Only a member's own queued jobs are counted again: a handful, found through jobs_queued_of_member.
CREATE TRIGGER queue_members_on_update AFTER UPDATE OF state, started_at ON jobs
    WHEN OLD.state IS NOT NEW.state OR OLD.started_at IS NOT NEW.started_at
BEGIN
    UPDATE queue_members SET
        queued = (SELECT COUNT(*) FROM jobs WHERE guild_id = NEW.guild_id AND member_id = NEW.member_id
                  AND kind = NEW.kind AND state = 'queued'),
        first_queued = (SELECT MIN(id) FROM jobs WHERE guild_id = NEW.guild_id AND member_id = NEW.member_id
                        AND kind = NEW.kind AND state = 'queued'),
        last_started = CASE WHEN NEW.started_at > last_started OR last_started IS NULL
                            THEN NEW.started_at ELSE last_started END
    WHERE kind = NEW.kind AND guild_id = NEW.guild_id AND member_id = NEW.member_id;
END;

-- A deletion (a member forgotten) may take their count or their latest start with it: those are found again,
-- only when the deleted row held them (erasing a member's history row by row stays cheap).
CREATE TRIGGER queue_members_on_delete AFTER DELETE ON jobs
BEGIN
    UPDATE queue_members SET
        queued = (SELECT COUNT(*) FROM jobs WHERE guild_id = OLD.guild_id AND member_id = OLD.member_id
                  AND kind = OLD.kind AND state = 'queued'),
        first_queued = (SELECT MIN(id) FROM jobs WHERE guild_id = OLD.guild_id AND member_id = OLD.member_id
                        AND kind = OLD.kind AND state = 'queued')
    WHERE kind = OLD.kind AND guild_id = OLD.guild_id AND member_id = OLD.member_id AND OLD.state = 'queued';
    UPDATE queue_members SET
        last_started = (SELECT MAX(started_at) FROM jobs WHERE guild_id = OLD.guild_id
                        AND member_id = OLD.member_id AND kind = OLD.kind)
    WHERE kind = OLD.kind AND guild_id = OLD.guild_id AND member_id = OLD.member_id
        AND OLD.started_at >= last_started;
    DELETE FROM queue_members WHERE kind = OLD.kind AND guild_id = OLD.guild_id AND member_id = OLD.member_id
        AND queued = 0 AND last_started IS NULL;
END;
