-- A rollup cell's users sketch equal to its active-users sketch is stored
-- as an empty bytea (the marker), and the active sketch in full; the
-- marker stood for the active sketch before. activeUsers reports, the
-- common ones, then read the active sketches alone (sketch_active.go).
-- Cells holding the earlier marker swap their two values: the users
-- sketch moves to the active column and the users column takes the
-- marker. Packs are rewritten only when one of their cells holds the
-- earlier marker; cells with full copies stay as they are.
UPDATE rollup_days SET users = ''::bytea, active_users = users
WHERE active_users = ''::bytea AND users IS NOT NULL;

UPDATE rollup_packs p SET users = s.users, active_users = s.active
FROM (
	SELECT q.site_id, q.kind, q.day,
		array_agg(CASE WHEN x.a = ''::bytea THEN ''::bytea ELSE x.u END ORDER BY x.i) AS users,
		array_agg(CASE WHEN x.a = ''::bytea THEN x.u ELSE x.a END ORDER BY x.i) AS active
	FROM rollup_packs q, unnest(q.users, q.active_users) WITH ORDINALITY AS x(u, a, i)
	WHERE ''::bytea = ANY (q.active_users)
	GROUP BY q.site_id, q.kind, q.day
) s
WHERE p.site_id = s.site_id AND p.kind = s.kind AND p.day = s.day;
