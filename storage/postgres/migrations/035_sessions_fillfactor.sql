-- sessions partitions keep 30% of each page free for the new versions of
-- the rows on it (postgres.SessionsFillFactor: partitions made from now on
-- get it when created). A session is rewritten by every derivation that
-- takes its events; on full pages the new version went to another page
-- with a new primary key entry, where with room beside the old version
-- the update is HOT and the next update of the page prunes the old one.
-- The setting applies to pages written from now on; pages written before
-- keep their rows as they are.
DO $$
DECLARE
    p record;
BEGIN
    FOR p IN
        SELECT c.oid::regclass AS name
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'sessions'::regclass AND c.relkind = 'r'
    LOOP
        EXECUTE format('ALTER TABLE %s SET (fillfactor = 70)', p.name);
    END LOOP;
END $$;
