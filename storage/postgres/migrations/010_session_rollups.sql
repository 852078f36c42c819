-- Session rollups: per site, local day of a session's start (in the site's
-- time zone) and one dimension of the session, the sessions that began that
-- day with their additive counters and HyperLogLog sketches of their
-- visitors, so session reports (sessions, engagement and bounce rates,
-- session duration, sessions by source …) over whole days merge a few rows
-- per day instead of scanning the sessions table. WriteBatch keeps them in
-- the batch's transaction: a session's row there is written with its
-- values before and after the batch, and the rollups take the difference.
--
-- kind 0 holds every session (dim_id 0); other kinds are dims kinds
-- (storage/postgres SessionRollupKinds) and dim_id the sessions row's dims
-- id of that kind (0 = absent). duration_us sums last_ts - ts in
-- microseconds; engaged counts GA4's engaged sessions.
CREATE TABLE session_rollups (
    site_id       integer  NOT NULL,
    day           date     NOT NULL,
    kind          smallint NOT NULL,
    dim_id        integer  NOT NULL,
    sessions      integer  NOT NULL DEFAULT 0,
    engaged       integer  NOT NULL DEFAULT 0,
    events        integer  NOT NULL DEFAULT 0,
    page_views    integer  NOT NULL DEFAULT 0,
    key_events    integer  NOT NULL DEFAULT 0,
    duration_us   bigint   NOT NULL DEFAULT 0,
    engagement_ms bigint   NOT NULL DEFAULT 0,
    users         bytea,   -- every visitor; NULL while empty
    active_users  bytea,   -- visitors of sessions engaged, on a first visit or with engagement time
    new_users     bytea,   -- visitors of sessions holding a first visit
    PRIMARY KEY (site_id, kind, day, dim_id)
);

-- session_rollups_from is the first local day whose session rollups hold
-- every session of the site that began that day. Sites created from now on
-- are covered from the start; existing sites from tomorrow (sessions that
-- began earlier have no rows), or from the past once their sessions are
-- rebuilt (Store.RebuildSessions).
ALTER TABLE sites ADD COLUMN session_rollups_from date NOT NULL DEFAULT '-infinity';
UPDATE sites SET session_rollups_from = (now() AT TIME ZONE time_zone)::date + 1;
