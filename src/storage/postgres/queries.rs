//! Every statement the store runs, built once per store with its schema
//! name spliced in (a validated identifier, see [`super::validate_schema`]).
//! Each operation is one statement, so one round trip and one implicit
//! transaction, except the subscription patch. sqlx prepares and caches
//! each statement per connection.

use std::sync::Arc;

use sqlx::{AssertSqlSafe, SqlStr};

/// `state` values of a delivery row.
pub(super) const PENDING: i16 = 0;
pub(super) const LEASED: i16 = 1;
pub(super) const FAILED: i16 = 2;

/// `next` values passed to [`Queries::record_attempt`].
pub(super) const NEXT_COMPLETE: i16 = 0;
pub(super) const NEXT_RETRY: i16 = 1;
pub(super) const NEXT_FAIL: i16 = 2;
pub(super) const NEXT_FAIL_AND_DISABLE: i16 = 3;

/// The columns of a subscription row, in the order [`super::rows`] reads them.
const SUBSCRIPTION_COLUMNS: &str = "s.id, s.name, s.url, s.events, s.headers, s.secret, \
     s.enabled, s.created_at, s.created_by, s.updated_at, s.updated_by, s.filters";

#[derive(Debug)]
pub(super) struct Queries {
    pub insert_subscription: Arc<str>,
    pub get_subscription: Arc<str>,
    pub lock_subscription: Arc<str>,
    pub list_subscriptions: Arc<str>,
    pub write_subscription: Arc<str>,
    pub delete_subscription: Arc<str>,
    pub enqueue_event: Arc<str>,
    pub claim: Arc<str>,
    pub drop_orphans: Arc<str>,
    pub record_attempt: Arc<str>,
    pub release: Arc<str>,
    pub failed_deliveries: Arc<str>,
    pub redeliver: Arc<str>,
    pub list_attempts: Arc<str>,
    pub latest_statuses: Arc<str>,
    pub prune_events: Arc<str>,
}

/// Wraps a statement for sqlx. Sound because every statement is built from
/// the constants in this file and a validated schema identifier.
pub(super) fn sql(statement: &Arc<str>) -> SqlStr {
    sqlx::SqlSafeStr::into_sql_str(AssertSqlSafe(Arc::clone(statement)))
}

impl Queries {
    /// The statements for `schema` (already validated).
    pub(super) fn new(schema: &str) -> Self {
        let s = format!("\"{schema}\"");
        let build = |text: String| -> Arc<str> { Arc::from(text) };
        Self {
            insert_subscription: build(format!(
                "WITH inserted AS (
                    INSERT INTO {s}.subscriptions (org, id, name, url, events, headers, secret,
                        enabled, created_at, created_by, updated_at, updated_by, filters)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                    RETURNING org, id
                )
                INSERT INTO {s}.subscription_events (org, event_name, sub_id)
                SELECT inserted.org, names.name, inserted.id
                FROM inserted, unnest($5::text[]) AS names(name)
                ON CONFLICT DO NOTHING"
            )),
            get_subscription: build(format!(
                "SELECT {SUBSCRIPTION_COLUMNS} FROM {s}.subscriptions s
                 WHERE s.org = $1 AND s.id = $2"
            )),
            lock_subscription: build(format!(
                "SELECT {SUBSCRIPTION_COLUMNS} FROM {s}.subscriptions s
                 WHERE s.org = $1 AND s.id = $2 FOR UPDATE"
            )),
            list_subscriptions: build(format!(
                "SELECT {SUBSCRIPTION_COLUMNS} FROM {s}.subscriptions s
                 WHERE s.org = $1 ORDER BY s.created_at, s.seq"
            )),
            // Rewrites the mutable fields and brings the fan-out rows in
            // line with the new event set (both CTEs see the old rows);
            // returns the subscription as stored.
            write_subscription: build(format!(
                "WITH updated AS (
                    UPDATE {s}.subscriptions s
                    SET name = $3, url = $4, events = $5, headers = $6, enabled = $7,
                        updated_at = $8, updated_by = $9
                    WHERE s.org = $1 AND s.id = $2
                    RETURNING {SUBSCRIPTION_COLUMNS}
                ), unsubscribed AS (
                    DELETE FROM {s}.subscription_events
                    WHERE org = $1 AND sub_id = $2 AND NOT (event_name = ANY($5::text[]))
                ), subscribed AS (
                    INSERT INTO {s}.subscription_events (org, event_name, sub_id)
                    SELECT $1, names.name, $2 FROM unnest($5::text[]) AS names(name)
                    ON CONFLICT DO NOTHING
                )
                SELECT * FROM updated"
            )),
            delete_subscription: build(format!(
                "WITH deleted AS (
                    DELETE FROM {s}.subscriptions WHERE org = $1 AND id = $2 RETURNING 1
                ), fan_out AS (
                    DELETE FROM {s}.subscription_events WHERE org = $1 AND sub_id = $2
                ), queued AS (
                    DELETE FROM {s}.deliveries WHERE org = $1 AND sub_id = $2
                ), logged AS (
                    DELETE FROM {s}.attempt_logs WHERE org = $1 AND sub_id = $2
                )
                SELECT EXISTS (SELECT 1 FROM deleted)"
            )),
            // De-duplication and fan-out in one statement: the deliveries
            // are inserted only if the event row was. The payload is kept
            // only when someone will receive it.
            enqueue_event: build(format!(
                "WITH targets AS (
                    SELECT se.sub_id FROM {s}.subscription_events se
                    JOIN {s}.subscriptions sub ON sub.org = se.org AND sub.id = se.sub_id
                    WHERE se.org = $1 AND se.event_name = $3 AND sub.enabled
                ), event AS (
                    INSERT INTO {s}.events (org, event_id, event_name, payload, published_at)
                    SELECT $1, $2, $3, CASE WHEN EXISTS (SELECT 1 FROM targets) THEN $4::bytea END, $5
                    ON CONFLICT DO NOTHING
                    RETURNING 1
                ), queued AS (
                    INSERT INTO {s}.deliveries (id, org, sub_id, event_id, due_at, state, available_at)
                    SELECT gen_random_uuid(), $1, targets.sub_id, $2, $5, {PENDING}, $5
                    FROM targets, event
                    RETURNING 1
                )
                SELECT count(*) FROM queued"
            )),
            // Leases the earliest claimable rows; rows locked by another
            // claimer are skipped, not waited for. A delivery whose
            // subscription or event is gone comes back with NULLs and is
            // dropped by `drop_orphans`.
            claim: build(format!(
                "WITH picked AS (
                    SELECT id FROM {s}.deliveries
                    WHERE state < {FAILED} AND available_at <= $1
                    ORDER BY available_at
                    LIMIT $3
                    FOR UPDATE SKIP LOCKED
                ), leased AS (
                    UPDATE {s}.deliveries d
                    SET state = {LEASED}, available_at = $2, lease_token = gen_random_uuid()
                    FROM picked WHERE d.id = picked.id
                    RETURNING d.id, d.org, d.sub_id, d.event_id, d.attempts, d.due_at, d.lease_token
                )
                SELECT l.id AS delivery_id, l.org, l.sub_id, l.event_id, l.attempts, l.due_at, l.lease_token,
                    e.event_name, e.payload, {SUBSCRIPTION_COLUMNS}
                FROM leased l
                LEFT JOIN {s}.events e ON e.org = l.org AND e.event_id = l.event_id
                LEFT JOIN {s}.subscriptions s ON s.org = l.org AND s.id = l.sub_id"
            )),
            drop_orphans: build(format!(
                "DELETE FROM {s}.deliveries WHERE id = ANY($1::uuid[]) AND lease_token = ANY($2::uuid[])"
            )),
            // One statement: log (only while the subscription exists), trim
            // the log to the cap (the new row is not visible to the trim, so
            // it keeps the newest cap - 1 older rows), and apply the next
            // step only if the lease token still matches. A delivery whose
            // subscription is gone is removed and reported as lost.
            record_attempt: build(format!(
                "WITH live AS (
                    SELECT 1 FROM {s}.subscriptions WHERE org = $3 AND id = $4
                ), logged AS (
                    INSERT INTO {s}.attempt_logs (org, sub_id, event_name, delivery_id, event_id,
                        delivered_at, success, response_code, response_text)
                    SELECT $3, $4, $5, $1, $6, $7, $8, $9, $10 FROM live
                ), trimmed AS (
                    DELETE FROM {s}.attempt_logs
                    WHERE org = $3 AND sub_id = $4 AND event_name = $5 AND seq <= (
                        SELECT seq FROM {s}.attempt_logs
                        WHERE org = $3 AND sub_id = $4 AND event_name = $5
                        ORDER BY seq DESC OFFSET $13 - 1 LIMIT 1
                    )
                ), removed AS (
                    DELETE FROM {s}.deliveries
                    WHERE id = $1 AND lease_token = $2
                      AND ($11 = {NEXT_COMPLETE} OR NOT EXISTS (SELECT 1 FROM live))
                    RETURNING 1
                ), moved AS (
                    UPDATE {s}.deliveries
                    SET attempts = attempts + 1,
                        state = CASE WHEN $11 = {NEXT_RETRY} THEN {PENDING} ELSE {FAILED} END,
                        due_at = CASE WHEN $11 = {NEXT_RETRY} THEN $12 ELSE due_at END,
                        available_at = CASE WHEN $11 = {NEXT_RETRY} THEN $12 ELSE due_at END,
                        lease_token = NULL
                    WHERE id = $1 AND lease_token = $2
                      AND $11 <> {NEXT_COMPLETE} AND EXISTS (SELECT 1 FROM live)
                    RETURNING 1
                ), disabled AS (
                    UPDATE {s}.subscriptions SET enabled = false
                    WHERE org = $3 AND id = $4
                      AND $11 = {NEXT_FAIL_AND_DISABLE} AND EXISTS (SELECT 1 FROM moved)
                )
                SELECT EXISTS (SELECT 1 FROM live)
                    AND (EXISTS (SELECT 1 FROM removed) OR EXISTS (SELECT 1 FROM moved))"
            )),
            // `due_at` is no later than the claim, so it is claimable at once.
            release: build(format!(
                "UPDATE {s}.deliveries
                 SET state = {PENDING}, available_at = due_at, lease_token = NULL
                 WHERE id = $1 AND lease_token = $2"
            )),
            failed_deliveries: build(format!(
                "SELECT d.id, d.org, d.sub_id, d.event_id, d.attempts, d.due_at, d.state,
                    e.event_name, e.payload
                 FROM {s}.deliveries d
                 JOIN {s}.events e ON e.org = d.org AND e.event_id = d.event_id
                 WHERE d.org = $1 AND d.sub_id = $2 AND d.state = {FAILED}
                 ORDER BY d.due_at DESC, d.id DESC
                 LIMIT $3"
            )),
            redeliver: build(format!(
                "UPDATE {s}.deliveries
                 SET state = {PENDING}, attempts = 0, due_at = $3, available_at = $3
                 WHERE org = $1 AND id = $2 AND state = {FAILED}"
            )),
            list_attempts: build(format!(
                "SELECT l.delivery_id, l.event_id, l.delivered_at, l.success, l.response_code,
                    l.response_text, e.payload
                 FROM {s}.attempt_logs l
                 LEFT JOIN {s}.events e ON e.org = l.org AND e.event_id = l.event_id
                 WHERE l.org = $1 AND l.sub_id = $2 AND l.event_name = $3
                 ORDER BY l.seq DESC
                 LIMIT $4"
            )),
            // A loose index scan: walks the distinct event names of the
            // subscription's logs, then takes the newest row of each.
            latest_statuses: build(format!(
                "WITH RECURSIVE names(event_name) AS (
                    (SELECT event_name FROM {s}.attempt_logs
                     WHERE org = $1 AND sub_id = $2 ORDER BY event_name LIMIT 1)
                    UNION ALL
                    SELECT (SELECT l.event_name FROM {s}.attempt_logs l
                            WHERE l.org = $1 AND l.sub_id = $2 AND l.event_name > names.event_name
                            ORDER BY l.event_name LIMIT 1)
                    FROM names WHERE names.event_name IS NOT NULL
                )
                SELECT names.event_name, newest.delivered_at, newest.success,
                    newest.response_code, newest.response_text
                FROM names
                CROSS JOIN LATERAL (
                    SELECT delivered_at, success, response_code, response_text
                    FROM {s}.attempt_logs l
                    WHERE l.org = $1 AND l.sub_id = $2 AND l.event_name = names.event_name
                    ORDER BY l.seq DESC LIMIT 1
                ) newest
                WHERE names.event_name IS NOT NULL"
            )),
            // Forgets old event ids that no delivery or log still needs.
            prune_events: build(format!(
                "DELETE FROM {s}.events e
                 WHERE e.published_at <= $1
                   AND NOT EXISTS (SELECT 1 FROM {s}.deliveries d
                                   WHERE d.org = e.org AND d.event_id = e.event_id)
                   AND NOT EXISTS (SELECT 1 FROM {s}.attempt_logs l
                                   WHERE l.org = e.org AND l.event_id = e.event_id)"
            )),
        }
    }
}
