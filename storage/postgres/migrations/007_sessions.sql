-- One row per session (aggregator/sessions), written in the same
-- transaction as the batch that starts or extends it, partitioned by UTC
-- day of its start like events so retention drops both together.
--
-- ts is the time of the session's first event as known when the row was
-- created, and never changes (it is part of the key); last_ts is its latest
-- event. Dimension columns hold dims ids (0 = absent) of the session's
-- first event, named as in events so report expressions read either table:
-- page_id is the landing page (the first page_view's path), exit_page_id
-- the last page_view's. source_id … channel_id are the session's traffic
-- (aggregator/channel, from its first event) and first_source_id the
-- source of the visitor's first session. flags ORs the events' protocol
-- flags; bit 128 marks a new user's session (newVsReturning).
-- Sessions of events stored before this migration are not built.
CREATE TABLE sessions (
    -- 8-byte columns first, then 4-byte, then 2-byte: no alignment padding.
    ts              timestamptz NOT NULL,
    last_ts         timestamptz NOT NULL,
    visitor_id      bigint      NOT NULL,
    session_id      bigint      NOT NULL,
    engagement_ms   bigint      NOT NULL,
    site_id         integer     NOT NULL,
    events          integer     NOT NULL,
    page_views      integer     NOT NULL,
    key_events      integer     NOT NULL,
    page_id         integer     NOT NULL,
    exit_page_id    integer     NOT NULL,
    host_id         integer     NOT NULL,
    referrer_id     integer     NOT NULL,
    language_id     integer     NOT NULL,
    screen_id       integer     NOT NULL,
    country_id      integer     NOT NULL,
    region_id       integer     NOT NULL,
    city_id         integer     NOT NULL,
    browser_id      integer     NOT NULL,
    os_id           integer     NOT NULL,
    device_id       integer     NOT NULL,
    source_id       integer     NOT NULL,
    medium_id       integer     NOT NULL,
    campaign_id     integer     NOT NULL,
    channel_id      integer     NOT NULL,
    first_source_id integer     NOT NULL,
    flags           smallint    NOT NULL,
    -- Serves the write path's look-up of a visitor's recent sessions too.
    PRIMARY KEY (site_id, visitor_id, session_id, ts)
) PARTITION BY RANGE (ts);

CREATE INDEX sessions_ts_brin ON sessions USING brin (ts) WITH (pages_per_range = 32);

-- A sessions partition for every events partition that exists already.
DO $$
DECLARE
    p record;
BEGIN
    FOR p IN
        SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class parent ON parent.oid = i.inhparent
        WHERE parent.relname = 'events' AND c.relname LIKE 'events\_p%'
    LOOP
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF sessions %s',
            'sessions_p' || substr(p.relname, 9), p.bound);
    END LOOP;
END
$$;
