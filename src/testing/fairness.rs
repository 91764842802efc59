//! Checks of fair delivery: the per-subscription in-flight cap, the turns
//! taken across organizations and subscriptions, and retention.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Barrier;

use super::{at, backlog, detail, enqueue, event, insert, record, subscription, LEASE};
use crate::model::{OrganizationId, SubscriptionId};
use crate::storage::Storage;
use crate::storage::{ClaimLimits, ClaimedDelivery, LeaseOutcome, NextStep};

/// Claims fairly at `now` with `limits`, leasing for [`LEASE`].
async fn claim_fairly(
    store: &dyn Storage,
    now: chrono::DateTime<chrono::Utc>,
    batch: usize,
    per_subscription: usize,
) -> Vec<ClaimedDelivery> {
    store
        .claim_deliveries_fairly(now, LEASE, ClaimLimits::new(batch, per_subscription))
        .await
        .unwrap_or_else(|e| panic!("claim_deliveries_fairly failed: {e:?}"))
}

/// How many of `claimed` went to each subscription.
fn per_subscription(claimed: &[ClaimedDelivery]) -> BTreeMap<SubscriptionId, usize> {
    let mut counts = BTreeMap::new();
    for claim in claimed {
        *counts.entry(claim.delivery.subscription_id).or_default() += 1;
    }
    counts
}

/// A subscription never has more than `per_subscription` deliveries under
/// a live lease: a claim skips a saturated subscription, a finished attempt
/// frees its place, and an expired lease no longer counts.
pub async fn claim_caps_in_flight_per_subscription(store: &dyn Storage) {
    const CAP: usize = 4;
    let org = OrganizationId::new_v4();
    let busy = subscription("busy", &["ConversationCreated"]);
    let quiet = subscription("quiet", &["ConversationClosed"]);
    insert(store, org, &busy).await;
    insert(store, org, &quiet).await;
    for _ in 0..10 {
        enqueue(store, &event(org, "ConversationCreated", at(0)), 1).await;
    }
    for _ in 0..2 {
        enqueue(store, &event(org, "ConversationClosed", at(0)), 1).await;
    }

    let first = claim_fairly(store, at(1), 100, CAP).await;
    let counts = per_subscription(&first);
    assert_eq!(
        counts.get(&busy.id),
        Some(&CAP),
        "a subscription with 10 due deliveries gets exactly the cap of {CAP} in flight"
    );
    assert_eq!(
        counts.get(&quiet.id),
        Some(&2),
        "the cap of one subscription must not hold back another's deliveries"
    );
    assert!(
        claim_fairly(store, at(1), 100, CAP).await.is_empty(),
        "a saturated subscription gets nothing more while its leases hold"
    );

    let done = first
        .iter()
        .find(|c| c.delivery.subscription_id == busy.id)
        .unwrap_or_else(|| panic!("a claim of the busy subscription"));
    let outcome = record(store, done, &detail(at(2), 200, "OK"), NextStep::Complete).await;
    assert_eq!(
        outcome,
        LeaseOutcome::Applied,
        "the holder completes its claim"
    );
    let refill = claim_fairly(store, at(2), 100, CAP).await;
    assert_eq!(
        per_subscription(&refill),
        BTreeMap::from([(busy.id, 1)]),
        "a finished attempt frees exactly one place under the cap"
    );

    // Every lease taken so far has expired at `at(2) + LEASE`.
    let after_expiry = claim_fairly(store, at(2) + LEASE, 100, CAP).await;
    assert_eq!(
        per_subscription(&after_expiry).get(&busy.id),
        Some(&CAP),
        "expired leases do not count against the cap"
    );
}

/// A claim takes turns: across organizations first, then across the
/// subscriptions of an organization, then by due time; deliveries in flight
/// count as turns already taken, so a tenant's fresh delivery goes before
/// another tenant's older backlog.
pub async fn claim_takes_turns_across_organizations(store: &dyn Storage) {
    let big = OrganizationId::new_v4();
    let small = OrganizationId::new_v4();
    let backlog = subscription("backlog", &["ConversationCreated"]);
    let other = subscription("other", &["ConversationClosed"]);
    let fresh = subscription("fresh", &["ConversationCreated"]);
    insert(store, big, &backlog).await;
    insert(store, big, &other).await;
    insert(store, small, &fresh).await;
    for _ in 0..20 {
        enqueue(store, &event(big, "ConversationCreated", at(0)), 1).await;
    }
    enqueue(store, &event(big, "ConversationClosed", at(1)), 1).await;
    for _ in 0..2 {
        enqueue(store, &event(small, "ConversationCreated", at(2)), 1).await;
    }

    let first = claim_fairly(store, at(3), 4, 100).await;
    assert_eq!(
        per_subscription(&first),
        BTreeMap::from([(backlog.id, 1), (other.id, 1), (fresh.id, 2)]),
        "four claims go round-robin over the organizations, then their subscriptions, \
         not to the oldest backlog"
    );

    for claim in first
        .iter()
        .filter(|c| c.delivery.subscription_id == fresh.id)
    {
        record(store, claim, &detail(at(4), 200, "OK"), NextStep::Complete).await;
    }
    enqueue(store, &event(small, "ConversationCreated", at(5)), 1).await;
    let next = claim_fairly(store, at(6), 1, 100).await;
    assert_eq!(
        per_subscription(&next),
        BTreeMap::from([(fresh.id, 1)]),
        "an organization with nothing in flight goes before one with deliveries in flight, \
         however old the latter's backlog"
    );
}

/// Many concurrent claimers together never lease more than the cap per
/// subscription: claimers keep claiming and releasing, and each checks,
/// between its claim and its release, that the leases held stay within the cap.
pub async fn concurrent_claimers_respect_the_cap(store: Arc<dyn Storage>) {
    const CAP: usize = 4;
    const SUBSCRIPTIONS: usize = 2;
    const CLAIMERS: usize = 16;
    const ROUNDS: usize = 50;
    let org = OrganizationId::new_v4();
    backlog(&*store, org, SUBSCRIPTIONS, 30).await;

    // Leases this check holds right now, per subscription; counted only
    // while surely held, so never more than the store's live leases.
    let held = Arc::new(Mutex::new(BTreeMap::<SubscriptionId, usize>::new()));
    let barrier = Arc::new(Barrier::new(CLAIMERS));
    let mut tasks = Vec::new();
    for _ in 0..CLAIMERS {
        let (store, barrier, held) = (store.clone(), barrier.clone(), held.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            for _ in 0..ROUNDS {
                let claimed = claim_fairly(&*store, at(1), 2, CAP).await;
                {
                    let mut held = held.lock().unwrap_or_else(PoisonError::into_inner);
                    for claim in &claimed {
                        let count = held.entry(claim.delivery.subscription_id).or_default();
                        *count += 1;
                        assert!(
                            *count <= CAP,
                            "subscription {} has {count} live leases, cap {CAP}",
                            claim.delivery.subscription_id
                        );
                    }
                }
                tokio::task::yield_now().await;
                for claim in &claimed {
                    let mut held = held.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Some(count) = held.get_mut(&claim.delivery.subscription_id) {
                        *count -= 1;
                    }
                }
                for claim in &claimed {
                    store
                        .release(claim)
                        .await
                        .unwrap_or_else(|e| panic!("release failed: {e:?}"));
                }
            }
        }));
    }
    for task in tasks {
        task.await
            .unwrap_or_else(|e| panic!("claim task failed: {e}"));
    }
    // Everything was given back: one claim alone fills every subscription
    // up to the cap, and the next finds them all saturated.
    let counts = per_subscription(&claim_fairly(&*store, at(1), 100, CAP).await);
    assert_eq!(
        counts.len(),
        SUBSCRIPTIONS,
        "every subscription with due deliveries gets claims"
    );
    for (subscription, count) in counts {
        assert_eq!(
            count, CAP,
            "subscription {subscription} ends with {count} live leases, cap {CAP}"
        );
    }
    assert!(
        claim_fairly(&*store, at(1), 100, CAP).await.is_empty(),
        "saturated subscriptions give nothing more"
    );
}

/// Retention: `prune` removes failed deliveries last due before the cut-off
/// and log entries made before it, and keeps everything newer and every
/// pending delivery, however old.
pub async fn prune_drops_old_failures_and_logs(store: &dyn Storage) {
    let org = OrganizationId::new_v4();
    let sub = subscription("retained", &["ConversationCreated"]);
    insert(store, org, &sub).await;

    enqueue(store, &event(org, "ConversationCreated", at(0)), 1).await;
    let old_failure = super::claim_one(store, at(0)).await;
    record(
        store,
        &old_failure,
        &detail(at(1), 500, "old"),
        NextStep::Fail,
    )
    .await;
    enqueue(store, &event(org, "ConversationCreated", at(100)), 1).await;
    let retrying = super::claim_one(store, at(100)).await;
    let later = NextStep::Retry { at: at(10_000) };
    record(store, &retrying, &detail(at(101), 500, "retrying"), later).await;
    enqueue(store, &event(org, "ConversationCreated", at(200)), 1).await;
    let new_failure = super::claim_one(store, at(200)).await;
    record(
        store,
        &new_failure,
        &detail(at(201), 500, "new"),
        NextStep::Fail,
    )
    .await;

    let removed = store
        .prune(at(300), at(150))
        .await
        .unwrap_or_else(|e| panic!("prune failed: {e:?}"));
    assert_eq!(
        removed, 3,
        "one old failed delivery and two old log entries"
    );
    let failed: Vec<_> = super::failed(store, org, sub.id)
        .await
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(
        failed,
        [new_failure.delivery.id],
        "only the failed delivery due before the cut-off goes"
    );
    let texts: Vec<_> = super::attempts(store, org, sub.id, "ConversationCreated")
        .await
        .into_iter()
        .map(|a| a.detail.response_text)
        .collect();
    assert_eq!(texts, ["new"], "log entries made before the cut-off go");
    let pending = super::claim_one(store, at(10_000)).await;
    assert_eq!(
        pending.delivery.id, retrying.delivery.id,
        "a pending delivery is kept, however old"
    );
    assert!(
        store.prune(at(300), at(150)).await.is_ok_and(|n| n == 0),
        "pruning again removes nothing"
    );
}
