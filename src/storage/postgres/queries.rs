//! Every statement the store runs, built once per store with its schema
//! name spliced in (a validated identifier, see [`super::validate_schema`]).
//! Each operation is one statement, so one round trip and one implicit
//! transaction, except the subscription patch; enqueueing and recording
//! attempts take whole batches (see [`super::batch`]). sqlx prepares and
//! caches each statement per connection.

use std::sync::Arc;

use sqlx::{AssertSqlSafe, SqlStr};

use crate::storage::QUEUE_STATS_COUNT_LIMIT;

/// `state` values of a delivery row.
pub(super) const PENDING: i16 = 0;
pub(super) const LEASED: i16 = 1;
pub(super) const FAILED: i16 = 2;

/// `next` values passed to [`Queries::record_attempts`].
pub(super) const NEXT_COMPLETE: i16 = 0;
pub(super) const NEXT_RETRY: i16 = 1;
pub(super) const NEXT_FAIL: i16 = 2;
pub(super) const NEXT_FAIL_AND_DISABLE: i16 = 3;

/// Seeds the advisory-lock keys of claim lanes, apart from other users'
/// advisory locks on the same database.
const LANE_LOCK_SEED: i64 = 0x0077_685f_6c61_6e65;

/// Each attempt trims its log with probability 1 / TRIM_EVERY.
const TRIM_EVERY: u32 = 16;

/// The columns of a subscription row, in the order [`super::rows`] reads them.
const SUBSCRIPTION_COLUMNS: &str = "s.id, s.name, s.url, s.events, s.headers, s.secret, \
     s.enabled, s.created_at, s.created_by, s.updated_at, s.updated_by, s.filters, \
     s.previous_secret, s.previous_secret_expires_at";

#[derive(Debug)]
pub(super) struct Queries {
    pub insert_subscription: Arc<str>,
    pub get_subscription: Arc<str>,
    pub lock_subscription: Arc<str>,
    pub list_subscriptions: Arc<str>,
    pub write_subscription: Arc<str>,
    pub delete_subscription: Arc<str>,
    pub enqueue_events: Arc<str>,
    pub claim_lanes: Arc<str>,
    /// The claim statement up to its `LIMIT`, and the rest; see [`Queries::claim`].
    claim: (String, String),
    pub drop_orphans: Arc<str>,
    pub record_attempts: Arc<str>,
    pub seed_health: Arc<str>,
    pub lock_health: Arc<str>,
    pub write_health: Arc<str>,
    pub endpoint_health: Arc<str>,
    pub release: Arc<str>,
    pub failed_deliveries: Arc<str>,
    pub redeliver: Arc<str>,
    pub redeliver_failed: Arc<str>,
    pub enqueue_for_subscription: Arc<str>,
    pub list_attempts: Arc<str>,
    pub latest_statuses: Arc<str>,
    pub prune_events: Arc<str>,
    pub queue_stats: Arc<str>,
    pub prune_history: Arc<str>,
}

/// Wraps a statement for sqlx. Sound because every statement is built from
/// the constants in this file and a validated schema identifier.
pub(super) fn sql(statement: &Arc<str>) -> SqlStr {
    sqlx::SqlSafeStr::into_sql_str(AssertSqlSafe(Arc::clone(statement)))
}

impl Queries {
    /// The claim statement for at most `limit` rows (binds: now, lease
    /// expiry, per-subscription cap, the lanes' organizations, their
    /// subscriptions, their organizations' leases in flight, their caps).
    /// The limit is written into the text rather than bound: with
    /// a bound limit PostgreSQL's generic plan guesses a large batch (a hash
    /// join over the whole queue), so it re-plans the statement on every
    /// claim instead, which cost about half as much as running it. With a
    /// literal limit each prepared variant soon settles on its generic plan.
    /// A worker asks for at most its batch size, so a connection prepares
    /// at most that many variants.
    pub(super) fn claim(&self, limit: usize) -> Arc<str> {
        let (head, tail) = &self.claim;
        Arc::from(format!("{head}{limit}{tail}"))
    }

    /// The statements for `schema` (already validated) and `log_cap`.
    pub(super) fn new(schema: &str, log_cap: usize) -> Self {
        let s = format!("\"{schema}\"");
        let build = |text: String| -> Arc<str> { Arc::from(text) };
        Self {
            insert_subscription: build(format!(
                "WITH inserted AS (
                    INSERT INTO {s}.subscriptions (org, id, name, url, events, headers, secret,
                        enabled, created_at, created_by, updated_at, updated_by, filters,
                        previous_secret, previous_secret_expires_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
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
            // line with the new event set (the CTEs see the old rows); a new
            // URL or enabling it again closes its circuit. Returns the
            // subscription as stored.
            write_subscription: build(format!(
                "WITH updated AS (
                    UPDATE {s}.subscriptions s
                    SET name = $3, url = $4, events = $5, headers = $6, enabled = $7,
                        updated_at = $8, updated_by = $9, secret = $10, previous_secret = $11,
                        previous_secret_expires_at = $12
                    WHERE s.org = $1 AND s.id = $2
                    RETURNING {SUBSCRIPTION_COLUMNS}
                ), unsubscribed AS (
                    DELETE FROM {s}.subscription_events
                    WHERE org = $1 AND sub_id = $2 AND NOT (event_name = ANY($5::text[]))
                ), subscribed AS (
                    INSERT INTO {s}.subscription_events (org, event_name, sub_id)
                    SELECT $1, names.name, $2 FROM unnest($5::text[]) AS names(name)
                    ON CONFLICT DO NOTHING
                ), healed AS (
                    DELETE FROM {s}.endpoint_health h
                    USING {s}.subscriptions old
                    WHERE old.org = $1 AND old.id = $2 AND h.org = $1 AND h.sub_id = $2
                      AND (old.url <> $4 OR (NOT old.enabled AND $7))
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
                ), health AS (
                    DELETE FROM {s}.endpoint_health WHERE org = $1 AND sub_id = $2
                )
                SELECT EXISTS (SELECT 1 FROM deleted)"
            )),
            // De-duplication and fan-out of a batch of events (distinct
            // keys) in one statement: an event's deliveries are inserted
            // only if its event row was. The payload is kept only when
            // someone will receive it. One row per input: (ord, queued).
            enqueue_events: build(format!(
                "WITH input AS (
                    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bytea[],
                        $5::timestamptz[])
                        WITH ORDINALITY AS i(org, event_id, event_name, payload, published_at, ord)
                ), targets AS (
                    SELECT i.ord, se.sub_id FROM input i
                    JOIN {s}.subscription_events se
                        ON se.org = i.org AND se.event_name = i.event_name
                    JOIN {s}.subscriptions sub ON sub.org = se.org AND sub.id = se.sub_id
                    WHERE sub.enabled
                ), stored AS (
                    INSERT INTO {s}.events (org, event_id, event_name, payload, published_at)
                    SELECT i.org, i.event_id, i.event_name,
                        CASE WHEN EXISTS (SELECT 1 FROM targets t WHERE t.ord = i.ord)
                            THEN i.payload END,
                        i.published_at
                    FROM input i ORDER BY i.ord
                    ON CONFLICT DO NOTHING
                    RETURNING org, event_id
                ), queued AS (
                    INSERT INTO {s}.deliveries (id, org, sub_id, event_id, due_at, state, available_at)
                    SELECT gen_random_uuid(), i.org, t.sub_id, i.event_id, i.published_at,
                        {PENDING}, i.published_at
                    FROM stored e
                    JOIN input i ON i.org = e.org AND i.event_id = e.event_id
                    JOIN targets t ON t.ord = i.ord
                    RETURNING org, event_id
                )
                SELECT i.ord, count(q.event_id) AS queued
                FROM input i
                LEFT JOIN queued q ON q.org = i.org AND q.event_id = i.event_id
                GROUP BY i.ord"
            )),
            // Picks the lanes (subscriptions) a claim of at most $3 rows
            // serves, and takes a transaction-scoped advisory lock on each,
            // skipping lanes another claimer holds. Walks the distinct lanes
            // with queued rows (a loose index scan), never the backlog; keeps
            // those with a due row and fewer than $2 live leases; orders them
            // by their turn within their organization (leases in flight count
            // as turns taken), then by how long they have waited. A lane
            // whose circuit is open is skipped; a half-open one has a cap of
            // one (its probe). The leases
            // are counted again under the locks by the claim itself: this
            // statement's snapshot may predate another claimer's commit.
            // Binds: now, cap, limit.
            claim_lanes: build(format!(
                "WITH RECURSIVE lanes AS (
                    (SELECT org, sub_id FROM {s}.deliveries
                     WHERE state < {FAILED} ORDER BY org, sub_id LIMIT 1)
                    UNION ALL
                    SELECT next.org, next.sub_id FROM lanes
                    CROSS JOIN LATERAL (
                        SELECT d.org, d.sub_id FROM {s}.deliveries d
                        WHERE d.state < {FAILED} AND (d.org, d.sub_id) > (lanes.org, lanes.sub_id)
                        ORDER BY d.org, d.sub_id LIMIT 1
                    ) next
                ), counted AS (
                    SELECT l.org, l.sub_id, head.available_at, h.paused_until,
                        CASE WHEN h.paused_until IS NULL THEN $2 ELSE least($2, 1) END AS cap,
                        (SELECT count(*) FROM (
                            SELECT 1 FROM {s}.deliveries d
                            WHERE d.org = l.org AND d.sub_id = l.sub_id
                              AND d.state = {LEASED} AND d.available_at > $1
                            LIMIT $2) live) AS live
                    FROM lanes l
                    LEFT JOIN {s}.endpoint_health h ON h.org = l.org AND h.sub_id = l.sub_id
                    LEFT JOIN LATERAL (
                        SELECT d.available_at FROM {s}.deliveries d
                        WHERE d.org = l.org AND d.sub_id = l.sub_id
                          AND d.state < {FAILED} AND d.available_at <= $1
                        ORDER BY d.available_at LIMIT 1
                    ) head ON true
                ), open AS (
                    SELECT org, sub_id, available_at, paused_until, cap,
                        (sum(live) OVER (PARTITION BY org))::bigint AS org_live,
                        live
                    FROM counted
                ), ranked AS (
                    SELECT org, sub_id, available_at, org_live, cap,
                        org_live + row_number() OVER (
                            PARTITION BY org ORDER BY live, available_at, sub_id) AS turn
                    FROM open
                    WHERE available_at IS NOT NULL AND live < cap
                      AND (paused_until IS NULL OR paused_until <= $1)
                ), chosen AS (
                    SELECT org, sub_id, org_live, cap FROM ranked
                    ORDER BY turn, available_at LIMIT $3
                )
                SELECT org, sub_id, org_live, cap FROM chosen
                WHERE pg_try_advisory_xact_lock(hashtextextended(sub_id::text, {LANE_LOCK_SEED}))"
            )),
            // Leases up to the limit from the locked lanes, round-robin:
            // by turn within the organization, then within the subscription
            // (leases in flight count as turns taken), then by due time.
            // Rows locked by another claimer are skipped, not waited for. A
            // delivery whose subscription or event is gone comes back with
            // NULLs and is dropped by `drop_orphans`.
            claim: (
                format!(
                    "WITH lanes AS (
                    SELECT * FROM unnest($4::uuid[], $5::uuid[], $6::bigint[], $7::bigint[])
                        AS l(org, sub_id, org_live, cap)
                ), candidates AS (
                    SELECT c.id, l.org, l.org_live, c.available_at,
                        c.live + row_number() OVER (
                            PARTITION BY l.org, l.sub_id ORDER BY c.available_at) AS lane_turn
                    FROM lanes l
                    CROSS JOIN LATERAL (
                        SELECT (SELECT count(*) FROM (
                            SELECT 1 FROM {s}.deliveries x
                            WHERE x.org = l.org AND x.sub_id = l.sub_id
                              AND x.state = {LEASED} AND x.available_at > $1
                            LIMIT least($3, l.cap)) live) AS live
                    ) flight
                    CROSS JOIN LATERAL (
                        SELECT d.id, d.available_at, flight.live FROM {s}.deliveries d
                        WHERE d.org = l.org AND d.sub_id = l.sub_id
                          AND d.state < {FAILED} AND d.available_at <= $1
                        ORDER BY d.available_at
                        LIMIT greatest(least($3, l.cap) - flight.live, 0)
                    ) c
                ), ranked AS (
                    SELECT id, lane_turn, available_at,
                        org_live + row_number() OVER (
                            PARTITION BY org ORDER BY lane_turn, available_at) AS turn
                    FROM candidates
                ), picked AS (
                    SELECT d.id FROM {s}.deliveries d
                    JOIN (SELECT id FROM ranked ORDER BY turn, lane_turn, available_at
                          LIMIT "
                ),
                format!(
                    ") r ON r.id = d.id
                    WHERE d.state < {FAILED} AND d.available_at <= $1
                    FOR UPDATE OF d SKIP LOCKED
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
                ),
            ),
            drop_orphans: build(format!(
                "DELETE FROM {s}.deliveries WHERE id = ANY($1::uuid[]) AND lease_token = ANY($2::uuid[])"
            )),
            // Records a batch of attempts (distinct deliveries) in one
            // statement. Attempts are logged only while their subscription
            // exists. The next step applies only where the lease token still
            // matches; a delivery whose subscription is gone is removed. The
            // log is trimmed lazily: a key is trimmed back to the cap with
            // probability `added / TRIM_EVERY`, so trimming costs little per
            // attempt and a log holds about TRIM_EVERY rows beyond the cap at
            // most; reads never show more than the cap. Rows another writer
            // is trimming are skipped, not waited for. A tracked success
            // (one counted by the circuit breaker) deletes its endpoint's
            // failure streak; failures are counted by `lock_health` and
            // `write_health` in the same transaction. One row per input:
            // (ord, applied, live, closed): whether the next step applied,
            // whether the subscription exists, and whether this success
            // closed an open circuit.
            record_attempts: build(format!(
                "WITH input AS (
                    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[],
                        $5::text[], $6::uuid[], $7::timestamptz[], $8::boolean[], $9::integer[],
                        $10::bytea[], $11::smallint[], $12::timestamptz[], $13::boolean[])
                        WITH ORDINALITY AS i(delivery_id, token, org, sub_id, event_name, event_id,
                            delivered_at, success, response_code, response_text, next, retry_at,
                            tracked, ord)
                ), live AS (
                    SELECT i.* FROM input i
                    WHERE EXISTS (SELECT 1 FROM {s}.subscriptions s
                                  WHERE s.org = i.org AND s.id = i.sub_id)
                ), logged AS (
                    INSERT INTO {s}.attempt_logs (org, sub_id, event_name, delivery_id, event_id,
                        delivered_at, success, response_code, response_text)
                    SELECT org, sub_id, event_name, delivery_id, event_id, delivered_at, success,
                        response_code, response_text
                    FROM live ORDER BY ord
                ), trim_keys AS (
                    SELECT org, sub_id, event_name, count(*) AS added FROM live
                    GROUP BY org, sub_id, event_name
                    HAVING random() * {TRIM_EVERY} < count(*)
                ), stale_logs AS (
                    SELECT l.org, l.sub_id, l.event_name, l.seq
                    FROM trim_keys k
                    JOIN {s}.attempt_logs l
                        ON l.org = k.org AND l.sub_id = k.sub_id AND l.event_name = k.event_name
                    WHERE l.seq <= (
                        SELECT x.seq FROM {s}.attempt_logs x
                        WHERE x.org = k.org AND x.sub_id = k.sub_id AND x.event_name = k.event_name
                        ORDER BY x.seq DESC OFFSET greatest({log_cap} - k.added, 0) LIMIT 1
                    )
                    FOR UPDATE OF l SKIP LOCKED
                ), trimmed AS (
                    DELETE FROM {s}.attempt_logs l USING stale_logs o
                    WHERE l.org = o.org AND l.sub_id = o.sub_id AND l.event_name = o.event_name
                      AND l.seq = o.seq
                ), removed AS (
                    DELETE FROM {s}.deliveries d USING input i
                    WHERE d.id = i.delivery_id AND d.lease_token = i.token
                      AND (i.next = {NEXT_COMPLETE}
                           OR NOT EXISTS (SELECT 1 FROM live l WHERE l.ord = i.ord))
                    RETURNING i.ord
                ), moved AS (
                    UPDATE {s}.deliveries d
                    SET attempts = d.attempts + 1,
                        state = CASE WHEN l.next = {NEXT_RETRY} THEN {PENDING} ELSE {FAILED} END,
                        due_at = CASE WHEN l.next = {NEXT_RETRY} THEN l.retry_at ELSE d.due_at END,
                        available_at =
                            CASE WHEN l.next = {NEXT_RETRY} THEN l.retry_at ELSE d.due_at END,
                        lease_token = NULL
                    FROM live l
                    WHERE d.id = l.delivery_id AND d.lease_token = l.token
                      AND l.next <> {NEXT_COMPLETE}
                    RETURNING l.ord, l.next, l.org, l.sub_id
                ), disabled AS (
                    UPDATE {s}.subscriptions s SET enabled = false
                    FROM moved m
                    WHERE m.next = {NEXT_FAIL_AND_DISABLE} AND s.org = m.org AND s.id = m.sub_id
                ), healed AS (
                    DELETE FROM {s}.endpoint_health h
                    USING (SELECT DISTINCT org, sub_id FROM live WHERE success AND tracked) w
                    WHERE h.org = w.org AND h.sub_id = w.sub_id
                    RETURNING h.org, h.sub_id, h.paused_until IS NOT NULL AS was_open
                )
                SELECT i.ord,
                    EXISTS (SELECT 1 FROM live l WHERE l.ord = i.ord)
                    AND (EXISTS (SELECT 1 FROM removed r WHERE r.ord = i.ord)
                         OR EXISTS (SELECT 1 FROM moved m WHERE m.ord = i.ord)) AS applied,
                    EXISTS (SELECT 1 FROM live l WHERE l.ord = i.ord) AS live,
                    i.success AND i.tracked AND EXISTS (
                        SELECT 1 FROM healed x
                        WHERE x.was_open AND x.org = i.org AND x.sub_id = i.sub_id) AS closed
                FROM input i"
            )),
            // The failure streaks a batch extends: ensures each (org, sub)
            // still subscribed has a row (a new streak starts at 0, since the
            // batch's first failure), in key order.
            seed_health: build(format!(
                "INSERT INTO {s}.endpoint_health (org, sub_id, failure_streak, failing_since)
                 SELECT i.org, i.sub_id, 0, i.since
                 FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[]) AS i(org, sub_id, since)
                 WHERE EXISTS (SELECT 1 FROM {s}.subscriptions s
                               WHERE s.org = i.org AND s.id = i.sub_id)
                 ORDER BY i.org, i.sub_id
                 ON CONFLICT DO NOTHING"
            )),
            // Locks the streaks a batch extends, in key order.
            lock_health: build(format!(
                "SELECT h.org, h.sub_id, h.failure_streak, h.failing_since, h.paused_until,
                    h.times_opened
                 FROM {s}.endpoint_health h
                 JOIN unnest($1::uuid[], $2::uuid[]) AS i(org, sub_id)
                    ON h.org = i.org AND h.sub_id = i.sub_id
                 ORDER BY h.org, h.sub_id
                 FOR UPDATE OF h"
            )),
            // Writes the streaks the circuit breaker computed; a disabled
            // subscription's streak is dropped with it.
            write_health: build(format!(
                "WITH input AS (
                    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::integer[],
                        $4::timestamptz[], $5::timestamptz[], $6::integer[], $7::boolean[])
                        AS i(org, sub_id, streak, since, until, opened, disable)
                ), kept AS (
                    UPDATE {s}.endpoint_health h
                    SET failure_streak = i.streak, failing_since = i.since,
                        paused_until = i.until, times_opened = i.opened
                    FROM input i
                    WHERE NOT i.disable AND h.org = i.org AND h.sub_id = i.sub_id
                ), dropped AS (
                    DELETE FROM {s}.endpoint_health h USING input i
                    WHERE i.disable AND h.org = i.org AND h.sub_id = i.sub_id
                )
                UPDATE {s}.subscriptions s SET enabled = false
                FROM input i
                WHERE i.disable AND s.org = i.org AND s.id = i.sub_id"
            )),
            endpoint_health: build(format!(
                "SELECT h.failure_streak, h.failing_since, h.paused_until, h.times_opened
                 FROM {s}.endpoint_health h
                 JOIN {s}.subscriptions s ON s.org = h.org AND s.id = h.sub_id
                 WHERE h.org = $1 AND h.sub_id = $2"
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
            // Binds: org, subscription, one delivery id or NULL, since or
            // NULL, now, limit. Rows another redelivery holds are skipped.
            redeliver_failed: build(format!(
                "WITH picked AS (
                    SELECT id FROM {s}.deliveries
                    WHERE org = $1 AND sub_id = $2 AND state = {FAILED}
                      AND ($3::uuid IS NULL OR id = $3)
                      AND ($4::timestamptz IS NULL OR due_at >= $4)
                    ORDER BY due_at DESC, id DESC
                    LIMIT $6
                    FOR UPDATE SKIP LOCKED
                ), requeued AS (
                    UPDATE {s}.deliveries d
                    SET state = {PENDING}, attempts = 0, due_at = $5, available_at = $5
                    FROM picked WHERE d.id = picked.id
                    RETURNING 1
                )
                SELECT count(*) FROM requeued"
            )),
            // One delivery of a new event to one subscription of its
            // organization (binds: org, event id, name, payload, published
            // at, subscription); no row when either is missing or the event
            // id is taken. A delete racing with it leaves an orphan that
            // claims drop.
            enqueue_for_subscription: build(format!(
                "WITH target AS (
                    SELECT id FROM {s}.subscriptions WHERE org = $1 AND id = $6
                ), stored AS (
                    INSERT INTO {s}.events (org, event_id, event_name, payload, published_at)
                    SELECT $1, $2, $3, $4, $5 FROM target
                    ON CONFLICT DO NOTHING
                    RETURNING org, event_id
                )
                INSERT INTO {s}.deliveries (id, org, sub_id, event_id, due_at, state, available_at)
                SELECT gen_random_uuid(), e.org, $6, e.event_id, $5, {PENDING}, $5 FROM stored e
                RETURNING id"
            )),
            list_attempts: build(format!(
                "SELECT l.delivery_id, l.event_id, l.delivered_at, l.success, l.response_code,
                    l.response_text, e.payload
                 FROM {s}.attempt_logs l
                 LEFT JOIN {s}.events e ON e.org = l.org AND e.event_id = l.event_id
                 WHERE l.org = $1 AND l.sub_id = $2 AND l.event_name = $3
                 ORDER BY l.seq DESC
                 LIMIT {log_cap}"
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
            // Retention: failed deliveries and attempt logs older than $1.
            // A maintenance job's statement: it scans the failed rows and the
            // logs (no index on log times, to keep attempts cheap).
            prune_history: build(format!(
                "WITH failed AS (
                    DELETE FROM {s}.deliveries WHERE state = {FAILED} AND due_at < $1 RETURNING 1
                ), logs AS (
                    DELETE FROM {s}.attempt_logs WHERE delivered_at < $1 RETURNING 1
                ), orphans AS (
                    DELETE FROM {s}.endpoint_health h
                    WHERE NOT EXISTS (SELECT 1 FROM {s}.subscriptions s
                                      WHERE s.org = h.org AND s.id = h.sub_id)
                )
                SELECT (SELECT count(*) FROM failed) + (SELECT count(*) FROM logs)"
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
            // Both halves walk the claim index, skipping the rows of paused
            // endpoints (a key lookup each): the count stops at the limit,
            // and the oldest is the first row not paused.
            queue_stats: build(format!(
                "SELECT
                    (SELECT count(*) FROM (
                        SELECT 1 FROM {s}.deliveries d
                        WHERE d.state < {FAILED} AND d.available_at <= $1
                          AND NOT EXISTS (SELECT 1 FROM {s}.endpoint_health h
                                          WHERE h.org = d.org AND h.sub_id = d.sub_id
                                            AND h.paused_until > $1)
                        LIMIT {QUEUE_STATS_COUNT_LIMIT}
                     ) due) AS due,
                    (SELECT d.available_at FROM {s}.deliveries d
                     WHERE d.state < {FAILED} AND d.available_at <= $1
                       AND NOT EXISTS (SELECT 1 FROM {s}.endpoint_health h
                                       WHERE h.org = d.org AND h.sub_id = d.sub_id
                                         AND h.paused_until > $1)
                     ORDER BY d.available_at LIMIT 1) AS oldest_due_at"
            )),
        }
    }
}
