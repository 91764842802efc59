-- The newest attempt of each event name of a subscription. A loose index
-- scan: walks the distinct event names of the subscription's logs, then
-- takes the newest row of each.
--
-- $1 = organization, $2 = subscription id.
WITH RECURSIVE names(event_name) AS (
    (SELECT event_name FROM __SCHEMA__.attempt_logs
     WHERE org = $1 AND sub_id = $2 ORDER BY event_name LIMIT 1)
    UNION ALL
    SELECT (SELECT l.event_name FROM __SCHEMA__.attempt_logs l
            WHERE l.org = $1 AND l.sub_id = $2 AND l.event_name > names.event_name
            ORDER BY l.event_name LIMIT 1)
    FROM names WHERE names.event_name IS NOT NULL
)
SELECT names.event_name, newest.delivered_at, newest.success,
    newest.response_code, newest.response_text
FROM names
CROSS JOIN LATERAL (
    SELECT delivered_at, success, response_code, response_text
    FROM __SCHEMA__.attempt_logs l
    WHERE l.org = $1 AND l.sub_id = $2 AND l.event_name = names.event_name
    ORDER BY l.seq DESC LIMIT 1
) newest
WHERE names.event_name IS NOT NULL
