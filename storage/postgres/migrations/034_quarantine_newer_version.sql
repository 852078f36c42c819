-- The protocol version of a quarantined row that was quarantined because
-- it is of a newer version than the node that met it, while no node of
-- the cluster read that version (after a downgrade, say); 0 for rows
-- quarantined for another cause, and for those quarantined before this
-- column. A node that reads the version requeues such rows when it runs.
ALTER TABLE staged_quarantine ADD COLUMN IF NOT EXISTS newer_version smallint NOT NULL DEFAULT 0
    CHECK (newer_version BETWEEN 0 AND 255);
