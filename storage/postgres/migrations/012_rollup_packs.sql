-- Packed rollups: one row per site, kind and closed local day holding
-- that day's rollup_days rows of the kind as parallel arrays (dim_ids[i]
-- with events[i] … new_users[i]; a NULL sketch is an empty one). A report
-- over 30 days reads 30 rows per kind instead of one per day and value,
-- and a row's header and key are paid once per day instead of once per
-- value. rollup_days keeps the days still written (today, yesterday) and
-- late events of packed days; reports add both. The upkeep job
-- (Store.PackRollups) moves closed days' rows here, existing rows
-- included; RebuildRollups writes closed days here directly.
CREATE TABLE rollup_packs (
    site_id       integer    NOT NULL,
    kind          smallint   NOT NULL,
    day           date       NOT NULL,
    dim_ids       integer[]  NOT NULL,  -- ascending
    events        integer[]  NOT NULL,
    page_views    integer[]  NOT NULL,
    key_events    integer[]  NOT NULL,
    engagement_ms bigint[]   NOT NULL,
    users         bytea[]    NOT NULL,
    active_users  bytea[]    NOT NULL,
    new_users     bytea[]    NOT NULL,
    PRIMARY KEY (site_id, kind, day)
);
