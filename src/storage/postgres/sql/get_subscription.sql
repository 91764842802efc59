-- One subscription, its columns in the order `rows` reads them.
--
-- $1 = organization, $2 = subscription id.
SELECT s.id, s.name, s.url, s.events, s.headers, s.secret,
    s.enabled, s.created_at, s.created_by, s.updated_at, s.updated_by, s.filters,
    s.previous_secret, s.previous_secret_expires_at
FROM __SCHEMA__.subscriptions s
WHERE s.org = $1 AND s.id = $2
