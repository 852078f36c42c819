-- Hourly rollups: rollup_days rows of kind 100 (storage/postgres
-- RollupHour) hold every event of a local day by its local hour, dim_id
-- the hour 0..23, so reports by hour or dateHour merge 24 rows a day
-- instead of scanning events. Only this kind is hourly: per-dimension hours
-- would multiply the rollups by up to 24 for the few reports that ask.
--
-- hour_rollups_from is the first local day whose hourly rows hold every
-- event of the site. Sites created from now on are covered from the start;
-- existing sites from tomorrow (today's earlier batches have no hourly
-- rows), or from the past once rebuilt (Store.RebuildRollups).
ALTER TABLE sites ADD COLUMN hour_rollups_from date NOT NULL DEFAULT '-infinity';
UPDATE sites SET hour_rollups_from = GREATEST(rollups_from, (now() AT TIME ZONE time_zone)::date + 1);
