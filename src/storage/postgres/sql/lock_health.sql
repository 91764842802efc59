-- Locks the streaks a batch extends, in key order.
--
-- One array element per endpoint: $1 = organizations, $2 = subscriptions.
SELECT h.org, h.sub_id, h.failure_streak, h.failing_since, h.paused_until,
    h.times_opened
FROM __SCHEMA__.endpoint_health h
JOIN unnest($1::uuid[], $2::uuid[]) AS i(org, sub_id)
   ON h.org = i.org AND h.sub_id = i.sub_id
ORDER BY h.org, h.sub_id
FOR UPDATE OF h
