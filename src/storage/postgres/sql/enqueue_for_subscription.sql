-- One delivery of a new event to one subscription of its organization; no
-- row when either is missing or the event id is taken. A delete racing with
-- it leaves an orphan that claims drop. Returns the delivery id.
--
-- $1 = organization, $2 = event id, $3 = event name, $4 = payload,
-- $5 = published at, $6 = subscription id.
--
-- state: 0 pending, 1 leased, 2 failed (`queries::PENDING` and the rest).
WITH target AS (
    SELECT id FROM __SCHEMA__.subscriptions WHERE org = $1 AND id = $6
), stored AS (
    INSERT INTO __SCHEMA__.events (org, event_id, event_name, payload, published_at)
    SELECT $1, $2, $3, $4, $5 FROM target
    ON CONFLICT DO NOTHING
    RETURNING org, event_id
)
INSERT INTO __SCHEMA__.deliveries (id, org, sub_id, event_id, due_at, state, available_at)
SELECT gen_random_uuid(), e.org, $6, e.event_id, $5, 0, $5 FROM stored e
RETURNING id
