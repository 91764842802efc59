-- Stores a new subscription and its fan-out rows, one per subscribed event
-- name (the rows `enqueue_events` joins on).
--
-- $1 = organization, $2 = subscription id, $3 = name, $4 = url,
-- $5 = subscribed events (text[]), $6 = headers (json), $7 = secret,
-- $8 = enabled, $9 = created at, $10 = created by, $11 = updated at,
-- $12 = updated by, $13 = filters (json or NULL), $14 = previous secret or
-- NULL, $15 = when the previous secret expires or NULL.
WITH inserted AS (
    INSERT INTO __SCHEMA__.subscriptions (org, id, name, url, events, headers, secret,
        enabled, created_at, created_by, updated_at, updated_by, filters,
        previous_secret, previous_secret_expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
    RETURNING org, id
)
INSERT INTO __SCHEMA__.subscription_events (org, event_name, sub_id)
SELECT inserted.org, names.name, inserted.id
FROM inserted, unnest($5::text[]) AS names(name)
ON CONFLICT DO NOTHING
