-- Forgets old event ids that no delivery or log still needs.
--
-- $1 = the cut-off time (events published then or earlier go).
DELETE FROM __SCHEMA__.events e
WHERE e.published_at <= $1
  AND NOT EXISTS (SELECT 1 FROM __SCHEMA__.deliveries d
                  WHERE d.org = e.org AND d.event_id = e.event_id)
  AND NOT EXISTS (SELECT 1 FROM __SCHEMA__.attempt_logs l
                  WHERE l.org = e.org AND l.event_id = e.event_id)
