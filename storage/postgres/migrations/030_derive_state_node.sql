-- The node that began a site's last derivation and when (the database's
-- clock): a node leaves a site another node derived within a second to
-- that node (aggregator/write stickFor), so under steady traffic one node
-- keeps deriving it with its sessions in memory, instead of taking the
-- site's lock whenever it is free between that node's derivations.
-- node is a random id each Store draws when it opens (0: none yet).
ALTER TABLE derive_state ADD COLUMN IF NOT EXISTS node bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS derived_at timestamptz;
