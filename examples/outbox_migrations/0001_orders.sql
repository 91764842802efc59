-- The shop's own table, from its own sqlx migrations (in `public`, the
-- default search_path). The webhook store keeps to its own schema.
CREATE TABLE orders (
    id               uuid        PRIMARY KEY,
    organization_id  uuid        NOT NULL,
    customer         text        NOT NULL,
    total_cents      bigint      NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
