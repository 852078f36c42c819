-- Ecommerce in the rollups: revenue, purchases and items by day and one
-- dimension without joining events to event_commerce.
--
-- amounts holds a rollup cell's additive ecommerce counters beside its
-- event counters, by slot (storage/postgres Amount*): on event kinds the
-- value of purchases, in-app purchases and refunds, the tax and shipping of
-- purchases, purchases and transactions; on the item kinds (the item
-- dimensions' dims kinds and RollupItems, 101, for every item of the day)
-- item revenue purchased and refunded and the quantities purchased,
-- viewed and added to carts. NULL: every slot 0; a NULL element: that slot
-- 0. Item cells have no events, users or engagement of their own.
ALTER TABLE rollup_days ADD COLUMN amounts float8[];
-- A pack's amounts are its cells' slots one after another (cell i's slot
-- j at i * slots + j + 1), NULL when no cell of the pack has any.
ALTER TABLE rollup_packs ADD COLUMN amounts float8[];

-- rollup_amounts_add adds two cells' amounts slot by slot (NULL as 0) and
-- returns NULL when every slot of the sum is 0. Derivations add with it;
-- subtracting a contribution is adding its negation.
CREATE FUNCTION rollup_amounts_add(a float8[], b float8[]) RETURNS float8[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN bool_or(s IS NOT NULL) THEN array_agg(s ORDER BY i) END
    FROM (SELECT i, NULLIF(coalesce(x, 0) + coalesce(y, 0), 0) AS s
          FROM unnest(a, b) WITH ORDINALITY AS t(x, y, i)) t
$$;

-- commerce_rollups_from is the first local day whose rollups hold every
-- ecommerce amount and item of the site. Sites created from now on are
-- covered from the start; existing sites from tomorrow, or from the past
-- once rebuilt (Store.RebuildRollups).
ALTER TABLE sites ADD COLUMN commerce_rollups_from date NOT NULL DEFAULT '-infinity';
UPDATE sites SET commerce_rollups_from = GREATEST(rollups_from, (now() AT TIME ZONE time_zone)::date + 1);
