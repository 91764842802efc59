-- Picks the lanes (subscriptions) a claim of at most $3 rows serves, and
-- takes a transaction-scoped advisory lock on each, skipping lanes another
-- claimer holds. Walks the distinct lanes with queued rows (a loose index
-- scan), never the backlog; keeps those with a due row and fewer than $2
-- live leases; orders them by their turn within their organization (leases
-- in flight count as turns taken), then by how long they have waited. A
-- lane whose circuit is open is skipped; a half-open one has a cap of one
-- (its probe). The leases are counted again under the locks by the claim
-- itself: this statement's snapshot may predate another claimer's commit.
--
-- $1 = now, $2 = per-subscription cap, $3 = limit.
--
-- state: 0 pending, 1 leased, 2 failed (`queries::PENDING` and the rest).
-- The lock keys are seeded with 33610281278074469 (0x0077685f6c616e65, the
-- ASCII of "wh_lane"), apart from other users' advisory locks on the same
-- database.
WITH RECURSIVE lanes AS (
    (SELECT org, sub_id FROM __SCHEMA__.deliveries
     WHERE state < 2 ORDER BY org, sub_id LIMIT 1)
    UNION ALL
    SELECT next.org, next.sub_id FROM lanes
    CROSS JOIN LATERAL (
        SELECT d.org, d.sub_id FROM __SCHEMA__.deliveries d
        WHERE d.state < 2 AND (d.org, d.sub_id) > (lanes.org, lanes.sub_id)
        ORDER BY d.org, d.sub_id LIMIT 1
    ) next
), counted AS (
    SELECT l.org, l.sub_id, head.available_at, h.paused_until,
        CASE WHEN h.paused_until IS NULL THEN $2 ELSE least($2, 1) END AS cap,
        (SELECT count(*) FROM (
            SELECT 1 FROM __SCHEMA__.deliveries d
            WHERE d.org = l.org AND d.sub_id = l.sub_id
              AND d.state = 1 AND d.available_at > $1
            LIMIT $2) live) AS live
    FROM lanes l
    LEFT JOIN __SCHEMA__.endpoint_health h ON h.org = l.org AND h.sub_id = l.sub_id
    LEFT JOIN LATERAL (
        SELECT d.available_at FROM __SCHEMA__.deliveries d
        WHERE d.org = l.org AND d.sub_id = l.sub_id
          AND d.state < 2 AND d.available_at <= $1
        ORDER BY d.available_at LIMIT 1
    ) head ON true
), open AS (
    SELECT org, sub_id, available_at, paused_until, cap,
        (sum(live) OVER (PARTITION BY org))::bigint AS org_live,
        live
    FROM counted
), ranked AS (
    SELECT org, sub_id, available_at, org_live, cap,
        org_live + row_number() OVER (
            PARTITION BY org ORDER BY live, available_at, sub_id) AS turn
    FROM open
    WHERE available_at IS NOT NULL AND live < cap
      AND (paused_until IS NULL OR paused_until <= $1)
), chosen AS (
    SELECT org, sub_id, org_live, cap FROM ranked
    ORDER BY turn, available_at LIMIT $3
)
SELECT org, sub_id, org_live, cap FROM chosen
WHERE pg_try_advisory_xact_lock(hashtextextended(sub_id::text, 33610281278074469))
