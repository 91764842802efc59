-- Rewrites the mutable fields and brings the fan-out rows in line with the
-- new event set (the CTEs see the old rows); a new URL or enabling it again
-- closes its circuit. Returns the subscription as stored, its columns in
-- the order `rows` reads them.
--
-- $1 = organization, $2 = subscription id, $3 = name, $4 = url,
-- $5 = subscribed events (text[]), $6 = headers (json), $7 = enabled,
-- $8 = updated at, $9 = updated by, $10 = secret, $11 = previous secret or
-- NULL, $12 = when the previous secret expires or NULL.
WITH updated AS (
    UPDATE __SCHEMA__.subscriptions s
    SET name = $3, url = $4, events = $5, headers = $6, enabled = $7,
        updated_at = $8, updated_by = $9, secret = $10, previous_secret = $11,
        previous_secret_expires_at = $12
    WHERE s.org = $1 AND s.id = $2
    RETURNING s.id, s.name, s.url, s.events, s.headers, s.secret,
        s.enabled, s.created_at, s.created_by, s.updated_at, s.updated_by, s.filters,
        s.previous_secret, s.previous_secret_expires_at
), unsubscribed AS (
    DELETE FROM __SCHEMA__.subscription_events
    WHERE org = $1 AND sub_id = $2 AND NOT (event_name = ANY($5::text[]))
), subscribed AS (
    INSERT INTO __SCHEMA__.subscription_events (org, event_name, sub_id)
    SELECT $1, names.name, $2 FROM unnest($5::text[]) AS names(name)
    ON CONFLICT DO NOTHING
), healed AS (
    DELETE FROM __SCHEMA__.endpoint_health h
    USING __SCHEMA__.subscriptions old
    WHERE old.org = $1 AND old.id = $2 AND h.org = $1 AND h.sub_id = $2
      AND (old.url <> $4 OR (NOT old.enabled AND $7))
)
SELECT * FROM updated
