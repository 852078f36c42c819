-- Ecommerce: GA4's key events, revenue and items.
--
-- sites.key_events: the event names that count as key events
-- (conversions); purchase is one by default, as in GA4. The derivation sets
-- protocol.FlagKeyEvent on events whose name is listed.
ALTER TABLE sites ADD COLUMN key_events text[] NOT NULL DEFAULT '{purchase}';

-- Exchange rates the operator maintains (avila currency set-rate): an
-- amount in currency times rate is the amount in reporting. The
-- derivation converts an event's amounts into its site's reporting
-- currency (sites.currency_code) with the rate of its day's derivation;
-- without a rate they are stored as sent.
CREATE TABLE currency_rates (
    currency   text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    reporting  text        NOT NULL CHECK (reporting ~ '^[A-Z]{3}$'),
    rate       float8      NOT NULL CHECK (rate > 0 AND rate < 'Infinity'),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (currency, reporting)
);

-- One row per ecommerce event (a purchase or refund, or any event sent
-- with value, currency, tax, shipping, a transaction id or items), reached
-- from its events row by events.commerce_id (0: none). A purchase whose
-- transaction id the site has seen before is a duplicate: it gets no row
-- (and no items, and is no key event), as GA4 deduplicates purchases.
-- Amounts are in the site's reporting currency when a rate converted them,
-- else as sent.
CREATE TABLE event_commerce (
    id             integer     GENERATED ALWAYS AS IDENTITY,
    site_id        integer     NOT NULL,
    ts             timestamptz NOT NULL,
    visitor_id     bigint      NOT NULL,
    revenue        float8      NOT NULL, -- value (a refund's: the amount refunded)
    tax            float8      NOT NULL,
    shipping       float8      NOT NULL,
    name_id        integer     NOT NULL, -- dims: the event's name
    transaction_id integer     NOT NULL, -- dims kind 40; 0: none
    currency_id    integer     NOT NULL, -- dims kind 41: the currency sent; 0: none
    flags          smallint    NOT NULL, -- 1: the visitor's first purchase
    PRIMARY KEY (id)
);
CREATE INDEX event_commerce_transactions ON event_commerce (site_id, transaction_id) WHERE transaction_id <> 0;
CREATE INDEX event_commerce_visitors ON event_commerce (site_id, visitor_id) WHERE flags & 1 <> 0;

ALTER TABLE events ADD COLUMN commerce_id integer NOT NULL DEFAULT 0;
ALTER TABLE event_packs ADD COLUMN commerce_id integer[] NOT NULL DEFAULT '{}';

-- An item's own dimensions, stored once per distinct combination like the
-- events' profiles (migration 008).
CREATE TABLE item_profiles (
    id           integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id      integer NOT NULL,
    sku_id       integer NOT NULL, -- item_id
    item_name_id integer NOT NULL,
    brand_id     integer NOT NULL,
    category_id  integer NOT NULL,
    category2_id integer NOT NULL,
    category3_id integer NOT NULL,
    category4_id integer NOT NULL,
    category5_id integer NOT NULL,
    variant_id   integer NOT NULL,
    UNIQUE (site_id, sku_id, item_name_id, brand_id, category_id, category2_id, category3_id, category4_id,
            category5_id, variant_id)
);

-- Item-scoped rows: one per item of an ecommerce event. The event's
-- columns keep the events table's names (ts … traffic_id, flags), so
-- event-scoped dimensions read item rows unchanged; revenue is price ×
-- quantity in the event's converted currency.
CREATE TABLE event_items (
    ts              timestamptz NOT NULL,
    visitor_id      bigint      NOT NULL,
    session_id      bigint      NOT NULL,
    revenue         float8      NOT NULL,
    site_id         integer     NOT NULL,
    name_id         integer     NOT NULL,
    referrer_id     integer     NOT NULL,
    content_id      integer     NOT NULL,
    client_id       integer     NOT NULL,
    traffic_id      integer     NOT NULL,
    commerce_id     integer     NOT NULL,
    item_profile_id integer     NOT NULL, -- item_profiles.id
    list_id         integer     NOT NULL, -- dims kind 51: item_list_name
    promotion_id    integer     NOT NULL, -- dims kind 52: promotion_name
    quantity        integer     NOT NULL,
    flags           smallint    NOT NULL
);
CREATE INDEX event_items_site_ts ON event_items (site_id, ts);
