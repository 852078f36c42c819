-- Narrow events rows (issue #5: at most 100 bytes per event on disk, all in).
--
-- Before: 24 columns, an int4 before the first int8 (4 bytes of padding), a
-- smallint between int4s, a nullable params column (a null bitmap that
-- pushes the 23-byte tuple header to 32 bytes on every row without params),
-- and 12 dims ids that repeat per visitor: about 152 bytes a row.
--
-- After: the 8-byte columns first, then the 4-byte ones, then flags, then
-- params; no NULLs (params is '' when an event has none), so the header is
-- 24 bytes; the page's host, path and title become one id of
-- content_profiles, the client dimensions (language, screen, country,
-- region, city, browser, OS, device) one id of client_profiles and a
-- session's traffic source (source, medium, campaign, channel group) one id
-- of traffic_profiles. A row without params is 24 + 55 bytes, 80 with
-- alignment: 84 bytes with its line pointer.
--
-- Profile id 0 means every dimension of the profile is absent; profiles are
-- per site, like dims, and never change once written.
CREATE TABLE content_profiles (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id     integer NOT NULL,
    host_id     integer NOT NULL,
    page_id     integer NOT NULL,
    title_id    integer NOT NULL,
    UNIQUE (site_id, host_id, page_id, title_id)
);

CREATE TABLE client_profiles (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id     integer NOT NULL,
    language_id integer NOT NULL,
    screen_id   integer NOT NULL,
    country_id  integer NOT NULL,
    region_id   integer NOT NULL,
    city_id     integer NOT NULL,
    browser_id  integer NOT NULL,
    os_id       integer NOT NULL,
    device_id   integer NOT NULL,
    UNIQUE (site_id, language_id, screen_id, country_id, region_id, city_id, browser_id, os_id, device_id)
);

CREATE TABLE traffic_profiles (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id     integer NOT NULL,
    source_id   integer NOT NULL,
    medium_id   integer NOT NULL,
    campaign_id integer NOT NULL,
    channel_id  integer NOT NULL,
    UNIQUE (site_id, source_id, medium_id, campaign_id, channel_id)
);

INSERT INTO content_profiles (site_id, host_id, page_id, title_id)
SELECT DISTINCT site_id, host_id, page_id, title_id
FROM events
WHERE (host_id, page_id, title_id) <> (0, 0, 0)
ORDER BY 1, 2, 3, 4;

INSERT INTO client_profiles (site_id, language_id, screen_id, country_id, region_id, city_id, browser_id, os_id, device_id)
SELECT DISTINCT site_id, language_id, screen_id, country_id, region_id, city_id, browser_id, os_id, device_id
FROM events
WHERE (language_id, screen_id, country_id, region_id, city_id, browser_id, os_id, device_id) <> (0, 0, 0, 0, 0, 0, 0, 0)
ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9;

INSERT INTO traffic_profiles (site_id, source_id, medium_id, campaign_id, channel_id)
SELECT DISTINCT site_id, source_id, medium_id, campaign_id, channel_id
FROM events
WHERE (source_id, medium_id, campaign_id, channel_id) <> (0, 0, 0, 0)
ORDER BY 1, 2, 3, 4, 5;

ALTER TABLE events RENAME TO events_wide;

CREATE TABLE events (
    ts            timestamptz NOT NULL,
    visitor_id    bigint      NOT NULL,
    session_id    bigint      NOT NULL DEFAULT 0,
    site_id       integer     NOT NULL,
    name_id       integer     NOT NULL,
    referrer_id   integer     NOT NULL DEFAULT 0,
    content_id    integer     NOT NULL DEFAULT 0, -- content_profiles.id
    client_id     integer     NOT NULL DEFAULT 0, -- client_profiles.id
    traffic_id    integer     NOT NULL DEFAULT 0, -- traffic_profiles.id, on a session's first event
    engagement_ms integer     NOT NULL DEFAULT 0,
    flags         smallint    NOT NULL DEFAULT 0,
    params        bytea       NOT NULL DEFAULT '' -- MessagePack (EventParams), '' when none
) PARTITION BY RANGE (ts);

-- No index: reports select whole day partitions (pruned by ts), and a
-- partial day is one partition's scan. The BRIN index on ts cost a few
-- pages per partition (about 5 bytes per event at 1M events over 90 days)
-- and served only ranges that end inside a day.

-- Move each day: the old partition keeps its rows under a new name until
-- they are copied into the new one of the same name and bounds.
DO $$
DECLARE
    p record;
BEGIN
    FOR p IN
        SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'events_wide'::regclass
        ORDER BY c.relname
    LOOP
        EXECUTE format('ALTER TABLE %I RENAME TO %I', p.name, p.name || '_wide');
        EXECUTE format('CREATE TABLE %I PARTITION OF events %s', p.name, p.bound);
        EXECUTE format($q$
            INSERT INTO %I (ts, visitor_id, session_id, site_id, name_id, referrer_id,
                            content_id, client_id, traffic_id, engagement_ms, flags, params)
            SELECT w.ts, w.visitor_id, w.session_id, w.site_id, w.name_id, w.referrer_id,
                   COALESCE(p.id, 0), COALESCE(c.id, 0), COALESCE(t.id, 0), w.engagement_ms, w.flags, COALESCE(w.params, '')
            FROM %I w
            LEFT JOIN content_profiles p ON (p.site_id, p.host_id, p.page_id, p.title_id)
                = (w.site_id, w.host_id, w.page_id, w.title_id)
            LEFT JOIN client_profiles c ON (c.site_id, c.language_id, c.screen_id, c.country_id, c.region_id, c.city_id, c.browser_id, c.os_id, c.device_id)
                = (w.site_id, w.language_id, w.screen_id, w.country_id, w.region_id, w.city_id, w.browser_id, w.os_id, w.device_id)
            LEFT JOIN traffic_profiles t ON (t.site_id, t.source_id, t.medium_id, t.campaign_id, t.channel_id)
                = (w.site_id, w.source_id, w.medium_id, w.campaign_id, w.channel_id)
            ORDER BY w.ts$q$, p.name, p.name || '_wide');
    END LOOP;
END
$$;

DROP TABLE events_wide;
