-- The attempt log of one (subscription, event name), newest first, up to
-- the cap (the log may hold a few more rows until it is trimmed).
--
-- $1 = organization, $2 = subscription id, $3 = event name.
-- __LOG_CAP__ is the log cap per (subscription, event name).
SELECT l.delivery_id, l.event_id, l.delivered_at, l.success, l.response_code,
    l.response_text, e.payload
FROM __SCHEMA__.attempt_logs l
LEFT JOIN __SCHEMA__.events e ON e.org = l.org AND e.event_id = l.event_id
WHERE l.org = $1 AND l.sub_id = $2 AND l.event_name = $3
ORDER BY l.seq DESC
LIMIT __LOG_CAP__
