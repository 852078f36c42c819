-- rollup_user_days: whether a user was active (GA4's is_active_user: an
-- event with an engaged session's flag, a first visit or engagement time)
-- on a local day of the site, for activeUsers by event-scoped dimensions
-- in rollups. cells NULL: active that day, the user's events of the day
-- are in their cells' active sketches. Otherwise the rollup_days cells
-- (kind << 32 | dim_id as unsigned 32 bits) the user's events of the day
-- went into, whose active sketches get the user when a later event of
-- the day makes the user active. Written by the derivation that writes
-- the events, rebuilt by RebuildRollups, erased with the user.
CREATE TABLE rollup_user_days (
    site_id    integer NOT NULL,
    day        date    NOT NULL,
    visitor_id bigint  NOT NULL,
    cells      bigint[],
    PRIMARY KEY (site_id, day, visitor_id)
);
