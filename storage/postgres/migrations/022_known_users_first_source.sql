-- known_users.first_source_id: the source (dims id) of a persistent user's
-- first session, which GA4's firstUserSource shows on every later session
-- of the user, however long after. 0: not known (users first seen before
-- this migration), and their sessions take the source of their first
-- session within a day, as before.
ALTER TABLE known_users ADD COLUMN first_source_id integer NOT NULL DEFAULT 0;
