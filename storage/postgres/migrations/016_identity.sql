-- Identity (GA4's client id and user_id at the agent) and derived events.
--
-- identity: the site's identity policy for hits without a consent signal:
-- 'cookie' (the keyed client id / user_id identifies the user across days,
-- addresses and the Measurement Protocol) or 'cookieless' (daily
-- cookieless ids). A consent signal always decides where one is sent.
-- identity_secret: the site's long-lived 32-byte key (protocol/identity)
-- under which agents hash client ids and user_ids; pushed to agents with
-- the site config. Every existing site gets its own random secret here
-- (gen_random_uuid is a cryptographically strong generator; 244 of the
-- 256 bits are random). identity_rotated_at: when an operator last
-- replaced it (avila site rotate-identity-secret).
ALTER TABLE sites
    ADD COLUMN identity text NOT NULL DEFAULT 'cookie' CHECK (identity IN ('cookie', 'cookieless')),
    ADD COLUMN identity_secret bytea NOT NULL
        DEFAULT decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex')
        CHECK (length(identity_secret) = 32),
    ADD COLUMN identity_rotated_at timestamptz;

-- known_users: the persistent user keys (events flagged FlagPersistent) a
-- site has seen, with the first time. A derivation inserts its users in
-- its own transaction; one that inserts a key is the key's first visit
-- (GA4 first_visit, newUsers) unless the sender says the client is a
-- returning one. Daily cookieless ids are not kept: a new one every day
-- is what they are.
CREATE TABLE known_users (
    site_id    integer     NOT NULL,
    visitor_id bigint      NOT NULL,
    first_ts   timestamptz NOT NULL,
    PRIMARY KEY (site_id, visitor_id)
);
