-- Traffic source of a session, on its first event only (flags has the
-- session-start bit): source, medium, campaign name and GA4 default channel
-- group as dims ids (kinds 14..17), 0 on every other event. Constant
-- defaults make adding them instant; 4 bytes each per row.
ALTER TABLE events
    ADD COLUMN source_id   integer NOT NULL DEFAULT 0,
    ADD COLUMN medium_id   integer NOT NULL DEFAULT 0,
    ADD COLUMN campaign_id integer NOT NULL DEFAULT 0,
    ADD COLUMN channel_id  integer NOT NULL DEFAULT 0;
