//! Every statement the store runs, one file each in `sql/`, rendered once
//! per store with its schema name spliced in (a validated identifier, see
//! [`super::validate_schema`]). Each operation is one statement, so one
//! round trip and one implicit transaction, except the subscription patch;
//! enqueueing and recording attempts take whole batches (see
//! [`super::batch`]). sqlx prepares and caches each statement per
//! connection.
//!
//! A file starts with `--` comments saying what the statement does and what
//! its binds are. Its placeholders are upper case between double
//! underscores, which no SQL here contains otherwise (and no schema name,
//! all lower case, can), so they cannot collide with identifiers, strings,
//! JSON or array literals:
//!
//! - `__SCHEMA__`: the store's schema, quoted;
//! - `__LOG_CAP__`: the attempt log cap per (subscription, event name);
//! - `__LIMIT__`: only in `claim.sql`, the claim's limit (see
//!   [`Queries::claim`]);
//! - `__COMMIT_SETTING__`: only in `record_attempts.sql`, rendered twice
//!   (see [`Queries::record_attempts_async`]).
//!
//! Everything else is literal SQL, the numbers the Rust side shares too:
//! the `state` and `next` codes below (the tests pin them), the
//! subscription column order of [`super::rows`] and
//! [`QUEUE_STATS_COUNT_LIMIT`](crate::storage::QUEUE_STATS_COUNT_LIMIT).

use std::sync::Arc;

use sqlx::{AssertSqlSafe, SqlStr};

/// `state` values of a delivery row, written as literals in `sql/`
/// (`0 pending, 1 leased, 2 failed`).
pub(super) const PENDING: i16 = 0;
pub(super) const LEASED: i16 = 1;
pub(super) const FAILED: i16 = 2;

/// `next` values passed to [`Queries::record_attempts`], written as literals
/// in `sql/record_attempts.sql` (`0 complete, 1 retry, 2 fail, 3 fail and
/// disable`).
pub(super) const NEXT_COMPLETE: i16 = 0;
pub(super) const NEXT_RETRY: i16 = 1;
pub(super) const NEXT_FAIL: i16 = 2;
pub(super) const NEXT_FAIL_AND_DISABLE: i16 = 3;

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
    /// `record_attempts` committing without waiting for the WAL flush:
    /// `synchronous_commit = off` for its own transaction, set by the
    /// statement (see `PostgresStoreConfig::asynchronous_attempt_commit`).
    pub record_attempts_async: Arc<str>,
    pub seed_health: Arc<str>,
    pub lock_health: Arc<str>,
    pub write_health: Arc<str>,
    pub endpoint_health: Arc<str>,
    pub release: Arc<str>,
    pub failed_deliveries: Arc<str>,
    pub redeliver: Arc<str>,
    pub redeliver_failed: Arc<str>,
    pub enqueue_deliveries: Arc<str>,
    pub list_attempts: Arc<str>,
    pub latest_statuses: Arc<str>,
    pub prune_events: Arc<str>,
    pub queue_stats: Arc<str>,
    pub prune_history: Arc<str>,
}

/// Wraps a statement for sqlx. Sound because every statement is a file of
/// `sql/` with only a validated schema identifier and numbers spliced in.
pub(super) fn sql(statement: &Arc<str>) -> SqlStr {
    sqlx::SqlSafeStr::into_sql_str(AssertSqlSafe(Arc::clone(statement)))
}

/// A file of `sql/` for `schema` (already validated) and `log_cap`, without
/// its whole-line comments and blank lines. The schema goes in last, so
/// nothing it contains is taken for a placeholder.
fn render(template: &str, schema: &str, log_cap: usize) -> String {
    template
        .lines()
        .filter(|line| {
            let line = line.trim_start();
            !line.is_empty() && !line.starts_with("--")
        })
        .collect::<Vec<_>>()
        .join("\n")
        .replace("__LOG_CAP__", &log_cap.to_string())
        .replace("__SCHEMA__", &format!("\"{schema}\""))
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
        let build = |template: &str| -> Arc<str> { Arc::from(render(template, schema, log_cap)) };
        let claim = render(include_str!("sql/claim.sql"), schema, log_cap);
        let record = render(include_str!("sql/record_attempts.sql"), schema, log_cap);
        let record_with = |setting: &str| -> Arc<str> {
            Arc::from(record.replace("__COMMIT_SETTING__", setting))
        };
        let (head, tail) = claim
            .split_once("__LIMIT__")
            .expect("sql/claim.sql has a __LIMIT__");
        Self {
            insert_subscription: build(include_str!("sql/insert_subscription.sql")),
            get_subscription: build(include_str!("sql/get_subscription.sql")),
            lock_subscription: build(include_str!("sql/lock_subscription.sql")),
            list_subscriptions: build(include_str!("sql/list_subscriptions.sql")),
            write_subscription: build(include_str!("sql/write_subscription.sql")),
            delete_subscription: build(include_str!("sql/delete_subscription.sql")),
            enqueue_events: build(include_str!("sql/enqueue_events.sql")),
            claim_lanes: build(include_str!("sql/claim_lanes.sql")),
            claim: (head.to_owned(), tail.to_owned()),
            drop_orphans: build(include_str!("sql/drop_orphans.sql")),
            record_attempts: record_with("NULL"),
            record_attempts_async: record_with("set_config('synchronous_commit', 'off', true)"),
            seed_health: build(include_str!("sql/seed_health.sql")),
            lock_health: build(include_str!("sql/lock_health.sql")),
            write_health: build(include_str!("sql/write_health.sql")),
            endpoint_health: build(include_str!("sql/endpoint_health.sql")),
            release: build(include_str!("sql/release.sql")),
            failed_deliveries: build(include_str!("sql/failed_deliveries.sql")),
            redeliver: build(include_str!("sql/redeliver.sql")),
            redeliver_failed: build(include_str!("sql/redeliver_failed.sql")),
            enqueue_deliveries: build(include_str!("sql/enqueue_deliveries.sql")),
            list_attempts: build(include_str!("sql/list_attempts.sql")),
            latest_statuses: build(include_str!("sql/latest_statuses.sql")),
            prune_events: build(include_str!("sql/prune_events.sql")),
            queue_stats: build(include_str!("sql/queue_stats.sql")),
            prune_history: build(include_str!("sql/prune_history.sql")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::storage::QUEUE_STATS_COUNT_LIMIT;

    /// The columns of a subscription row, in the order [`super::super::rows`]
    /// reads them.
    const SUBSCRIPTION_COLUMNS: &str = "s.id, s.name, s.url, s.events, s.headers, s.secret, \
         s.enabled, s.created_at, s.created_by, s.updated_at, s.updated_by, s.filters, \
         s.previous_secret, s.previous_secret_expires_at";

    /// Every statement, named after its file (the claim for 7 rows).
    fn statements(q: &Queries) -> Vec<(&'static str, Arc<str>)> {
        vec![
            ("insert_subscription", Arc::clone(&q.insert_subscription)),
            ("get_subscription", Arc::clone(&q.get_subscription)),
            ("lock_subscription", Arc::clone(&q.lock_subscription)),
            ("list_subscriptions", Arc::clone(&q.list_subscriptions)),
            ("write_subscription", Arc::clone(&q.write_subscription)),
            ("delete_subscription", Arc::clone(&q.delete_subscription)),
            ("enqueue_events", Arc::clone(&q.enqueue_events)),
            ("claim_lanes", Arc::clone(&q.claim_lanes)),
            ("claim", q.claim(7)),
            ("drop_orphans", Arc::clone(&q.drop_orphans)),
            ("record_attempts", Arc::clone(&q.record_attempts)),
            ("record_attempts", Arc::clone(&q.record_attempts_async)),
            ("seed_health", Arc::clone(&q.seed_health)),
            ("lock_health", Arc::clone(&q.lock_health)),
            ("write_health", Arc::clone(&q.write_health)),
            ("endpoint_health", Arc::clone(&q.endpoint_health)),
            ("release", Arc::clone(&q.release)),
            ("failed_deliveries", Arc::clone(&q.failed_deliveries)),
            ("redeliver", Arc::clone(&q.redeliver)),
            ("redeliver_failed", Arc::clone(&q.redeliver_failed)),
            ("enqueue_deliveries", Arc::clone(&q.enqueue_deliveries)),
            ("list_attempts", Arc::clone(&q.list_attempts)),
            ("latest_statuses", Arc::clone(&q.latest_statuses)),
            ("prune_events", Arc::clone(&q.prune_events)),
            ("queue_stats", Arc::clone(&q.queue_stats)),
            ("prune_history", Arc::clone(&q.prune_history)),
        ]
    }

    /// `text` with every run of whitespace made one space.
    fn squeeze(text: &str) -> String {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn the_sql_files_use_the_state_and_next_codes_of_the_rust_side() {
        assert_eq!((PENDING, LEASED, FAILED), (0, 1, 2));
        assert_eq!(
            (NEXT_COMPLETE, NEXT_RETRY, NEXT_FAIL, NEXT_FAIL_AND_DISABLE),
            (0, 1, 2, 3)
        );
    }

    #[test]
    fn every_placeholder_is_rendered_and_no_comment_is_sent() {
        let q = Queries::new("wh_store", 25);
        for (name, statement) in statements(&q) {
            assert!(
                !statement.contains("__"),
                "{name} has a placeholder left: {statement}"
            );
            assert!(
                !statement.contains("--"),
                "{name} keeps a comment: {statement}"
            );
            assert!(
                statement.contains("\"wh_store\"."),
                "{name} is not in the schema: {statement}"
            );
        }
        assert!(q.list_attempts.ends_with("LIMIT 25"));
        assert!(q.record_attempts.contains("greatest(25 - k.added, 0)"));
        assert!(q.record_attempts.contains("SELECT NULL AS commit_setting"));
        assert!(!q.record_attempts.contains("set_config"));
        assert!(q
            .record_attempts_async
            .contains("SELECT set_config('synchronous_commit', 'off', true) AS commit_setting"));
        assert_eq!(
            q.record_attempts_async
                .replace("set_config('synchronous_commit', 'off', true)", "NULL"),
            *q.record_attempts
        );
        assert!(q.claim(7).contains("LIMIT 7) r ON r.id = d.id"));
        assert!(q.claim(300).contains("LIMIT 300) r ON r.id = d.id"));
    }

    #[test]
    fn every_file_is_a_statement() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/storage/postgres/sql");
        let files: BTreeSet<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        let named: BTreeSet<String> = statements(&Queries::new("s", 1))
            .into_iter()
            .map(|(name, _)| format!("{name}.sql"))
            .collect();
        assert_eq!(files, named);
    }

    #[test]
    fn the_sql_files_agree_with_the_rust_side_on_columns_and_limits() {
        let q = Queries::new("s", 1);
        for statement in [
            &q.get_subscription,
            &q.lock_subscription,
            &q.list_subscriptions,
            &q.write_subscription,
            &q.claim(1),
        ] {
            let columns = format!("{SUBSCRIPTION_COLUMNS} ");
            assert!(squeeze(statement).contains(&columns), "{statement}");
        }
        let count = format!("LIMIT {QUEUE_STATS_COUNT_LIMIT} ) due");
        assert!(
            squeeze(&q.queue_stats).contains(&count),
            "{}",
            q.queue_stats
        );
    }

    #[test]
    fn render_drops_comments_and_splices_the_quoted_schema_last() {
        let template = "-- what it does\n--\n-- $1 = id\nSELECT __LOG_CAP__\n\n  -- aside\n  FROM __SCHEMA__.t\n";
        assert_eq!(
            render(template, "a__LOG_CAP__", 3),
            "SELECT 3\n  FROM \"a__LOG_CAP__\".t"
        );
    }
}
