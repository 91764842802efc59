-- Initial schema. Runs with search_path set to the store's schema only, so
-- every object lands there; the store's queries name the schema explicitly.
-- No foreign keys: their checks would take a share lock on the subscription
-- row for every queued delivery, and every writer handles deletion itself.

-- Subscriptions. `seq` keeps insertion order as the tie-break of listings.
CREATE TABLE subscriptions (
    org         uuid        NOT NULL,
    id          uuid        NOT NULL,
    seq         bigint      GENERATED ALWAYS AS IDENTITY,
    name        text        NOT NULL,
    url         text        NOT NULL,
    events      text[]      NOT NULL,
    headers     jsonb       NOT NULL,
    secret      bytea       NOT NULL,
    enabled     boolean     NOT NULL,
    created_at  timestamptz NOT NULL,
    created_by  uuid        NOT NULL,
    updated_at  timestamptz NOT NULL,
    updated_by  uuid        NOT NULL,
    filters     jsonb,
    PRIMARY KEY (org, id)
);

CREATE INDEX subscriptions_listing ON subscriptions (org, created_at, seq);

-- Who subscribes to what, for fan-out: one index range per (org, event).
-- `enabled` is read from `subscriptions` so disabling touches one row.
CREATE TABLE subscription_events (
    org         uuid NOT NULL,
    event_name  text NOT NULL,
    sub_id      uuid NOT NULL,
    PRIMARY KEY (org, event_name, sub_id)
);

-- Published events: the de-duplication key and the payload every delivery
-- and attempt log shares. `payload` is NULL when nobody was subscribed.
CREATE TABLE events (
    org           uuid        NOT NULL,
    event_id      uuid        NOT NULL,
    event_name    text        NOT NULL,
    payload       bytea,
    published_at  timestamptz NOT NULL,
    PRIMARY KEY (org, event_id)
);

CREATE INDEX events_published ON events (published_at);

-- The queue. state: 0 pending, 1 leased, 2 failed. `available_at` is when
-- a claimer may take the row: `due_at` while pending, the lease's expiry
-- while leased, so one partial index serves every claim.
CREATE TABLE deliveries (
    id            uuid        PRIMARY KEY,
    org           uuid        NOT NULL,
    sub_id        uuid        NOT NULL,
    event_id      uuid        NOT NULL,
    attempts      integer     NOT NULL DEFAULT 0,
    due_at        timestamptz NOT NULL,
    state         smallint    NOT NULL DEFAULT 0,
    available_at  timestamptz NOT NULL,
    lease_token   uuid
);

CREATE INDEX deliveries_claimable ON deliveries (available_at) WHERE state < 2;
CREATE INDEX deliveries_subscription ON deliveries (org, sub_id);
CREATE INDEX deliveries_failed ON deliveries (org, sub_id, due_at DESC) WHERE state = 2;

-- Attempt logs; the newest row per (org, sub_id, event_name) is the latest
-- status, so no row is updated by every delivery to one endpoint.
-- `response_text` is UTF-8 kept as bytes: a receiver's body may hold NUL,
-- which a text column refuses.
CREATE TABLE attempt_logs (
    org            uuid        NOT NULL,
    sub_id         uuid        NOT NULL,
    event_name     text        NOT NULL,
    seq            bigint      GENERATED ALWAYS AS IDENTITY,
    delivery_id    uuid        NOT NULL,
    event_id       uuid        NOT NULL,
    delivered_at   timestamptz NOT NULL,
    success        boolean     NOT NULL,
    response_code  integer     NOT NULL,
    response_text  bytea       NOT NULL,
    PRIMARY KEY (org, sub_id, event_name, seq)
);
