-- Data governance: retention per site, API key scopes, the audit trail
-- and data subject requests (export, erasure) with their tombstones.

-- Retention (Store.RunRetention): raw events (events, event_packs) are
-- kept retain_events_days days, sessions and the rollups
-- (rollup_days, rollup_packs, session_rollups) retain_aggregates_months
-- months; 0 keeps them for ever.
ALTER TABLE sites
    ADD COLUMN retain_events_days       integer NOT NULL DEFAULT 400 CHECK (retain_events_days >= 0),
    ADD COLUMN retain_aggregates_months integer NOT NULL DEFAULT 26 CHECK (retain_aggregates_months >= 0);

-- What a key may do: 'read' reports of its properties; 'admin' also the
-- data subject requests of /v1/gdpr/. Keys made before are read keys.
ALTER TABLE api_keys
    ADD COLUMN scope text NOT NULL DEFAULT 'read' CHECK (scope IN ('read', 'admin'));

-- Every operator action, append-only and hash-chained (Store.AppendAudit):
-- hash = SHA-256 over the row's canonical encoding, prev_hash included, so
-- a row changed or removed breaks the chain from there on (Store.VerifyAudit).
-- ids are 1, 2, 3 … without gaps: appends are serialized by an advisory lock.
CREATE TABLE audit_log (
    id        bigint      PRIMARY KEY,
    at        timestamptz NOT NULL,
    actor     text        NOT NULL,
    action    text        NOT NULL,
    site_id   integer     NOT NULL, -- 0: no site
    detail    text        NOT NULL, -- JSON object, as hashed
    prev_hash bytea       NOT NULL,
    hash      bytea       NOT NULL
);

-- Data subject requests made through the API, done by the aggregators'
-- worker (aggregator/governance). subject is the keyed hash of the
-- subject's client id or user_id, never the id itself.
CREATE TABLE gdpr_requests (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id      integer     NOT NULL,
    kind         text        NOT NULL CHECK (kind IN ('export', 'erasure')),
    identity     text        NOT NULL CHECK (identity IN ('client_id', 'user_id')),
    subject      bigint      NOT NULL,
    state        text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'done', 'failed')),
    requested_by text        NOT NULL,
    attempts     integer     NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    error        text        NOT NULL DEFAULT '',
    result       bytea       -- the export (JSON) or the erasure's counts (JSON)
);
CREATE INDEX gdpr_requests_pending ON gdpr_requests (id) WHERE state IN ('pending', 'running');

-- Subjects erased recently: the derivation drops events of these keys
-- (visitor or user) until `until`, so events still queued at agents or
-- dated back arrive and are not stored.
CREATE TABLE gdpr_tombstones (
    site_id integer     NOT NULL,
    key     bigint      NOT NULL,
    until   timestamptz NOT NULL,
    PRIMARY KEY (site_id, key)
);
