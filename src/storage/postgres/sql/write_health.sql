-- Writes the streaks the circuit breaker computed; a disabled
-- subscription's streak is dropped with it.
--
-- One array element per endpoint: $1 = organizations, $2 = subscriptions,
-- $3 = failure streaks, $4 = failing since, $5 = paused until (or NULL),
-- $6 = times opened, $7 = whether to disable the subscription.
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::integer[],
        $4::timestamptz[], $5::timestamptz[], $6::integer[], $7::boolean[])
        AS i(org, sub_id, streak, since, until, opened, disable)
), kept AS (
    UPDATE __SCHEMA__.endpoint_health h
    SET failure_streak = i.streak, failing_since = i.since,
        paused_until = i.until, times_opened = i.opened
    FROM input i
    WHERE NOT i.disable AND h.org = i.org AND h.sub_id = i.sub_id
), dropped AS (
    DELETE FROM __SCHEMA__.endpoint_health h USING input i
    WHERE i.disable AND h.org = i.org AND h.sub_id = i.sub_id
)
UPDATE __SCHEMA__.subscriptions s SET enabled = false
FROM input i
WHERE i.disable AND s.org = i.org AND s.id = i.sub_id
