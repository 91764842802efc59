//! Checks of the queue statistics used for monitoring.

use super::{at, claim, claim_up_to, detail, enqueue, event, insert, record, subscription};
use crate::model::OrganizationId;
use crate::storage::NextStep;
use crate::storage::{QueueStats, Storage};

/// `queue_stats` counts the deliveries claimable at `now` (pending and due,
/// or leased with an expired lease) and reports since when the oldest of
/// them is claimable; held leases, future retries and failed deliveries are
/// not due.
pub async fn queue_stats_report_due_deliveries(store: &dyn Storage) {
    let stats = |now| async move {
        store
            .queue_stats(now)
            .await
            .unwrap_or_else(|e| panic!("queue_stats failed: {e:?}"))
    };
    assert_eq!(
        stats(at(0)).await,
        QueueStats::new(0, None),
        "an empty queue has nothing due"
    );

    let org = OrganizationId::new_v4();
    insert(store, org, &subscription("stats", &["ConversationCreated"])).await;
    for published in [10, 20, 30] {
        enqueue(store, &event(org, "ConversationCreated", at(published)), 1).await;
    }
    assert_eq!(
        stats(at(5)).await,
        QueueStats::new(0, None),
        "deliveries due later are not due yet"
    );
    assert_eq!(
        stats(at(20)).await,
        QueueStats::new(2, Some(at(10))),
        "deliveries due at or before now are due, the oldest first"
    );

    // Claimed at 20 with a 30 s lease: leased until at(50).
    let first = claim_up_to(store, at(20), 1).await;
    assert_eq!(first.len(), 1, "one delivery must be claimable");
    assert_eq!(
        stats(at(20)).await,
        QueueStats::new(1, Some(at(20))),
        "a delivery under a held lease is not due"
    );
    assert_eq!(
        stats(at(50)).await,
        QueueStats::new(3, Some(at(20))),
        "a delivery whose lease expired is due again"
    );

    let claimed = claim(store, at(50)).await;
    assert_eq!(claimed.len(), 3, "all three deliveries must be claimable");
    let outcome = detail(at(50), 500, "Internal Server Error");
    let nexts = [
        NextStep::Retry { at: at(100) },
        NextStep::Fail,
        NextStep::Complete,
    ];
    for (claim, next) in claimed.iter().zip(nexts) {
        record(store, claim, &outcome, next).await;
    }
    assert_eq!(
        stats(at(60)).await,
        QueueStats::new(0, None),
        "failed, completed and rescheduled deliveries are not due"
    );
    let later = stats(at(130)).await;
    assert_eq!(
        later,
        QueueStats::new(1, Some(at(100))),
        "a retry is due from its retry time"
    );
    assert_eq!(
        later.lag(at(130)),
        std::time::Duration::from_secs(30),
        "the lag is how long the oldest due delivery has waited"
    );
}
