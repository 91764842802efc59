-- Queues a subscription's failed deliveries again, due now, with their
-- attempts reset, newest first up to the limit. Rows another redelivery
-- holds are skipped. Returns how many were queued.
--
-- $1 = organization, $2 = subscription id, $3 = one delivery id or NULL,
-- $4 = since or NULL, $5 = now, $6 = limit.
--
-- state: 0 pending, 1 leased, 2 failed (`queries::PENDING` and the rest).
WITH picked AS (
    SELECT id FROM __SCHEMA__.deliveries
    WHERE org = $1 AND sub_id = $2 AND state = 2
      AND ($3::uuid IS NULL OR id = $3)
      AND ($4::timestamptz IS NULL OR due_at >= $4)
    ORDER BY due_at DESC, id DESC
    LIMIT $6
    FOR UPDATE SKIP LOCKED
), requeued AS (
    UPDATE __SCHEMA__.deliveries d
    SET state = 0, attempts = 0, due_at = $5, available_at = $5
    FROM picked WHERE d.id = picked.id
    RETURNING 1
)
SELECT count(*) FROM requeued
