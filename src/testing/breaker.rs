//! Checks of the circuit breaker's state in a store: counting failures,
//! pausing claims, the half-open probe, closing, auto-disable, and what
//! closes a circuit by hand.

use std::time::Duration as StdDuration;

use chrono::DateTime;
use chrono::Utc;

use super::{at, claim, detail, enqueue, event, get, insert, subscription, UserId};
use crate::delivery::CircuitBreaker;
use crate::model::{OrganizationId, SubscriptionChange, SubscriptionId};
use crate::storage::Storage;
use crate::storage::{ClaimedDelivery, EndpointHealth, HealthChange, NextStep, Recorded};

/// Opens after 3 failures for 30 s, doubling up to 2 min; disables after 100 s.
fn breaker() -> CircuitBreaker {
    let second = StdDuration::from_secs(1);
    CircuitBreaker::new(3, second * 30, second * 120)
        .and_then(|b| b.with_disable_after(Some(second * 100)))
        .unwrap_or_else(|e| panic!("a valid breaker: {e}"))
}

/// Records an attempt of `claim` made at `when` answered with `code`,
/// retrying a failure at `at(1_000)`, counted by `breaker`.
async fn attempt(
    store: &dyn Storage,
    claim: &ClaimedDelivery,
    when: DateTime<Utc>,
    code: u16,
    breaker: Option<&CircuitBreaker>,
) -> Recorded {
    let outcome = detail(when, code, "answer");
    let next = if outcome.success {
        NextStep::Complete
    } else {
        NextStep::Retry { at: at(1_000) }
    };
    store
        .record_attempt_with_breaker(claim, &outcome, next, breaker)
        .await
        .unwrap_or_else(|e| panic!("record_attempt_with_breaker failed: {e:?}"))
}

async fn health(
    store: &dyn Storage,
    organization: OrganizationId,
    subscription: SubscriptionId,
) -> Option<EndpointHealth> {
    store
        .endpoint_health(organization, subscription)
        .await
        .unwrap_or_else(|e| panic!("endpoint_health failed: {e:?}"))
}

/// Publishes `count` `ConversationCreated` events due at `at(0)` to one
/// new subscription of a new organization.
async fn failing_endpoint(store: &dyn Storage, count: usize) -> (OrganizationId, SubscriptionId) {
    let org = OrganizationId::new_v4();
    let sub = subscription("failing", &["ConversationCreated"]);
    insert(store, org, &sub).await;
    for _ in 0..count {
        enqueue(store, &event(org, "ConversationCreated", at(0)), 1).await;
    }
    (org, sub.id)
}

/// Failures in a row open the circuit at the threshold: the store keeps the
/// streak, claims skip the paused subscription (others flow), attempts sent
/// before it opened only count, the cool-down's end lets exactly one probe
/// through, a failed probe pauses twice as long, and a success closes it.
pub async fn breaker_pauses_a_failing_endpoint(store: &dyn Storage) {
    let breaker = breaker();
    let (org, sub) = failing_endpoint(store, 7).await;
    let claimed = claim(store, at(1)).await;
    assert_eq!(claimed.len(), 7, "seven deliveries are due");

    for (i, claim) in claimed[..2].iter().enumerate() {
        let recorded = attempt(store, claim, at(1), 500, Some(&breaker)).await;
        assert_eq!(
            recorded.change,
            None,
            "failure {} of a threshold of 3 changes nothing",
            i + 1
        );
    }
    let third = attempt(store, &claimed[2], at(1), 500, Some(&breaker)).await;
    assert_eq!(
        third.change,
        Some(HealthChange::CircuitOpened {
            until: at(31),
            failure_streak: 3
        }),
        "the third failure in a row opens the circuit for the 30 s cool-down"
    );
    // Sent at the same time, failing after the circuit opened: counted only.
    let late = attempt(store, &claimed[3], at(1), 503, Some(&breaker)).await;
    assert_eq!(late.change, None, "a late failure does not reopen");
    let stored = health(store, org, sub)
        .await
        .expect("a failing endpoint has a health record");
    assert_eq!(
        (
            stored.failure_streak,
            stored.failing_since,
            stored.paused_until
        ),
        (4, at(1), Some(at(31))),
        "the store keeps the streak, when it began and the pause"
    );
    assert_eq!(
        health(store, OrganizationId::new_v4(), sub).await,
        None,
        "another organization sees no health for the subscription"
    );
    // Give back the last three unattempted: they are due, but paused.
    for claim in &claimed[4..] {
        store.release(claim).await.expect("release");
    }

    let other = OrganizationId::new_v4();
    let healthy = subscription("healthy", &["ConversationCreated"]);
    insert(store, other, &healthy).await;
    enqueue(store, &event(other, "ConversationCreated", at(2)), 1).await;
    let during = claim(store, at(30)).await;
    assert_eq!(
        during
            .iter()
            .map(|c| c.delivery.subscription_id)
            .collect::<Vec<_>>(),
        vec![healthy.id],
        "while the circuit is open only other subscriptions' deliveries are claimed"
    );
    attempt(store, &during[0], at(30), 200, Some(&breaker)).await;

    let probes = claim(store, at(31)).await;
    assert_eq!(
        probes.len(),
        1,
        "when the cool-down ends, one probe goes out however many are due"
    );
    assert!(
        claim(store, at(32)).await.is_empty(),
        "a half-open circuit has one delivery in flight at most"
    );
    let failed_probe = attempt(store, &probes[0], at(32), 500, Some(&breaker)).await;
    assert_eq!(
        failed_probe.change,
        Some(HealthChange::CircuitOpened {
            until: at(92),
            failure_streak: 5
        }),
        "a failed probe opens the circuit again for twice as long"
    );
    assert!(
        claim(store, at(91)).await.is_empty(),
        "nothing is claimed during the doubled cool-down"
    );

    let probes = claim(store, at(92)).await;
    assert_eq!(probes.len(), 1, "one probe after the second cool-down");
    let success = attempt(store, &probes[0], at(92), 200, Some(&breaker)).await;
    assert_eq!(
        success.change,
        Some(HealthChange::CircuitClosed),
        "a successful probe closes the circuit"
    );
    assert_eq!(
        health(store, org, sub).await,
        None,
        "a success forgets the streak"
    );
    let resumed = claim(store, at(93)).await;
    assert_eq!(
        resumed.len(),
        1,
        "once closed, the remaining due delivery flows again"
    );
}

/// A success before the threshold forgets the streak, so the next failure
/// starts a new one; attempts recorded without a breaker (not sent) never
/// touch the health.
pub async fn breaker_counts_only_failures_in_a_row(store: &dyn Storage) {
    let breaker = breaker();
    let (org, sub) = failing_endpoint(store, 6).await;
    let claimed = claim(store, at(1)).await;
    assert_eq!(claimed.len(), 6);

    attempt(store, &claimed[0], at(1), 500, Some(&breaker)).await;
    attempt(store, &claimed[1], at(2), 500, Some(&breaker)).await;
    let healed = attempt(store, &claimed[2], at(3), 204, Some(&breaker)).await;
    assert_eq!(
        healed.change, None,
        "a success closes nothing when the circuit never opened"
    );
    assert_eq!(
        health(store, org, sub).await,
        None,
        "a success resets the streak"
    );
    attempt(store, &claimed[3], at(4), 500, Some(&breaker)).await;
    let restarted = health(store, org, sub)
        .await
        .expect("a new failure starts a new streak");
    assert_eq!(
        (
            restarted.failure_streak,
            restarted.failing_since,
            restarted.paused_until
        ),
        (1, at(4), None)
    );

    let (quiet_org, quiet) = failing_endpoint(store, 3).await;
    let not_sent = claim(store, at(5)).await;
    assert_eq!(not_sent.len(), 3);
    for claim in &not_sent {
        attempt(store, claim, at(5), 0, None).await;
    }
    assert_eq!(
        health(store, quiet_org, quiet).await,
        None,
        "attempts recorded without a breaker leave the endpoint's health alone"
    );
}

/// With no success for the breaker's disable window, a failure disables
/// the subscription and forgets its streak; enqueueing then skips it.
pub async fn breaker_disables_after_the_window(store: &dyn Storage) {
    let breaker = breaker();
    let (org, sub) = failing_endpoint(store, 2).await;
    let claimed = claim(store, at(1)).await;
    assert_eq!(claimed.len(), 2);
    let first = attempt(store, &claimed[0], at(1), 500, Some(&breaker)).await;
    assert_eq!(first.change, None);
    let last = attempt(store, &claimed[1], at(101), 500, Some(&breaker)).await;
    assert_eq!(
        last.change,
        Some(HealthChange::Disabled {
            failing_since: at(1)
        }),
        "a failure 100 s after the streak began disables the subscription"
    );
    let stored = get(store, org, sub)
        .await
        .expect("a disabled subscription is kept");
    assert!(!stored.enabled, "the subscription is disabled");
    assert_eq!(
        health(store, org, sub).await,
        None,
        "its streak is forgotten"
    );
    enqueue(store, &event(org, "ConversationCreated", at(102)), 0).await;
}

/// A new URL, or enabling the subscription again, closes its circuit: its
/// deliveries are claimable at once.
pub async fn changing_the_endpoint_closes_its_circuit(store: &dyn Storage) {
    let breaker = breaker();
    for (name, change) in [
        (
            "a new url",
            SubscriptionChange {
                url: Some("https://fixed.example.com/hook".to_owned()),
                ..no_change()
            },
        ),
        (
            "enabling again",
            SubscriptionChange {
                enabled: Some(true),
                ..no_change()
            },
        ),
    ] {
        let (org, sub) = failing_endpoint(store, 4).await;
        let claimed = claim(store, at(1)).await;
        for claim in &claimed[..3] {
            attempt(store, claim, at(1), 500, Some(&breaker)).await;
        }
        store.release(&claimed[3]).await.expect("release");
        if name == "enabling again" {
            let disable = SubscriptionChange {
                enabled: Some(false),
                ..no_change()
            };
            store
                .update_subscription(org, sub, &disable)
                .await
                .expect("update_subscription");
        }
        assert!(
            health(store, org, sub)
                .await
                .is_some_and(|h| h.paused_until.is_some()),
            "{name}: the circuit is open before the change"
        );
        store
            .update_subscription(org, sub, &change)
            .await
            .expect("update_subscription")
            .expect("the subscription exists");
        assert_eq!(
            health(store, org, sub).await,
            None,
            "{name} closes the circuit"
        );
        let resumed = claim(store, at(2)).await;
        assert_eq!(
            resumed.len(),
            1,
            "{name}: the due delivery is claimable at once"
        );
        for claim in &resumed {
            store.release(claim).await.expect("release");
        }
        store
            .delete_subscription(org, sub)
            .await
            .expect("delete_subscription");
    }
}

/// A change touching nothing, stamped at `at(1)`.
fn no_change() -> SubscriptionChange {
    SubscriptionChange::touch(at(1), UserId::new_v4())
}
