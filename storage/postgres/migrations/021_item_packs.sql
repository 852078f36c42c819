-- Item-scoped rows stored like events (issue #18): day partitions, and
-- settled days packed as arrays.
--
-- event_items (migration 015) was one table indexed by (site_id, ts),
-- about 10 bytes per event on a store where one event in ten is an
-- ecommerce one, and never packed. It becomes partitioned by UTC day like
-- events, with the same partition bounds and names event_items_pYYYYMMDD,
-- created with the events' partitions (Store.EnsurePartitions) and dropped
-- with them by retention. No index: item reports select whole days, as
-- events reports do (migration 008).
--
-- Settled days' item rows move into item_packs (Store.PackItems, in the
-- upkeep's packing pass beside Store.PackEvents, under the same settled-day
-- rule): one row per site, UTC day and part, each column an array in
-- (session_id, ts) order, compressed by TOAST. Whatever reads item rows
-- reads both tables as one through Store.ItemsIn.
ALTER TABLE event_items RENAME TO event_items_flat;
ALTER INDEX event_items_site_ts RENAME TO event_items_flat_site_ts;

CREATE TABLE event_items (
    ts              timestamptz NOT NULL,
    visitor_id      bigint      NOT NULL,
    session_id      bigint      NOT NULL,
    revenue         float8      NOT NULL,
    site_id         integer     NOT NULL,
    name_id         integer     NOT NULL,
    referrer_id     integer     NOT NULL,
    content_id      integer     NOT NULL,
    client_id       integer     NOT NULL,
    traffic_id      integer     NOT NULL,
    commerce_id     integer     NOT NULL,
    item_profile_id integer     NOT NULL, -- item_profiles.id
    list_id         integer     NOT NULL, -- dims kind 51: item_list_name
    promotion_id    integer     NOT NULL, -- dims kind 52: promotion_name
    quantity        integer     NOT NULL,
    flags           smallint    NOT NULL
) PARTITION BY RANGE (ts);

-- A partition for every day with an events partition and every day the old
-- table holds rows of, then the rows moved.
DO $$
DECLARE
    d date;
BEGIN
    FOR d IN
        SELECT to_date(substr(c.relname, length('events_p') + 1), 'YYYYMMDD')
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'events'::regclass AND c.relname ~ '^events_p[0-9]{8}$'
        UNION
        SELECT DISTINCT (ts AT TIME ZONE 'UTC')::date FROM event_items_flat
    LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF event_items FOR VALUES FROM (%L) TO (%L)',
            'event_items_p' || to_char(d, 'YYYYMMDD'),
            to_char(d, 'YYYY-MM-DD') || ' 00:00:00+00', to_char(d + 1, 'YYYY-MM-DD') || ' 00:00:00+00');
    END LOOP;
END
$$;

INSERT INTO event_items SELECT * FROM event_items_flat;
DROP TABLE event_items_flat;

CREATE TABLE item_packs (
    site_id         integer       NOT NULL,
    day             date          NOT NULL,  -- the UTC day of every ts
    part            integer       NOT NULL,  -- 0, 1, … within the site's day
    items           integer       NOT NULL,  -- the arrays' length
    ts              timestamptz[] NOT NULL,
    visitor_id      bigint[]      NOT NULL,
    session_id      bigint[]      NOT NULL,
    revenue         float8[]      NOT NULL,
    name_id         integer[]     NOT NULL,
    referrer_id     integer[]     NOT NULL,
    content_id      integer[]     NOT NULL,
    client_id       integer[]     NOT NULL,
    traffic_id      integer[]     NOT NULL,
    commerce_id     integer[]     NOT NULL,
    item_profile_id integer[]     NOT NULL,
    list_id         integer[]     NOT NULL,
    promotion_id    integer[]     NOT NULL,
    quantity        integer[]     NOT NULL,
    flags           smallint[]    NOT NULL,
    PRIMARY KEY (site_id, day, part)
);
