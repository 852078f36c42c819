-- Daily rollups: per site, local day (in the site's time zone) and one
-- dimension, the additive counters of the events and HyperLogLog sketches
-- (github.com/axiomhq/hyperloglog, MarshalBinary) of their visitors, so a
-- report over any range of whole days merges a few rows per day instead of
-- scanning events. WriteBatch updates them in the batch's transaction.
--
-- kind 0 holds every event of the day (dim_id 0); other kinds are dims
-- kinds and dim_id the events' dims id of that kind (0 = absent).
CREATE TABLE rollup_days (
    site_id       integer  NOT NULL,
    day           date     NOT NULL,
    kind          smallint NOT NULL,
    dim_id        integer  NOT NULL,
    events        integer  NOT NULL DEFAULT 0,
    page_views    integer  NOT NULL DEFAULT 0,
    key_events    integer  NOT NULL DEFAULT 0,
    engagement_ms bigint   NOT NULL DEFAULT 0,
    users         bytea,   -- every visitor; NULL until the first batch
    active_users  bytea,   -- visitors engaged, on a first visit or with engagement time
    new_users     bytea,   -- visitors on a first visit
    PRIMARY KEY (site_id, kind, day, dim_id)
);

-- rollups_from is the first local day whose rollups hold every event of the
-- site; reports on earlier days read events. Sites created from now on are
-- covered from the start; existing sites from tomorrow, until rebuilt
-- (Store.RebuildRollups).
ALTER TABLE sites ADD COLUMN rollups_from date NOT NULL DEFAULT '-infinity';
UPDATE sites SET rollups_from = (now() AT TIME ZONE time_zone)::date + 1;
