-- A subscription's failure streak, if it is failing (and still exists).
--
-- $1 = organization, $2 = subscription id.
SELECT h.failure_streak, h.failing_since, h.paused_until, h.times_opened
FROM __SCHEMA__.endpoint_health h
JOIN __SCHEMA__.subscriptions s ON s.org = h.org AND s.id = h.sub_id
WHERE h.org = $1 AND h.sub_id = $2
