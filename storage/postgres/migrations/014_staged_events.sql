-- The write stage's two steps (aggregator/write).
--
-- A batch's transaction commits its key (agent_batches), its dead letters
-- and its good events as staged_events rows: one row per site of the
-- batch, the events encoded as a wire batch (MessagePack + zstd,
-- protocol.EncodeBatch). Nothing in it waits on another batch.
--
-- The derivation step, one transaction per site at a time (a transaction
-- advisory lock on the site), takes a site's staged rows in id order,
-- writes their events (with sessions assigned), sessions, rollups and
-- session rollups, and deletes the rows it consumed: the delete commits
-- with what it derived, so each staged event is derived exactly once, and
-- a derivation cut short (SIGKILL) leaves its rows for the next one.
CREATE TABLE staged_events (
    site_id  integer NOT NULL,
    id       bigint  GENERATED ALWAYS AS IDENTITY,
    events   integer NOT NULL,
    payload  bytea   NOT NULL,
    PRIMARY KEY (site_id, id)
);
-- The payload is compressed already.
ALTER TABLE staged_events ALTER COLUMN payload SET STORAGE EXTERNAL;

-- One row per site that was derived: gen increases with every derivation
-- transaction, so a node that keeps a site's recent sessions in memory
-- knows whether another node derived the site since (then it drops them);
-- derived counts the events derived so far.
CREATE TABLE derive_state (
    site_id integer PRIMARY KEY,
    gen     bigint  NOT NULL,
    derived bigint  NOT NULL
);
