-- Queues a failed delivery again, due now, with its attempts reset.
--
-- $1 = organization, $2 = delivery id, $3 = now.
--
-- state: 0 pending, 1 leased, 2 failed (`queries::PENDING` and the rest).
UPDATE __SCHEMA__.deliveries
SET state = 0, attempts = 0, due_at = $3, available_at = $3
WHERE org = $1 AND id = $2 AND state = 2
