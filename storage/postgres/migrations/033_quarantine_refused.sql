-- Whether a quarantined row is one PostgreSQL refused (a data error found
-- by deriving its site's rows one at a time) rather than one whose
-- payload does not decode. A site's rows are quarantined for data errors
-- a few an hour at most, counted here by every node under the site's
-- derivation lock, so the bound holds across nodes and restarts. Rows
-- quarantined before this column are counted as not refused.
ALTER TABLE staged_quarantine ADD COLUMN IF NOT EXISTS refused boolean NOT NULL DEFAULT false;
