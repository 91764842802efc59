-- A subscription's failed deliveries with their events, newest first.
--
-- $1 = organization, $2 = subscription id, $3 = limit.
--
-- state: 0 pending, 1 leased, 2 failed (`queries::PENDING` and the rest).
SELECT d.id, d.org, d.sub_id, d.event_id, d.attempts, d.due_at, d.state,
    e.event_name, e.payload
FROM __SCHEMA__.deliveries d
JOIN __SCHEMA__.events e ON e.org = d.org AND e.event_id = d.event_id
WHERE d.org = $1 AND d.sub_id = $2 AND d.state = 2
ORDER BY d.due_at DESC, d.id DESC
LIMIT $3
