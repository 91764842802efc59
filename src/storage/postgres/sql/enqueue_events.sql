-- De-duplication and fan-out of a batch of events (distinct keys) in one
-- statement. `targets` is the fan-out rule of `delivery::wants` (enabled, and
-- subscribed to the event name) in SQL; the conformance suite checks the two
-- agree. An event's deliveries are inserted only if its event row was.
-- The payload is kept only when someone will receive it. One row per input:
-- (ord, queued).
--
-- One array element per event: $1 = organizations, $2 = event ids,
-- $3 = event names, $4 = payloads, $5 = published at.
--
-- state: 0 pending, 1 leased, 2 failed (`queries::PENDING` and the rest).
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bytea[],
        $5::timestamptz[])
        WITH ORDINALITY AS i(org, event_id, event_name, payload, published_at, ord)
), targets AS (
    SELECT i.ord, se.sub_id FROM input i
    JOIN __SCHEMA__.subscription_events se
        ON se.org = i.org AND se.event_name = i.event_name
    JOIN __SCHEMA__.subscriptions sub ON sub.org = se.org AND sub.id = se.sub_id
    WHERE sub.enabled
), stored AS (
    INSERT INTO __SCHEMA__.events (org, event_id, event_name, payload, published_at)
    SELECT i.org, i.event_id, i.event_name,
        CASE WHEN EXISTS (SELECT 1 FROM targets t WHERE t.ord = i.ord)
            THEN i.payload END,
        i.published_at
    FROM input i ORDER BY i.ord
    ON CONFLICT DO NOTHING
    RETURNING org, event_id
), queued AS (
    INSERT INTO __SCHEMA__.deliveries (id, org, sub_id, event_id, due_at, state, available_at)
    SELECT gen_random_uuid(), i.org, t.sub_id, i.event_id, i.published_at,
        0, i.published_at
    FROM stored e
    JOIN input i ON i.org = e.org AND i.event_id = e.event_id
    JOIN targets t ON t.ord = i.ord
    RETURNING org, event_id
)
SELECT i.ord, count(q.event_id) AS queued
FROM input i
LEFT JOIN queued q ON q.org = i.org AND q.event_id = i.event_id
GROUP BY i.ord
