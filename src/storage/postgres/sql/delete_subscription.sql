-- Deletes a subscription with everything kept for it: fan-out rows, queued
-- deliveries, attempt logs and failure streak. Returns whether it existed.
--
-- $1 = organization, $2 = subscription id.
WITH deleted AS (
    DELETE FROM __SCHEMA__.subscriptions WHERE org = $1 AND id = $2 RETURNING 1
), fan_out AS (
    DELETE FROM __SCHEMA__.subscription_events WHERE org = $1 AND sub_id = $2
), queued AS (
    DELETE FROM __SCHEMA__.deliveries WHERE org = $1 AND sub_id = $2
), logged AS (
    DELETE FROM __SCHEMA__.attempt_logs WHERE org = $1 AND sub_id = $2
), health AS (
    DELETE FROM __SCHEMA__.endpoint_health WHERE org = $1 AND sub_id = $2
)
SELECT EXISTS (SELECT 1 FROM deleted)
