-- Rollups of events by their session's traffic source: rollup_days rows
-- of kind 102 (storage/postgres RollupSessionTraffic) count each event of
-- a local day under its session's traffic_profiles id (dim_id), so event
-- reports by sessionSource, sessionMedium, sessionSourceMedium,
-- sessionCampaignName or sessionDefaultChannelGroup read a few rows a day
-- instead of joining events to sessions. A session's traffic_id is fixed
-- when its row is first written, so an event never moves between rows.
--
-- traffic_rollups_from is the first local day whose rows of that kind hold
-- every event of the site. Sites created from now on are covered from the
-- start; existing sites from tomorrow, or from the past once rebuilt
-- (avila rebuild, Store.RebuildRollups).
ALTER TABLE sites ADD COLUMN traffic_rollups_from date NOT NULL DEFAULT '-infinity';
UPDATE sites SET traffic_rollups_from = GREATEST(rollups_from, (now() AT TIME ZONE time_zone)::date + 1);
