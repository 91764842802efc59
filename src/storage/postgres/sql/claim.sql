-- Leases up to the limit from the locked lanes, round-robin: by turn within
-- the organization, then within the subscription (leases in flight count as
-- turns taken), then by due time. Rows locked by another claimer are
-- skipped, not waited for. A delivery whose subscription or event is gone
-- comes back with NULLs and is dropped by `drop_orphans`. The subscription
-- columns come in the order `rows` reads them.
--
-- $1 = now, $2 = lease expiry, $3 = per-subscription cap, and one array
-- element per lane `claim_lanes` locked: $4 = organizations,
-- $5 = subscriptions, $6 = their organizations' leases in flight, $7 = caps.
-- __LIMIT__ is the limit, written per call (see `Queries::claim`).
--
-- state: 0 pending, 1 leased, 2 failed (`queries::PENDING` and the rest).
WITH lanes AS (
    SELECT * FROM unnest($4::uuid[], $5::uuid[], $6::bigint[], $7::bigint[])
        AS l(org, sub_id, org_live, cap)
), candidates AS (
    SELECT c.id, l.org, l.org_live, c.available_at,
        c.live + row_number() OVER (
            PARTITION BY l.org, l.sub_id ORDER BY c.available_at) AS lane_turn
    FROM lanes l
    CROSS JOIN LATERAL (
        SELECT (SELECT count(*) FROM (
            SELECT 1 FROM __SCHEMA__.deliveries x
            WHERE x.org = l.org AND x.sub_id = l.sub_id
              AND x.state = 1 AND x.available_at > $1
            LIMIT least($3, l.cap)) live) AS live
    ) flight
    CROSS JOIN LATERAL (
        SELECT d.id, d.available_at, flight.live FROM __SCHEMA__.deliveries d
        WHERE d.org = l.org AND d.sub_id = l.sub_id
          AND d.state < 2 AND d.available_at <= $1
        ORDER BY d.available_at
        LIMIT greatest(least($3, l.cap) - flight.live, 0)
    ) c
), ranked AS (
    SELECT id, lane_turn, available_at,
        org_live + row_number() OVER (
            PARTITION BY org ORDER BY lane_turn, available_at) AS turn
    FROM candidates
), picked AS (
    SELECT d.id FROM __SCHEMA__.deliveries d
    JOIN (SELECT id FROM ranked ORDER BY turn, lane_turn, available_at
          LIMIT __LIMIT__) r ON r.id = d.id
    WHERE d.state < 2 AND d.available_at <= $1
    FOR UPDATE OF d SKIP LOCKED
), leased AS (
    UPDATE __SCHEMA__.deliveries d
    SET state = 1, available_at = $2, lease_token = gen_random_uuid()
    FROM picked WHERE d.id = picked.id
    RETURNING d.id, d.org, d.sub_id, d.event_id, d.attempts, d.due_at, d.lease_token
)
SELECT l.id AS delivery_id, l.org, l.sub_id, l.event_id, l.attempts, l.due_at, l.lease_token,
    e.event_name, e.payload,
    s.id, s.name, s.url, s.events, s.headers, s.secret,
    s.enabled, s.created_at, s.created_by, s.updated_at, s.updated_by, s.filters,
    s.previous_secret, s.previous_secret_expires_at
FROM leased l
LEFT JOIN __SCHEMA__.events e ON e.org = l.org AND e.event_id = l.event_id
LEFT JOIN __SCHEMA__.subscriptions s ON s.org = l.org AND s.id = l.sub_id
