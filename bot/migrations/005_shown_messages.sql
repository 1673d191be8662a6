-- Messages the bot posted that show members (pictures, training announcements), so that /forget can delete
-- them: one row per member shown (the requester of pictures counts). A training's progress message is in
-- progress_messages. No foreign key to jobs: forgetting reads these before it deletes the jobs.
CREATE TABLE shown_messages (
    channel_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    guild_id   INTEGER NOT NULL,
    member_id  INTEGER NOT NULL,
    job_id     INTEGER NOT NULL,
    PRIMARY KEY (message_id, member_id)
);
CREATE INDEX shown_messages_by_member ON shown_messages (guild_id, member_id);
CREATE INDEX shown_messages_by_job ON shown_messages (job_id);
