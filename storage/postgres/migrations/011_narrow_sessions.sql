-- Narrow sessions rows (bytes per event on disk, all in).
--
-- Before: the first event's eight client dimensions (language, screen,
-- country, region, city, browser, OS, device) and the four traffic ones
-- (source, medium, campaign, channel group) in twelve columns, about 156
-- bytes a row with its line pointer. After: one client_profiles id and one
-- traffic_profiles id, as events hold them (migration 008): 116 bytes.
-- Landing and exit page, host, referrer and first user source stay dims ids.

INSERT INTO client_profiles (site_id, language_id, screen_id, country_id, region_id, city_id, browser_id, os_id, device_id)
SELECT DISTINCT site_id, language_id, screen_id, country_id, region_id, city_id, browser_id, os_id, device_id
FROM sessions
WHERE (language_id, screen_id, country_id, region_id, city_id, browser_id, os_id, device_id) <> (0, 0, 0, 0, 0, 0, 0, 0)
ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9
ON CONFLICT DO NOTHING;

INSERT INTO traffic_profiles (site_id, source_id, medium_id, campaign_id, channel_id)
SELECT DISTINCT site_id, source_id, medium_id, campaign_id, channel_id
FROM sessions
WHERE (source_id, medium_id, campaign_id, channel_id) <> (0, 0, 0, 0)
ORDER BY 1, 2, 3, 4, 5
ON CONFLICT DO NOTHING;

ALTER TABLE sessions RENAME TO sessions_wide;
ALTER INDEX sessions_pkey RENAME TO sessions_wide_pkey;
ALTER INDEX sessions_ts_brin RENAME TO sessions_wide_ts_brin;

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
    client_id       integer     NOT NULL, -- client_profiles.id of the first event
    traffic_id      integer     NOT NULL, -- traffic_profiles.id of the session's source
    first_source_id integer     NOT NULL,
    flags           smallint    NOT NULL,
    -- Serves the write path's look-up of a visitor's recent sessions too.
    PRIMARY KEY (site_id, visitor_id, session_id, ts)
) PARTITION BY RANGE (ts);

CREATE INDEX sessions_ts_brin ON sessions USING brin (ts) WITH (pages_per_range = 32);

-- Move each day: the old partition (and its indexes) keeps its rows under
-- a new name until they are copied into the new one of the same name and
-- bounds.
DO $$
DECLARE
    p record;
    ix record;
BEGIN
    FOR p IN
        SELECT c.oid, c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'sessions_wide'::regclass
        ORDER BY c.relname
    LOOP
        FOR ix IN
            SELECT c.relname AS name FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid WHERE x.indrelid = p.oid
        LOOP
            EXECUTE format('ALTER INDEX %I RENAME TO %I', ix.name, left(ix.name, 58) || '_wide');
        END LOOP;
        EXECUTE format('ALTER TABLE %I RENAME TO %I', p.name, p.name || '_wide');
        EXECUTE format('CREATE TABLE %I PARTITION OF sessions %s', p.name, p.bound);
        EXECUTE format($q$
            INSERT INTO %I (ts, last_ts, visitor_id, session_id, engagement_ms, site_id, events, page_views, key_events,
                            page_id, exit_page_id, host_id, referrer_id, client_id, traffic_id, first_source_id, flags)
            SELECT w.ts, w.last_ts, w.visitor_id, w.session_id, w.engagement_ms, w.site_id, w.events, w.page_views, w.key_events,
                   w.page_id, w.exit_page_id, w.host_id, w.referrer_id, COALESCE(c.id, 0), COALESCE(t.id, 0), w.first_source_id, w.flags
            FROM %I w
            LEFT JOIN client_profiles c ON (c.site_id, c.language_id, c.screen_id, c.country_id, c.region_id, c.city_id, c.browser_id, c.os_id, c.device_id)
                = (w.site_id, w.language_id, w.screen_id, w.country_id, w.region_id, w.city_id, w.browser_id, w.os_id, w.device_id)
            LEFT JOIN traffic_profiles t ON (t.site_id, t.source_id, t.medium_id, t.campaign_id, t.channel_id)
                = (w.site_id, w.source_id, w.medium_id, w.campaign_id, w.channel_id)
            ORDER BY w.ts$q$, p.name, p.name || '_wide');
    END LOOP;
END
$$;

DROP TABLE sessions_wide;
