//! The storage conformance suite: every [`Storage`] backend must pass it.
//!
//! Like `object_store`'s `integration` module, each check is a public
//! `async fn` that takes a store, exercises one behaviour documented on
//! [`Storage`], and panics with a message naming the broken rule. A
//! backend's own tests get one test per check, each on a fresh store, from
//! [`conformance_tests!`](crate::conformance_tests):
//!
//! ```
//! use webhook_subscriptions::storage::MemoryStore;
//!
//! async fn make_store() -> MemoryStore {
//!     MemoryStore::new()
//! }
//!
//! webhook_subscriptions::conformance_tests!(make_store);
//! # fn main() {}
//! ```
//!
//! The macro also takes a [`Fixture`] per check (a database schema set up
//! and torn down around each check), extra attributes for every test, and
//! groups of checks a backend cannot support (`skip: [concurrency]`); see
//! its docs. [`run_all`] runs every check in one go, and single checks can
//! be called directly:
//!
//! ```no_run
//! # async fn demo() {
//! use webhook_subscriptions::storage::MemoryStore;
//!
//! webhook_subscriptions::testing::run_all(|| async { MemoryStore::new() }).await;
//! # }
//! ```
//!
//! **Stability:** the suite's exact checks are not a stable API: minor
//! releases may add checks (to [`run_all`] and, as new tests, to
//! [`conformance_tests!`](crate::conformance_tests)).
//!
//! Rules every check relies on:
//!
//! - each check expects a **fresh, empty** store with the default log cap
//!   ([`DEFAULT_LOG_CAP`](crate::storage::DEFAULT_LOG_CAP)): claims see every
//!   queued delivery of the store, not just the check's own;
//! - times are explicit, whole milliseconds from [`base_time`]
//!   (2024-01-01T00:00:00Z), so microsecond timestamps store them exactly;
//!   nothing sleeps;
//! - payloads are compared byte for byte (store them as bytes, not as
//!   re-serialized JSON);
//! - a lease is held while `now < expires_at`: at `expires_at` the delivery is
//!   claimable again; a delivery is due when `due_at <= now`;
//! - the checks taking an `Arc<dyn Storage>` spawn tasks with `tokio::spawn`
//!   on the caller's runtime; run them on a multi-thread runtime to race for real.
//!
//! The checks, in the order [`run_all`] runs them; the few a backend may
//! skip name their group:
//!
//! | check | behaviour |
//! |---|---|
//! | [`insert_and_get`] | a stored subscription reads back equal; unknown ids are `None` |
//! | [`list_oldest_first`] | lists by `created_at`, ties in insertion order, per organization |
//! | [`update_applies_change`] | every field of a change lands; absent ones stay; missing ids give `None` |
//! | [`delete_removes_subscription`] | delete reports existence once and removes the subscription |
//! | [`concurrent_updates_all_survive`] (`concurrency`) | concurrent changes of different fields all survive |
//! | [`organizations_are_isolated`] | another organization's ids behave as missing and change nothing |
//! | [`logs_and_failures_are_isolated`] | the same for failed deliveries, redelivery, logs and statuses |
//! | [`enqueue_stays_in_organization`] | an event reaches only its own organization's subscriptions |
//! | [`enqueue_targets_enabled_subscribers`] | one delivery per enabled, subscribed subscription, due at `published_at` |
//! | [`enqueue_follows_the_fan_out_rule`] | `enqueue_event` picks exactly what [`select_targets`](crate::delivery::select_targets) picks |
//! | [`enqueue_deliveries_persists_the_chosen_targets`] | `enqueue_deliveries` queues the given targets of the organization, once per event id |
//! | [`duplicate_event_id_enqueues_nothing`] | an `event_id` is enqueued once per organization |
//! | [`claim_respects_due_time_and_limit`] | claims take only due deliveries, at most `limit` |
//! | [`lease_blocks_other_claimers_until_expiry`] | a held lease hides the delivery; an expired one hands it out with a new token |
//! | [`stale_lease_cannot_overwrite`] | an outdated claim is logged but cannot change the queue |
//! | [`concurrent_claimers_share_nothing`] (`concurrency`) | many concurrent claimers get every delivery exactly once |
//! | [`claim_caps_in_flight_per_subscription`] | a subscription never has more than the cap under live leases |
//! | [`claim_takes_turns_across_organizations`] | claims go round-robin over organizations, then subscriptions; fewer in flight first |
//! | [`concurrent_claimers_respect_the_cap`] (`concurrency`) | the cap holds across many concurrent claimers |
//! | [`prune_drops_old_failures_and_logs`] | retention removes old failed deliveries and log entries, nothing pending |
//! | [`retry_reschedules`] | `Retry` makes the delivery due at `at` with one more attempt |
//! | [`complete_removes_delivery`] | `Complete` removes the delivery |
//! | [`fail_keeps_delivery_for_redelivery`] | `Fail` keeps it as failed; `redeliver` queues it afresh |
//! | [`fail_and_disable_disables_subscription`] | `FailAndDisable` also disables the subscription |
//! | [`release_makes_delivery_claimable_at_once`] | a released delivery is claimable at once, without an attempt |
//! | [`delete_cancels_deliveries_and_logs`] | deleting a subscription cancels its deliveries and drops its logs |
//! | [`attempt_log_newest_first_and_capped`] | logs are newest first and keep the newest 100 |
//! | [`latest_statuses_per_event`] | the latest attempt per attempted event |
//! | [`payload_bytes_are_preserved`] | claims and logs carry the enqueued bytes exactly |
//! | [`queue_stats_report_due_deliveries`] | counts what is claimable now and since when the oldest is |
//! | [`rotation_keeps_the_previous_secret`] | a secret rotation keeps the replaced secret and its expiry, through reads, changes and claims |
//! | [`redeliver_failed_picks_one_or_since`] | `redeliver_failed` requeues the subscription's own failed deliveries, by id or since a time, up to the limit |
//! | [`enqueue_for_subscription_reaches_one_subscription`] | an event enqueued for one subscription reaches it alone |
//! | [`breaker_pauses_a_failing_endpoint`] | failures in a row open the circuit: claims skip the subscription, one probe after the cool-down, a failed probe doubles it, a success closes it |
//! | [`breaker_counts_only_failures_in_a_row`] | a success resets the streak; attempts recorded without a breaker leave health alone |
//! | [`breaker_disables_after_the_window`] | no success for the disable window disables the subscription |
//! | [`changing_the_endpoint_closes_its_circuit`] | a new URL or enabling again closes the circuit |

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};

use crate::model::{
    DeliveryDetail, DeliveryId, EventId, OrganizationId, SecretKey, SubscriptionId, UserId,
    WebhookSubscription,
};
use crate::storage::Storage;
use crate::storage::{AttemptLog, ClaimedDelivery, Delivery, LeaseOutcome, NewEvent, NextStep};

mod breaker;
mod fairness;
mod fanout;
mod isolation;
mod logs;
mod queue;
mod queue_stats;
mod replay;
mod subscriptions;
mod suite;

pub use breaker::{
    breaker_counts_only_failures_in_a_row, breaker_disables_after_the_window,
    breaker_pauses_a_failing_endpoint, changing_the_endpoint_closes_its_circuit,
};
pub use fairness::{
    claim_caps_in_flight_per_subscription, claim_takes_turns_across_organizations,
    concurrent_claimers_respect_the_cap, prune_drops_old_failures_and_logs,
};
pub use fanout::{
    enqueue_deliveries_persists_the_chosen_targets, enqueue_follows_the_fan_out_rule,
};
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
pub use queue_stats::queue_stats_report_due_deliveries;
pub use replay::{
    enqueue_for_subscription_reaches_one_subscription, redeliver_failed_picks_one_or_since,
    rotation_keeps_the_previous_secret,
};
pub use subscriptions::{
    concurrent_updates_all_survive, delete_removes_subscription, insert_and_get, list_oldest_first,
    update_applies_change,
};
pub use suite::Fixture;

/// The instant every check counts from: 2024-01-01T00:00:00Z.
pub fn base_time() -> DateTime<Utc> {
    DateTime::from_timestamp(1_704_067_200, 0).unwrap_or(DateTime::UNIX_EPOCH)
}

/// `base_time()` plus `seconds`.
fn at(seconds: i64) -> DateTime<Utc> {
    base_time() + Duration::seconds(seconds)
}

/// How long the checks lease what they claim, unless they say otherwise.
const LEASE: Duration = Duration::seconds(30);

/// More than any check ever has queued.
const NO_LIMIT: usize = 10_000;

/// An enabled subscription to `events`, created at `base_time()`.
fn subscription(name: &str, events: &[&str]) -> WebhookSubscription {
    let user = UserId::new_v4();
    WebhookSubscription {
        id: SubscriptionId::new_v4(),
        name: name.to_owned(),
        url: format!("https://receiver.example.com/hooks/{name}"),
        subscribed_events: events.iter().map(|e| (*e).to_owned()).collect(),
        headers: BTreeMap::new(),
        secret_key: SecretKey::from_bytes([0x5a; 32]),
        enabled: true,
        created_at: base_time(),
        created_by: user,
        updated_at: base_time(),
        updated_by: user,
        filters: None,
        previous_secret: None,
    }
}

/// Stores `subscription` in `organization`, failing the check on an error.
async fn insert(
    store: &dyn Storage,
    organization: OrganizationId,
    subscription: &WebhookSubscription,
) {
    store
        .insert_subscription(organization, subscription)
        .await
        .unwrap_or_else(|e| panic!("insert_subscription failed: {e:?}"));
}

/// A new event named `name` of `organization`, published at `published_at`.
fn event(organization: OrganizationId, name: &str, published_at: DateTime<Utc>) -> NewEvent {
    let event_id = EventId::new_v4();
    NewEvent {
        organization_id: organization,
        event_id,
        event_name: name.to_owned(),
        payload: Bytes::from(format!(
            "{{\"event_id\":\"{event_id}\",\"event_fqn\":\"{name}\",\"data\":{{}}}}"
        )),
        published_at,
    }
}

/// Stores `subscriptions` subscriptions to `ConversationCreated` in
/// `organization` and publishes `events` such events, due at `at(0)`.
async fn backlog(
    store: &dyn Storage,
    organization: OrganizationId,
    subscriptions: usize,
    events: usize,
) {
    for i in 0..subscriptions {
        let sub = subscription(&format!("sub-{i}"), &["ConversationCreated"]);
        insert(store, organization, &sub).await;
    }
    for _ in 0..events {
        let due = event(organization, "ConversationCreated", at(0));
        enqueue(store, &due, subscriptions).await;
    }
}

/// Enqueues `event` and checks that it reached `expected` subscriptions.
async fn enqueue(store: &dyn Storage, event: &NewEvent, expected: usize) {
    let enqueued = store
        .enqueue_event(event)
        .await
        .unwrap_or_else(|e| panic!("enqueue_event failed: {e:?}"));
    assert_eq!(
        enqueued, expected,
        "enqueue_event of {} must enqueue one delivery per enabled subscription to it",
        event.event_name
    );
}

/// Claims everything due at `now`, leasing it for [`LEASE`].
async fn claim(store: &dyn Storage, now: DateTime<Utc>) -> Vec<ClaimedDelivery> {
    claim_up_to(store, now, NO_LIMIT).await
}

async fn claim_up_to(
    store: &dyn Storage,
    now: DateTime<Utc>,
    limit: usize,
) -> Vec<ClaimedDelivery> {
    store
        .claim_deliveries(now, LEASE, limit)
        .await
        .unwrap_or_else(|e| panic!("claim_deliveries failed: {e:?}"))
}

/// Claims at `now` and checks that exactly one delivery was due.
async fn claim_one(store: &dyn Storage, now: DateTime<Utc>) -> ClaimedDelivery {
    let mut claimed = claim(store, now).await;
    assert_eq!(
        claimed.len(),
        1,
        "exactly one delivery must be claimable at {now}"
    );
    claimed.remove(0)
}

/// The outcome of an attempt made at `when`.
fn detail(when: DateTime<Utc>, response_code: u16, response_text: &str) -> DeliveryDetail {
    DeliveryDetail {
        delivery_timestamp: when,
        success: (200..300).contains(&response_code),
        response_code,
        response_text: response_text.to_owned(),
    }
}

/// Records an attempt of `claim`, failing the check on an error.
async fn record(
    store: &dyn Storage,
    claim: &ClaimedDelivery,
    detail: &DeliveryDetail,
    next: NextStep,
) -> LeaseOutcome {
    store
        .record_attempt(claim, detail, next)
        .await
        .unwrap_or_else(|e| panic!("record_attempt failed: {e:?}"))
}

/// The attempts logged for `subscription` and `event`, newest first.
async fn attempts(
    store: &dyn Storage,
    organization: OrganizationId,
    subscription: SubscriptionId,
    event: &str,
) -> Vec<AttemptLog> {
    store
        .list_attempts(organization, subscription, event)
        .await
        .unwrap_or_else(|e| panic!("list_attempts failed: {e:?}"))
}

/// The failed deliveries of `subscription`, most recently due first.
async fn failed(
    store: &dyn Storage,
    organization: OrganizationId,
    subscription: SubscriptionId,
) -> Vec<Delivery> {
    store
        .failed_deliveries(organization, subscription, NO_LIMIT)
        .await
        .unwrap_or_else(|e| panic!("failed_deliveries failed: {e:?}"))
}

/// The latest status per event of `subscription`, sorted by event name.
async fn statuses(
    store: &dyn Storage,
    organization: OrganizationId,
    subscription: SubscriptionId,
) -> Vec<(String, DeliveryDetail)> {
    let mut statuses = store
        .latest_statuses(organization, subscription)
        .await
        .unwrap_or_else(|e| panic!("latest_statuses failed: {e:?}"));
    statuses.sort_by(|a, b| a.0.cmp(&b.0));
    statuses
}

async fn redeliver(
    store: &dyn Storage,
    organization: OrganizationId,
    delivery: DeliveryId,
    now: DateTime<Utc>,
) -> bool {
    store
        .redeliver(organization, delivery, now)
        .await
        .unwrap_or_else(|e| panic!("redeliver failed: {e:?}"))
}

async fn get(
    store: &dyn Storage,
    organization: OrganizationId,
    id: SubscriptionId,
) -> Option<WebhookSubscription> {
    store
        .get_subscription(organization, id)
        .await
        .unwrap_or_else(|e| panic!("get_subscription failed: {e:?}"))
}

/// Runs every check of the suite, each on a fresh, empty store from
/// `make_store`, in the order of the table in the [module docs](self).
///
/// Panics at the first violation. Call it from a multi-thread runtime
/// (`#[tokio::test(flavor = "multi_thread")]`) so the concurrency checks race
/// for real. [`conformance_tests!`](crate::conformance_tests) runs the same
/// checks as one test each, which names the failing check.
pub async fn run_all<F, Fut, S>(mut make_store: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
    S: Storage + 'static,
{
    macro_rules! run {
        ($($group:ident $kind:ident $check:ident,)*) => {
            $( run!(@ $kind $check); )*
        };
        (@ plain $check:ident) => {
            $check(&make_store().await).await;
        };
        (@ shared $check:ident) => {
            $check(Arc::new(make_store().await)).await;
        };
    }
    crate::__conformance_checks!([run]);
}

#[cfg(test)]
mod tests {
    /// The table of the module docs lists every check of the suite, in the
    /// order `run_all` runs them, with its group when it is not `core`.
    #[test]
    fn the_docs_table_lists_every_check() {
        macro_rules! listed {
            ($($group:ident $kind:ident $check:ident,)*) => {
                [$((stringify!($check), stringify!($group))),*]
            };
        }
        let listed = crate::__conformance_checks!([listed]);
        let table: Vec<(&str, &str)> = include_str!("mod.rs")
            .lines()
            .filter_map(|line| line.strip_prefix("//! | [`"))
            .map(|row| {
                let (check, rest) = row.split_once("`]").unwrap_or((row, ""));
                let group = rest
                    .strip_prefix(" (`")
                    .and_then(|rest| rest.split_once("`)"))
                    .map_or("core", |(group, _)| group);
                (check, group)
            })
            .collect();
        assert_eq!(
            table, listed,
            "the module docs' table and the list of checks differ"
        );
    }
}
