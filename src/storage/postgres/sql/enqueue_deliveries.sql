-- A fan-out chosen by the caller: the event row (its id is then taken for
-- the de-duplication window; its payload is kept only if a target exists),
-- then one delivery per target that is a subscription of the event's
-- organization. Nothing when the event id is taken. A delete racing with it
-- leaves an orphan that claims drop. Returns the delivery ids.
--
-- $1 = organization, $2 = event id, $3 = event name, $4 = payload,
-- $5 = published at, $6 = subscription ids.
--
-- state: 0 pending, 1 leased, 2 failed (`queries::PENDING` and the rest).
WITH targets AS (
    SELECT id FROM __SCHEMA__.subscriptions WHERE org = $1 AND id = ANY($6::uuid[])
), stored AS (
    INSERT INTO __SCHEMA__.events (org, event_id, event_name, payload, published_at)
    SELECT $1, $2, $3, CASE WHEN EXISTS (SELECT 1 FROM targets) THEN $4::bytea END, $5
    ON CONFLICT DO NOTHING
    RETURNING org, event_id
)
INSERT INTO __SCHEMA__.deliveries (id, org, sub_id, event_id, due_at, state, available_at)
SELECT gen_random_uuid(), e.org, t.id, e.event_id, $5, 0, $5
FROM stored e CROSS JOIN targets t
RETURNING id
