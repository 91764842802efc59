//! The storage conformance suite over `PostgresStore`, each check in a
//! fresh schema: once through `run_all`, and once per check so a failure
//! names its check. Needs `DATABASE_URL` (see `postgres_support`).
#![cfg(all(feature = "postgres", feature = "testing"))]

mod postgres_support;

use std::sync::Arc;

use postgres_support::TestDb;
use webhook_subscriptions::testing;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn postgres_store_passes_the_whole_suite() {
    let Some(db) = TestDb::connect("postgres_store_passes_the_whole_suite").await else {
        return;
    };
    testing::run_all(|| db.store()).await;
    db.cleanup().await;
}

macro_rules! checks {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            #[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
            async fn $name() {
                let Some(db) = TestDb::connect(stringify!($name)).await else {
                    return;
                };
                testing::$name(&db.store().await).await;
                db.cleanup().await;
            }
        )*
    };
}

macro_rules! shared_checks {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            #[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
            async fn $name() {
                let Some(db) = TestDb::connect(stringify!($name)).await else {
                    return;
                };
                testing::$name(Arc::new(db.store().await)).await;
                db.cleanup().await;
            }
        )*
    };
}

checks!(
    insert_and_get,
    list_oldest_first,
    update_applies_change,
    delete_removes_subscription,
    organizations_are_isolated,
    logs_and_failures_are_isolated,
    enqueue_stays_in_organization,
    enqueue_targets_enabled_subscribers,
    duplicate_event_id_enqueues_nothing,
    claim_respects_due_time_and_limit,
    lease_blocks_other_claimers_until_expiry,
    stale_lease_cannot_overwrite,
    retry_reschedules,
    complete_removes_delivery,
    fail_keeps_delivery_for_redelivery,
    fail_and_disable_disables_subscription,
    release_makes_delivery_claimable_at_once,
    delete_cancels_deliveries_and_logs,
    attempt_log_newest_first_and_capped,
    latest_statuses_per_event,
    payload_bytes_are_preserved,
    claim_caps_in_flight_per_subscription,
    claim_takes_turns_across_organizations,
    prune_drops_old_failures_and_logs,
    rotation_keeps_the_previous_secret,
    redeliver_failed_picks_one_or_since,
    enqueue_for_subscription_reaches_one_subscription,
);

checks!(queue_stats_report_due_deliveries);

shared_checks!(
    concurrent_updates_all_survive,
    concurrent_claimers_share_nothing,
    concurrent_claimers_respect_the_cap
);
