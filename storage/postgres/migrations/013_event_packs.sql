-- Packed events (issue #5: at most 100 bytes per event on disk, all in).
--
-- An events row costs 84 bytes however narrow its columns: 28 of them are
-- the tuple header and line pointer. Settled days (UTC days that ended more
-- than 72 hours ago, as far back as a Measurement Protocol event may be
-- dated) hold events that no longer change, so the upkeep job
-- (Store.PackEvents) moves them out of their events partition into
-- event_packs: one row per site, UTC day and part of at most 65536 events,
-- each column an array in (session_id, ts) order. Sorted that way a
-- session's visitor, session and client ids repeat and the arrays compress
-- (PostgreSQL's TOAST compression) to about 14 bytes per event.
--
-- Events of a packed day that arrive later land in the events partition
-- again and are packed by the next pass, into the day's last part while it
-- is small, else into a new one. Whatever reads events reads both tables
-- as one (Store.EventsIn writes that union), so it sees every event exactly
-- once, before, during and after a pass (a pass moves rows in one
-- transaction).
CREATE TABLE event_packs (
    site_id       integer       NOT NULL,
    day           date          NOT NULL,  -- the UTC day of every ts
    part          integer       NOT NULL,  -- 0, 1, … within the site's day
    events        integer       NOT NULL,  -- the arrays' length
    ts            timestamptz[] NOT NULL,
    visitor_id    bigint[]      NOT NULL,
    session_id    bigint[]      NOT NULL,
    name_id       integer[]     NOT NULL,
    referrer_id   integer[]     NOT NULL,
    content_id    integer[]     NOT NULL,
    client_id     integer[]     NOT NULL,
    traffic_id    integer[]     NOT NULL,
    engagement_ms integer[]     NOT NULL,
    flags         smallint[]    NOT NULL,
    params        bytea[]       NOT NULL,
    PRIMARY KEY (site_id, day, part)
);

-- Sessions partitions are one UTC day each and reports select whole days,
-- as with events (migration 008): the BRIN index on ts cost 48 KiB per
-- partition, about 4.5 bytes per event at 1M events over 90 days.
DROP INDEX sessions_ts_brin;
