-- Retention: failed deliveries and attempt logs older than $1, and the
-- failure streaks of deleted subscriptions. A maintenance job's statement:
-- it scans the failed rows and the logs (no index on log times, to keep
-- attempts cheap). Returns how many deliveries and logs it deleted.
--
-- $1 = the cut-off time.
--
-- state: 0 pending, 1 leased, 2 failed (`queries::PENDING` and the rest).
WITH failed AS (
    DELETE FROM __SCHEMA__.deliveries WHERE state = 2 AND due_at < $1 RETURNING 1
), logs AS (
    DELETE FROM __SCHEMA__.attempt_logs WHERE delivered_at < $1 RETURNING 1
), orphans AS (
    DELETE FROM __SCHEMA__.endpoint_health h
    WHERE NOT EXISTS (SELECT 1 FROM __SCHEMA__.subscriptions s
                      WHERE s.org = h.org AND s.id = h.sub_id)
)
SELECT (SELECT count(*) FROM failed) + (SELECT count(*) FROM logs)
