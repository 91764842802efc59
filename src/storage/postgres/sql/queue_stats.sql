-- The deliveries due now, counted up to 10000 (`QUEUE_STATS_COUNT_LIMIT`),
-- and the oldest due time. Both halves walk the claim index, skipping the
-- rows of paused endpoints (a key lookup each): the count stops at the
-- limit, and the oldest is the first row not paused.
--
-- $1 = now.
--
-- state: 0 pending, 1 leased, 2 failed (`queries::PENDING` and the rest).
SELECT
    (SELECT count(*) FROM (
        SELECT 1 FROM __SCHEMA__.deliveries d
        WHERE d.state < 2 AND d.available_at <= $1
          AND NOT EXISTS (SELECT 1 FROM __SCHEMA__.endpoint_health h
                          WHERE h.org = d.org AND h.sub_id = d.sub_id
                            AND h.paused_until > $1)
        LIMIT 10000
     ) due) AS due,
    (SELECT d.available_at FROM __SCHEMA__.deliveries d
     WHERE d.state < 2 AND d.available_at <= $1
       AND NOT EXISTS (SELECT 1 FROM __SCHEMA__.endpoint_health h
                       WHERE h.org = d.org AND h.sub_id = d.sub_id
                         AND h.paused_until > $1)
     ORDER BY d.available_at LIMIT 1) AS oldest_due_at
