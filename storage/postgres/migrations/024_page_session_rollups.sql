-- Rollups for GA4's cross-scope page reports (storage/postgres rollups.go):
-- rollup_days rows of kind 103 (RollupLandingPage) count each event of a
-- local day under its session's landing page (sessions.page_id), so event
-- reports by landingPage read a few rows a day; rows of kinds 104 and 105
-- (RollupPageSessions, RollupTitleSessions) hold, per day and page path
-- (title), the page's event counters and a HyperLogLog sketch of the
-- sessions with an event of it in the users column, so sessions by
-- pagePath (pageTitle) merge sketches instead of joining events to
-- sessions.
--
-- page_rollups_from is the first local day whose rows of those kinds hold
-- every event of the site. Sites created from now on are covered from the
-- start; existing sites from tomorrow, or from the past once rebuilt
-- (avila rebuild, Store.RebuildRollups).
ALTER TABLE sites ADD COLUMN page_rollups_from date NOT NULL DEFAULT '-infinity';
UPDATE sites SET page_rollups_from = GREATEST(rollups_from, (now() AT TIME ZONE time_zone)::date + 1);
