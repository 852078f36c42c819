-- Staged rows a derivation could not take, moved aside so that the rows
-- staged after them are derived: a payload that does not decode to the
-- events its row counts, or events PostgreSQL refuses (a data error, a
-- value past a limit), found by deriving the site's rows one at a time.
-- Left in staged_events, such a row would fail every derivation of its
-- site, and the site's reports would stop. Each row keeps its staged id,
-- payload and time, so `avila staged requeue` puts it back as it was (in
-- its place in the order of derivation), e.g. after an upgrade that
-- derives it. The events of a row here are in no report.
CREATE TABLE IF NOT EXISTS staged_quarantine (
    site_id        integer     NOT NULL,
    id             bigint      NOT NULL,
    events         integer     NOT NULL,
    payload        bytea       NOT NULL,
    staged_at      timestamptz NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    reason         text        NOT NULL,
    PRIMARY KEY (site_id, id)
);
-- The payload is compressed already.
ALTER TABLE staged_quarantine ALTER COLUMN payload SET STORAGE EXTERNAL;
