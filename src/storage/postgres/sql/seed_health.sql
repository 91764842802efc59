-- The failure streaks a batch extends: ensures each (org, sub) still
-- subscribed has a row (a new streak starts at 0, since the batch's first
-- failure), in key order.
--
-- One array element per endpoint: $1 = organizations, $2 = subscriptions,
-- $3 = the time of the batch's first failure.
INSERT INTO __SCHEMA__.endpoint_health (org, sub_id, failure_streak, failing_since)
SELECT i.org, i.sub_id, 0, i.since
FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[]) AS i(org, sub_id, since)
WHERE EXISTS (SELECT 1 FROM __SCHEMA__.subscriptions s
              WHERE s.org = i.org AND s.id = i.sub_id)
ORDER BY i.org, i.sub_id
ON CONFLICT DO NOTHING
