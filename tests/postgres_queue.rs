//! The PostgreSQL queue under several processes: each store here has its
//! own pool, as separate worker processes would. Needs `DATABASE_URL`.
#![cfg(feature = "postgres")]

mod postgres_support;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Duration;
use postgres_support::{at, detail, event, store_in, subscription, TestDb};
use sqlx::AssertSqlSafe;
use tokio::sync::Barrier;
use webhook_subscriptions::model::{DeliveryId, OrganizationId, SubscriptionId};
use webhook_subscriptions::storage::prelude::*;
use webhook_subscriptions::storage::{ClaimedDelivery, LeaseOutcome, NextStep};
use webhook_subscriptions::storage::{PostgresStore, PostgresStoreConfig};

const EVENT: &str = "ConversationCreated";

/// `events` events to `subscribers` subscriptions of one organization, due at `at(0)`.
async fn fill_queue(store: &PostgresStore, subscribers: usize, events: usize) -> OrganizationId {
    let org = OrganizationId::new_v4();
    for i in 0..subscribers {
        store
            .insert_subscription(org, &subscription(&format!("s{i}"), &[EVENT]))
            .await
            .unwrap_or_else(|e| panic!("insert_subscription failed: {e:?}"));
    }
    for _ in 0..events {
        let queued = store
            .enqueue_event(&event(org, EVENT, at(0)))
            .await
            .unwrap_or_else(|e| panic!("enqueue_event failed: {e:?}"));
        assert_eq!(queued, subscribers, "each event goes to every subscriber");
    }
    org
}

/// Claims in `workers` tasks on each of `stores` until nothing is left at
/// `now`; returns every claim.
async fn claim_everything(
    stores: &[Arc<PostgresStore>],
    workers: usize,
    now: chrono::DateTime<chrono::Utc>,
    bound: usize,
) -> Vec<ClaimedDelivery> {
    let barrier = Arc::new(Barrier::new(stores.len() * workers));
    let mut tasks = Vec::new();
    for store in stores {
        for _ in 0..workers {
            let store = Arc::clone(store);
            let barrier = Arc::clone(&barrier);
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let mut mine = Vec::new();
                for _ in 0..bound {
                    let batch = store
                        .claim_deliveries(now, Duration::hours(1), 20)
                        .await
                        .unwrap_or_else(|e| panic!("claim_deliveries failed: {e:?}"));
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch);
                }
                panic!("claims kept returning deliveries after all were claimed");
            }));
        }
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(
            task.await
                .unwrap_or_else(|e| panic!("claim task failed: {e}")),
        );
    }
    all
}

fn distinct(claims: &[ClaimedDelivery]) -> BTreeSet<DeliveryId> {
    claims.iter().map(|c| c.delivery.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn claimers_in_four_processes_get_each_delivery_once_while_leases_hold() {
    const TOTAL: usize = 20 * 150;
    let Some(db) = TestDb::connect("claimers_in_four_processes").await else {
        return;
    };
    let setup = db.store().await;
    fill_queue(&setup, 20, 150).await;
    let schema = setup.config().schema.clone();
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(Arc::new(store_in(&db.url, &schema).await));
    }

    let first = claim_everything(&stores, 4, at(1), TOTAL + 1).await;
    assert_eq!(first.len(), TOTAL, "every delivery must be claimed");
    assert_eq!(
        distinct(&first).len(),
        TOTAL,
        "no delivery may go to two claimers while its lease holds"
    );

    // Nobody recorded anything: once the leases are over, all come back once.
    let expired = at(1) + Duration::hours(1);
    let second = claim_everything(&stores, 4, expired, TOTAL + 1).await;
    assert_eq!(
        distinct(&second),
        distinct(&first),
        "expired leases must hand every delivery out again"
    );
    assert_eq!(second.len(), TOTAL, "and each of them once");

    // Every holder completes concurrently, each through its own process.
    let mut tasks = Vec::new();
    for (i, claimed) in second.into_iter().enumerate() {
        let store = Arc::clone(&stores[i % stores.len()]);
        tasks.push(tokio::spawn(async move {
            store
                .record_attempt(&claimed, &detail(at(2), 200, "OK"), NextStep::Complete)
                .await
                .unwrap_or_else(|e| panic!("record_attempt failed: {e:?}"))
        }));
    }
    for task in tasks {
        let outcome = task
            .await
            .unwrap_or_else(|e| panic!("record task failed: {e}"));
        assert_eq!(
            outcome,
            LeaseOutcome::Applied,
            "the current holder's Complete must apply"
        );
    }
    let left = setup
        .claim_deliveries(at(1_000_000), Duration::hours(1), 10)
        .await
        .unwrap_or_else(|e| panic!("claim_deliveries failed: {e:?}"));
    assert!(left.is_empty(), "completed deliveries must not come back");
    drop(stores);
    drop(setup);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn a_killed_worker_loses_its_delivery_to_another_after_the_lease() {
    let Some(db) = TestDb::connect("a_killed_worker_loses_its_delivery").await else {
        return;
    };
    let setup = db.store().await;
    let org = fill_queue(&setup, 1, 1).await;
    let schema = setup.config().schema.clone();

    // Worker A claims and dies: no record, no release, its pool is gone.
    let killed = store_in(&db.url, &schema).await;
    let mut lost = killed
        .claim_deliveries(at(0), Duration::seconds(30), 10)
        .await
        .unwrap_or_else(|e| panic!("claim_deliveries failed: {e:?}"));
    assert_eq!(lost.len(), 1, "worker A must claim the delivery");
    let lost = lost.remove(0);
    drop(killed);

    let survivor = store_in(&db.url, &schema).await;
    let early = survivor
        .claim_deliveries(at(29), Duration::seconds(30), 10)
        .await
        .unwrap_or_else(|e| panic!("claim_deliveries failed: {e:?}"));
    assert!(early.is_empty(), "the lease of the dead worker still holds");
    let taken = survivor
        .claim_deliveries(at(30), Duration::seconds(30), 10)
        .await
        .unwrap_or_else(|e| panic!("claim_deliveries failed: {e:?}"));
    assert_eq!(taken.len(), 1, "an expired lease must be claimable");
    let taken = &taken[0];
    assert_eq!(taken.delivery.id, lost.delivery.id, "the same delivery");
    assert_ne!(taken.lease.token, lost.lease.token, "under a new lease");
    assert_eq!(taken.delivery.attempts, 0, "a lost lease is not an attempt");

    let outcome = survivor
        .record_attempt(
            taken,
            &detail(at(31), 503, "Service Unavailable"),
            NextStep::Retry { at: at(100) },
        )
        .await
        .unwrap_or_else(|e| panic!("record_attempt failed: {e:?}"));
    assert_eq!(
        outcome,
        LeaseOutcome::Applied,
        "the new holder's Retry applies"
    );

    // The dead worker's outcome turns up late (say, from a stuck process).
    let zombie = store_in(&db.url, &schema).await;
    let outcome = zombie
        .record_attempt(&lost, &detail(at(40), 200, "OK"), NextStep::Complete)
        .await
        .unwrap_or_else(|e| panic!("record_attempt failed: {e:?}"));
    assert_eq!(
        outcome,
        LeaseOutcome::LeaseLost,
        "a stale lease must not change the queue"
    );
    let released = zombie
        .release(&lost)
        .await
        .unwrap_or_else(|e| panic!("release failed: {e:?}"));
    assert_eq!(released, LeaseOutcome::LeaseLost, "nor release it");
    let before = survivor
        .claim_deliveries(at(99), Duration::seconds(30), 10)
        .await
        .unwrap_or_else(|e| panic!("claim_deliveries failed: {e:?}"));
    assert!(before.is_empty(), "the new holder's Retry must stand");
    let retried = survivor
        .claim_deliveries(at(100), Duration::seconds(30), 10)
        .await
        .unwrap_or_else(|e| panic!("claim_deliveries failed: {e:?}"));
    assert_eq!(retried.len(), 1, "the retry comes due at its time");
    assert_eq!(
        retried[0].delivery.attempts, 1,
        "only the holder's attempt counts"
    );

    let logged = survivor
        .list_attempts(org, taken.delivery.subscription_id, EVENT)
        .await
        .unwrap_or_else(|e| panic!("list_attempts failed: {e:?}"));
    let texts: Vec<&str> = logged
        .iter()
        .map(|a| a.detail.response_text.as_str())
        .collect();
    assert_eq!(
        texts,
        ["OK", "Service Unavailable"],
        "both attempts are logged, newest first"
    );
    drop((setup, survivor, zombie));
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn concurrent_records_of_every_kind_each_apply() {
    const PER_KIND: usize = 40;
    let Some(db) = TestDb::connect("concurrent_records_of_every_kind_each_apply").await else {
        return;
    };
    let store = Arc::new(db.store().await);
    let org = OrganizationId::new_v4();
    let kinds = ["complete", "retry", "fail", "gone"];
    let mut subs = Vec::new();
    for kind in kinds {
        let sub = subscription(kind, &[EVENT]);
        store
            .insert_subscription(org, &sub)
            .await
            .unwrap_or_else(|e| panic!("insert_subscription failed: {e:?}"));
        subs.push(sub.id);
    }
    for _ in 0..PER_KIND {
        let queued = store
            .enqueue_event(&event(org, EVENT, at(0)))
            .await
            .unwrap_or_else(|e| panic!("enqueue_event failed: {e:?}"));
        assert_eq!(queued, kinds.len());
    }
    let claimed = store
        .claim_deliveries(at(0), Duration::hours(1), 10_000)
        .await
        .unwrap_or_else(|e| panic!("claim_deliveries failed: {e:?}"));
    assert_eq!(claimed.len(), PER_KIND * kinds.len());

    let next_for = |sub: SubscriptionId| match subs.iter().position(|s| *s == sub) {
        Some(0) => NextStep::Complete,
        Some(1) => NextStep::Retry { at: at(500) },
        Some(2) => NextStep::Fail,
        _ => NextStep::FailAndDisable,
    };
    // Every claim is recorded twice at once: only one of the two may apply.
    let mut tasks = Vec::new();
    for claim in &claimed {
        let next = next_for(claim.delivery.subscription_id);
        for copy in 0..2 {
            let store = Arc::clone(&store);
            let claim = claim.clone();
            tasks.push(tokio::spawn(async move {
                let outcome = store
                    .record_attempt(&claim, &detail(at(1), 500, &format!("copy {copy}")), next)
                    .await
                    .unwrap_or_else(|e| panic!("record_attempt failed: {e:?}"));
                (claim.delivery.id, outcome)
            }));
        }
    }
    let mut applied = Vec::new();
    for task in tasks {
        let (id, outcome) = task
            .await
            .unwrap_or_else(|e| panic!("record task failed: {e}"));
        if outcome == LeaseOutcome::Applied {
            applied.push(id);
        }
    }
    let once: BTreeSet<DeliveryId> = applied.iter().copied().collect();
    assert_eq!(
        (applied.len(), once.len()),
        (claimed.len(), claimed.len()),
        "exactly one of two records of the same claim must apply"
    );

    for (i, sub) in subs.iter().enumerate() {
        let logged = store
            .list_attempts(org, *sub, EVENT)
            .await
            .unwrap_or_else(|e| panic!("list_attempts failed: {e:?}"));
        assert_eq!(
            logged.len(),
            2 * PER_KIND,
            "every record is logged ({})",
            kinds[i]
        );
        let failed = store
            .failed_deliveries(org, *sub, 10_000)
            .await
            .unwrap_or_else(|e| panic!("failed_deliveries failed: {e:?}"));
        let expected_failed = if i >= 2 { PER_KIND } else { 0 };
        assert_eq!(
            failed.len(),
            expected_failed,
            "failed deliveries of {}",
            kinds[i]
        );
        assert!(
            failed.iter().all(|d| d.attempts == 1),
            "one attempt counted"
        );
        let enabled = store
            .get_subscription(org, *sub)
            .await
            .unwrap_or_else(|e| panic!("get_subscription failed: {e:?}"))
            .map(|s| s.enabled);
        assert_eq!(
            enabled,
            Some(i != 3),
            "only FailAndDisable disables ({})",
            kinds[i]
        );
    }
    let retried = store
        .claim_deliveries(at(500), Duration::hours(1), 10_000)
        .await
        .unwrap_or_else(|e| panic!("claim_deliveries failed: {e:?}"));
    assert_eq!(
        retried.len(),
        PER_KIND,
        "only the retried deliveries come back"
    );
    assert!(retried
        .iter()
        .all(|c| c.delivery.subscription_id == subs[1] && c.delivery.attempts == 1));
    drop(store);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn one_event_id_published_concurrently_from_two_processes_is_enqueued_once() {
    const SUBSCRIBERS: usize = 3;
    let Some(db) = TestDb::connect("one_event_id_published_concurrently").await else {
        return;
    };
    let setup = db.store().await;
    let org = fill_queue(&setup, SUBSCRIBERS, 0).await;
    let schema = setup.config().schema.clone();
    let stores = [
        Arc::new(store_in(&db.url, &schema).await),
        Arc::new(store_in(&db.url, &schema).await),
    ];
    let events: Vec<_> = (0..20).map(|_| event(org, EVENT, at(0))).collect();
    let barrier = Arc::new(Barrier::new(2 * 4));
    let mut tasks = Vec::new();
    for store in &stores {
        for _ in 0..4 {
            let (store, events, barrier) =
                (Arc::clone(store), events.clone(), Arc::clone(&barrier));
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let mut queued = 0;
                for e in &events {
                    queued += store
                        .enqueue_event(e)
                        .await
                        .unwrap_or_else(|e| panic!("enqueue_event failed: {e:?}"));
                }
                queued
            }));
        }
    }
    let mut queued = 0;
    for task in tasks {
        queued += task
            .await
            .unwrap_or_else(|e| panic!("publish task failed: {e}"));
    }
    assert_eq!(
        queued,
        events.len() * SUBSCRIBERS,
        "each event id must be enqueued once, whoever publishes it"
    );
    let claimed = setup
        .claim_deliveries(at(0), Duration::hours(1), 10_000)
        .await
        .unwrap_or_else(|e| panic!("claim_deliveries failed: {e:?}"));
    assert_eq!(claimed.len(), events.len() * SUBSCRIBERS, "and queued once");
    drop((setup, stores));
    db.cleanup().await;
}

#[tokio::test]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn a_delivery_whose_subscription_vanished_is_dropped_not_claimed() {
    let Some(db) = TestDb::connect("a_delivery_whose_subscription_vanished").await else {
        return;
    };
    let store = db.store().await;
    let schema = store.config().schema.clone();
    let org = fill_queue(&store, 2, 1).await;
    // What a fan-out racing with delete_subscription leaves behind: a
    // delivery committed after the delete had removed the others.
    let vanished: uuid::Uuid = sqlx::query_scalar(AssertSqlSafe(format!(
        "DELETE FROM \"{schema}\".subscriptions WHERE org = $1
         AND id = (SELECT id FROM \"{schema}\".subscriptions WHERE org = $1 LIMIT 1)
         RETURNING id"
    )))
    .bind(org.0)
    .fetch_one(&db.pool)
    .await
    .unwrap_or_else(|e| panic!("deleting behind the store's back failed: {e}"));

    let claimed = store
        .claim_deliveries(at(0), Duration::seconds(30), 10)
        .await
        .unwrap_or_else(|e| panic!("claim_deliveries failed: {e:?}"));
    assert_eq!(
        claimed.len(),
        1,
        "only the live subscription's delivery is handed out"
    );
    assert_ne!(claimed[0].delivery.subscription_id.0, vanished);
    let left: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{schema}\".deliveries WHERE sub_id = $1"
    )))
    .bind(vanished)
    .fetch_one(&db.pool)
    .await
    .unwrap_or_else(|e| panic!("counting deliveries failed: {e}"));
    assert_eq!(left, 0, "the orphaned delivery is dropped");
    drop(store);
    db.cleanup().await;
}

#[tokio::test]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn stored_logs_stay_near_the_cap() {
    const CAP: usize = 10;
    const ATTEMPTS: usize = 600;
    // Trimming is lazy (each attempt trims with probability 1/16): the
    // bound below fails only if 250 attempts in a row skip it (p < 1e-6).
    const SLACK: i64 = 250;
    let Some(db) = TestDb::connect("stored_logs_stay_near_the_cap").await else {
        return;
    };
    let store = db
        .store_with(PostgresStoreConfig::new().with_log_cap(CAP))
        .await;
    let schema = store.config().schema.clone();
    let org = fill_queue(&store, 1, 1).await;
    let mut sub = None;
    for n in 0..ATTEMPTS {
        let now = at(n as i64);
        let mut claimed = store
            .claim_deliveries(now, Duration::seconds(30), 1)
            .await
            .unwrap_or_else(|e| panic!("claim_deliveries failed: {e:?}"));
        assert_eq!(claimed.len(), 1, "the retried delivery is due again");
        let claim = claimed.remove(0);
        sub = Some(claim.delivery.subscription_id);
        let next = NextStep::Retry {
            at: at(n as i64 + 1),
        };
        let outcome = store
            .record_attempt(&claim, &detail(now, 500, &format!("attempt {n}")), next)
            .await
            .unwrap_or_else(|e| panic!("record_attempt failed: {e:?}"));
        assert_eq!(outcome, LeaseOutcome::Applied);
    }
    let sub = sub.unwrap_or_else(|| unreachable!("at least one attempt was made"));
    let shown = store
        .list_attempts(org, sub, EVENT)
        .await
        .unwrap_or_else(|e| panic!("list_attempts failed: {e:?}"));
    let texts: Vec<String> = shown
        .iter()
        .map(|a| a.detail.response_text.clone())
        .collect();
    let expected: Vec<String> = (ATTEMPTS - CAP..ATTEMPTS)
        .rev()
        .map(|n| format!("attempt {n}"))
        .collect();
    assert_eq!(
        texts, expected,
        "reads show exactly the newest `log_cap` attempts"
    );
    let stored: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{schema}\".attempt_logs"
    )))
    .fetch_one(&db.pool)
    .await
    .unwrap_or_else(|e| panic!("counting logs failed: {e}"));
    assert!(
        stored <= CAP as i64 + SLACK,
        "old attempts must be deleted: {stored} rows kept for a cap of {CAP}"
    );
    drop(store);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn a_circuit_opened_through_one_process_pauses_every_process() {
    use webhook_subscriptions::delivery::CircuitBreaker;
    use webhook_subscriptions::storage::HealthChange;

    let Some(db) =
        TestDb::connect("a_circuit_opened_through_one_process_pauses_every_process").await
    else {
        return;
    };
    let setup = db.store().await;
    let schema = setup.config().schema.clone();
    let (a, b) = (
        store_in(&db.url, &schema).await,
        store_in(&db.url, &schema).await,
    );
    let org = OrganizationId::new_v4();
    let sub = subscription("failing", &["ConversationCreated"]);
    a.insert_subscription(org, &sub).await.expect("insert");
    for _ in 0..5 {
        a.enqueue_event(&event(org, "ConversationCreated", at(0)))
            .await
            .expect("enqueue");
    }
    let claimed = a
        .claim_deliveries(at(1), Duration::seconds(30), 3)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 3);

    // Three failures at once, recorded through both processes.
    let breaker = CircuitBreaker::new(
        3,
        std::time::Duration::from_secs(60),
        std::time::Duration::from_secs(600),
    )
    .expect("breaker");
    let failed = detail(at(1), 500, "down");
    let retry = NextStep::Retry { at: at(1_000) };
    let (one, two, three) = tokio::join!(
        a.record_attempt_with_breaker(&claimed[0], &failed, retry, Some(&breaker)),
        b.record_attempt_with_breaker(&claimed[1], &failed, retry, Some(&breaker)),
        a.record_attempt_with_breaker(&claimed[2], &failed, retry, Some(&breaker)),
    );
    let changes: Vec<_> = [one, two, three]
        .into_iter()
        .map(|r| r.expect("record").change)
        .collect();
    let opened = changes
        .iter()
        .filter(|c| {
            matches!(
                c,
                Some(HealthChange::CircuitOpened {
                    failure_streak: 3,
                    ..
                })
            )
        })
        .count();
    assert_eq!(opened, 1, "exactly the third failure opens it: {changes:?}");
    let health = b
        .endpoint_health(org, sub.id)
        .await
        .expect("health")
        .expect("a failing endpoint");
    assert_eq!(
        (health.failure_streak, health.paused_until),
        (3, Some(at(61))),
        "both processes' failures are counted once each"
    );

    // Two due deliveries wait, whoever claims.
    for store in [&a, &b] {
        let during = store
            .claim_deliveries(at(60), Duration::seconds(30), 10)
            .await
            .expect("claim");
        assert!(during.is_empty(), "paused for every process");
    }
    let probe = b
        .claim_deliveries(at(61), Duration::seconds(30), 10)
        .await
        .expect("claim");
    assert_eq!(probe.len(), 1, "one probe once the cool-down is over");
    let other = a
        .claim_deliveries(at(61), Duration::seconds(30), 10)
        .await
        .expect("claim");
    assert!(
        other.is_empty(),
        "the probe is the only one in flight, across processes"
    );
    drop((a, b, setup));
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn asynchronous_attempt_commit_records_apply_and_the_session_setting_stays() {
    let Some(db) =
        TestDb::connect("asynchronous_attempt_commit_records_apply_and_the_session_setting_stays")
            .await
    else {
        return;
    };
    // One connection, so the check after the record runs on the connection that recorded.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.url)
        .await
        .unwrap_or_else(|e| panic!("connect failed: {e}"));
    let show = || async {
        sqlx::query_scalar::<_, String>("SHOW synchronous_commit")
            .fetch_one(&pool)
            .await
            .unwrap_or_else(|e| panic!("SHOW failed: {e}"))
    };
    let before = show().await;
    let config = PostgresStoreConfig::new()
        .with_schema(db.schema())
        .with_asynchronous_attempt_commit(true);
    let store = PostgresStore::from_pool_with_config(pool.clone(), config)
        .unwrap_or_else(|e| panic!("store config refused: {e:?}"));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("migrate failed: {e:?}"));
    let org = fill_queue(&store, 1, 2).await;
    let claims = store
        .claim_deliveries(at(0), Duration::seconds(30), 2)
        .await
        .unwrap_or_else(|e| panic!("claim_deliveries failed: {e:?}"));
    assert_eq!(claims.len(), 2);
    let outcomes = [
        (NextStep::Complete, 200),
        (NextStep::Retry { at: at(60) }, 500),
    ];
    for (claim, (next, code)) in claims.iter().zip(outcomes) {
        let outcome = store
            .record_attempt(claim, &detail(at(1), code, "answered"), next)
            .await
            .unwrap_or_else(|e| panic!("record_attempt failed: {e:?}"));
        assert_eq!(outcome, LeaseOutcome::Applied);
    }
    let attempts = store
        .list_attempts(org, claims[0].delivery.subscription_id, EVENT)
        .await
        .unwrap_or_else(|e| panic!("list_attempts failed: {e:?}"));
    assert_eq!(attempts.len(), 2, "both attempts are logged");
    let retried = store
        .claim_deliveries(at(60), Duration::seconds(30), 2)
        .await
        .unwrap_or_else(|e| panic!("claim_deliveries failed: {e:?}"));
    assert_eq!(
        retried.len(),
        1,
        "the completed delivery is gone, the retry is due"
    );
    assert_eq!(
        show().await,
        before,
        "the setting lasts for the record's own transaction only"
    );
    drop(store);
    pool.close().await;
    db.cleanup().await;
}
