//! The storage conformance suite: every [`Storage`] backend must pass it.
//!
//! Like `object_store`'s `integration` module, each check is a public
//! `async fn` that takes a store, exercises one behaviour documented on
//! [`Storage`], and panics with a message naming the broken rule. A backend's
//! own tests call [`run_all`] (or single checks) with fresh stores:
//!
//! ```no_run
//! # async fn demo() {
//! use webhook_subscriptions::storage::MemoryStore;
//!
//! webhook_subscriptions::testing::run_all(|| async { MemoryStore::new() }).await;
//! # }
//! ```
//!
//! Rules every check relies on:
//!
//! - each check expects a **fresh, empty** store with the default log cap
//!   ([`DEFAULT_LOG_CAP`](crate::storage::DEFAULT_LOG_CAP)): claims see every
//!   queued delivery of the store, not just the check's own;
//! - times are explicit, whole milliseconds from [`base_time`]
//!   (2024-01-01T00:00:00Z); nothing sleeps;
//! - a lease is held while `now < expires_at`: at `expires_at` the delivery is
//!   claimable again; a delivery is due when `due_at <= now`;
//! - the checks taking an `Arc<dyn Storage>` spawn tasks with `tokio::spawn`
//!   on the caller's runtime; run them on a multi-thread runtime to race for real.
//!
//! The checks, in the order [`run_all`] runs them:
//!
//! | check | behaviour |
//! |---|---|
//! | [`insert_and_get`] | a stored subscription reads back equal; unknown ids are `None` |
//! | [`list_oldest_first`] | lists by `created_at`, ties in insertion order, per organization |
//! | [`update_applies_change`] | every field of a change lands; absent ones stay; missing ids give `None` |
//! | [`delete_removes_subscription`] | delete reports existence once and removes the subscription |
//! | [`concurrent_updates_all_survive`] | concurrent changes of different fields all survive |
//! | [`organizations_are_isolated`] | another organization's ids behave as missing and change nothing |
//! | [`logs_and_failures_are_isolated`] | the same for failed deliveries, redelivery, logs and statuses |
//! | [`enqueue_stays_in_organization`] | an event reaches only its own organization's subscriptions |
//! | [`enqueue_targets_enabled_subscribers`] | one delivery per enabled, subscribed subscription, due at `published_at` |
//! | [`duplicate_event_id_enqueues_nothing`] | an `event_id` is enqueued once per organization |
//! | [`claim_respects_due_time_and_limit`] | claims take only due deliveries, at most `limit` |
//! | [`lease_blocks_other_claimers_until_expiry`] | a held lease hides the delivery; an expired one hands it out with a new token |
//! | [`stale_lease_cannot_overwrite`] | an outdated claim is logged but cannot change the queue |
//! | [`concurrent_claimers_share_nothing`] | many concurrent claimers get every delivery exactly once |
//! | [`retry_reschedules`] | `Retry` makes the delivery due at `at` with one more attempt |
//! | [`complete_removes_delivery`] | `Complete` removes the delivery |
//! | [`fail_keeps_delivery_for_redelivery`] | `Fail` keeps it as failed; `redeliver` queues it afresh |
//! | [`fail_and_disable_disables_subscription`] | `FailAndDisable` also disables the subscription |
//! | [`release_makes_delivery_claimable_at_once`] | a released delivery is claimable at once, without an attempt |
//! | [`delete_cancels_deliveries_and_logs`] | deleting a subscription cancels its deliveries and drops its logs |
//! | [`attempt_log_newest_first_and_capped`] | logs are newest first and keep the newest 100 |
//! | [`latest_statuses_per_event`] | the latest attempt per attempted event |
//! | [`payload_bytes_are_preserved`] | claims and logs carry the enqueued bytes exactly |

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::storage::Storage;

mod isolation;
mod logs;
mod queue;
mod subscriptions;

pub use isolation::{
    enqueue_stays_in_organization, logs_and_failures_are_isolated, organizations_are_isolated,
};
pub use logs::{
    attempt_log_newest_first_and_capped, latest_statuses_per_event, payload_bytes_are_preserved,
};
pub use queue::{
    claim_respects_due_time_and_limit, complete_removes_delivery,
    concurrent_claimers_share_nothing, delete_cancels_deliveries_and_logs,
    duplicate_event_id_enqueues_nothing, enqueue_targets_enabled_subscribers,
    fail_and_disable_disables_subscription, fail_keeps_delivery_for_redelivery,
    lease_blocks_other_claimers_until_expiry, release_makes_delivery_claimable_at_once,
    retry_reschedules, stale_lease_cannot_overwrite,
};
pub use subscriptions::{
    concurrent_updates_all_survive, delete_removes_subscription, insert_and_get, list_oldest_first,
    update_applies_change,
};

/// The instant every check counts from: 2024-01-01T00:00:00Z.
pub fn base_time() -> DateTime<Utc> {
    DateTime::from_timestamp(1_704_067_200, 0).unwrap_or(DateTime::UNIX_EPOCH)
}

/// Runs every check of the suite, each on a fresh store from `make_store`.
///
/// Panics at the first violation.
pub async fn run_all<F, Fut, S>(mut make_store: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
    S: Storage + 'static,
{
    macro_rules! check {
        ($($name:ident),* $(,)?) => {
            $( $name(&make_store().await).await; )*
        };
    }
    macro_rules! check_shared {
        ($($name:ident),* $(,)?) => {
            $( $name(Arc::new(make_store().await)).await; )*
        };
    }
    check!(
        insert_and_get,
        list_oldest_first,
        update_applies_change,
        delete_removes_subscription
    );
    check_shared!(concurrent_updates_all_survive);
    check!(
        organizations_are_isolated,
        logs_and_failures_are_isolated,
        enqueue_stays_in_organization,
        enqueue_targets_enabled_subscribers,
        duplicate_event_id_enqueues_nothing,
        claim_respects_due_time_and_limit,
        lease_blocks_other_claimers_until_expiry,
        stale_lease_cannot_overwrite,
    );
    check_shared!(concurrent_claimers_share_nothing);
    check!(
        retry_reschedules,
        complete_removes_delivery,
        fail_keeps_delivery_for_redelivery,
        fail_and_disable_disables_subscription,
        release_makes_delivery_claimable_at_once,
        delete_cancels_deliveries_and_logs,
        attempt_log_newest_first_and_capped,
        latest_statuses_per_event,
        payload_bytes_are_preserved,
    );
}
