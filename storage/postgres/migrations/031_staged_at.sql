-- When each staged row was staged (its staging transaction's start, the
-- database's clock): the age of a site's oldest staged row is how far its
-- reports lag its ingest right now (aggregator/write exports it as
-- analytics_write_staged_oldest_seconds and in /v1/cluster/status). Rows
-- staged before this migration take its time.
ALTER TABLE staged_events ADD COLUMN IF NOT EXISTS staged_at timestamptz NOT NULL DEFAULT now();
