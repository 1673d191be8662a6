-- A job's request and the bot's own notes on it, apart: `params` keeps the request as the contract writes it,
-- `notes` the bookkeeping beside it (bot/jobs/models.py, JobNotes: where its photos are, where its pictures
-- go), and who a picture draws gets a table of its own, which /forget joins instead of probing JSON.
ALTER TABLE jobs ADD COLUMN notes TEXT;  -- JSON: JobNotes without its people

CREATE TABLE job_people (
    job_id    INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,  -- in the order the request names their adapters
    member_id INTEGER NOT NULL,
    PRIMARY KEY (job_id, seq)
);
CREATE INDEX job_people_by_member ON job_people (member_id, job_id);

INSERT INTO job_people (job_id, seq, member_id)
    SELECT jobs.id, people.key, people.value FROM jobs, json_each(jobs.params, '$.people') AS people;

UPDATE jobs SET
    notes = json_object(
        'images_dir', json_extract(params, '$.images_dir'),
        'start_from', json_extract(params, '$.start_from'),
        'snapshot', json_extract(params, '$.snapshot'),
        'adapter_files', json_extract(params, '$.adapter_files'),
        'plain', json_extract(params, '$.plain'),
        'channel_id', json_extract(params, '$.channel_id'),
        'reply', json_extract(params, '$.reply')
    ),
    params = json_remove(params, '$.images_dir', '$.start_from', '$.snapshot', '$.adapter_files', '$.people',
                         '$.plain', '$.channel_id', '$.reply');
