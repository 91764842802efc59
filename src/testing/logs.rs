//! Checks of attempt logs and latest statuses.

use bytes::Bytes;
use chrono::Duration;

use super::{
    at, attempts, claim, claim_one, detail, enqueue, event, insert, record, statuses, subscription,
};
use crate::model::OrganizationId;
use crate::storage::{LeaseOutcome, NextStep};
use crate::storage::{Storage, DEFAULT_LOG_CAP};

/// The log of one subscription and event lists attempts newest first and
/// keeps only the newest [`DEFAULT_LOG_CAP`] (105 attempts leave the newest
/// 100); each entry names its delivery and event and carries the payload.
pub async fn attempt_log_newest_first_and_capped(store: &dyn Storage) {
    const ATTEMPTS: usize = DEFAULT_LOG_CAP + 5;
    let org = OrganizationId::new_v4();
    let sub = subscription("capped", &["ConversationCreated"]);
    insert(store, org, &sub).await;
    let published = event(org, "ConversationCreated", at(0));
    enqueue(store, &published, 1).await;

    let minute = |n: usize| at(0) + Duration::minutes(n as i64);
    for n in 0..ATTEMPTS {
        let claimed = claim_one(store, minute(n)).await;
        let outcome = record(
            store,
            &claimed,
            &detail(minute(n), 500, &format!("attempt {n}")),
            NextStep::Retry { at: minute(n + 1) },
        )
        .await;
        assert_eq!(
            outcome,
            LeaseOutcome::Applied,
            "the holder's Retry must apply"
        );
    }

    let logged = attempts(store, org, sub.id, "ConversationCreated").await;
    let texts: Vec<&str> = logged
        .iter()
        .map(|a| a.detail.response_text.as_str())
        .collect();
    let expected: Vec<String> = (ATTEMPTS - DEFAULT_LOG_CAP..ATTEMPTS)
        .rev()
        .map(|n| format!("attempt {n}"))
        .collect();
    assert_eq!(
        texts, expected,
        "list_attempts must return the newest {DEFAULT_LOG_CAP} attempts, newest first"
    );
    let newest = &logged[0];
    assert_eq!(
        newest.detail,
        detail(
            minute(ATTEMPTS - 1),
            500,
            &format!("attempt {}", ATTEMPTS - 1)
        ),
        "the newest entry must be the last attempt as recorded"
    );
    for entry in &logged {
        assert_eq!(
            entry.event_id, published.event_id,
            "a log entry names its event"
        );
        assert_eq!(
            entry.payload, published.payload,
            "a log entry carries the payload sent"
        );
    }
    let delivery = claim_one(store, minute(ATTEMPTS)).await.delivery;
    assert!(
        logged.iter().all(|entry| entry.delivery_id == delivery.id),
        "a log entry names its delivery"
    );
    assert_eq!(
        delivery.attempts as usize, ATTEMPTS,
        "every recorded attempt counts, logged or dropped"
    );
    assert!(
        attempts(store, org, sub.id, "ConversationClosed")
            .await
            .is_empty(),
        "an event never attempted has an empty log"
    );
}

/// `latest_statuses` gives the newest attempt of each attempted event of a
/// subscription; events never attempted are absent.
pub async fn latest_statuses_per_event(store: &dyn Storage) {
    let org = OrganizationId::new_v4();
    let sub = subscription(
        "statuses",
        &[
            "ConversationCreated",
            "ConversationClosed",
            "ConversationRated",
        ],
    );
    let other = subscription("other", &["ConversationCreated"]);
    insert(store, org, &sub).await;
    insert(store, org, &other).await;
    assert!(
        statuses(store, org, sub.id).await.is_empty(),
        "a subscription never attempted has no statuses"
    );

    enqueue(store, &event(org, "ConversationCreated", at(0)), 2).await;
    enqueue(store, &event(org, "ConversationClosed", at(0)), 1).await;
    for claimed in claim(store, at(0)).await {
        let is_other = claimed.delivery.subscription_id == other.id;
        let (result, next) = match (is_other, claimed.delivery.event_name.as_str()) {
            (true, _) => (detail(at(5), 200, "other"), NextStep::Complete),
            (false, "ConversationCreated") => (
                detail(at(1), 500, "Internal Server Error"),
                NextStep::Retry { at: at(60) },
            ),
            _ => (detail(at(2), 0, "connection refused"), NextStep::Fail),
        };
        let outcome = record(store, &claimed, &result, next).await;
        assert_eq!(
            outcome,
            LeaseOutcome::Applied,
            "the holder's outcome must apply"
        );
    }
    let retried = claim_one(store, at(60)).await;
    let outcome = record(
        store,
        &retried,
        &detail(at(61), 200, "OK"),
        NextStep::Complete,
    )
    .await;
    assert_eq!(
        outcome,
        LeaseOutcome::Applied,
        "the holder's Complete must apply"
    );

    assert_eq!(
        statuses(store, org, sub.id).await,
        [
            (
                "ConversationClosed".to_owned(),
                detail(at(2), 0, "connection refused")
            ),
            ("ConversationCreated".to_owned(), detail(at(61), 200, "OK")),
        ],
        "latest_statuses must hold the newest attempt of each attempted event, and only those"
    );
    assert_eq!(
        statuses(store, org, other.id).await,
        [(
            "ConversationCreated".to_owned(),
            detail(at(5), 200, "other")
        )],
        "each subscription has its own statuses"
    );
}

/// Claims and logs carry the enqueued payload byte for byte (whitespace, key
/// order and non-ASCII text included), each event its own.
pub async fn payload_bytes_are_preserved(store: &dyn Storage) {
    let org = OrganizationId::new_v4();
    let sub = subscription("payload", &["ConversationNoteAdded"]);
    insert(store, org, &sub).await;
    let bodies = [
        "{\"z\":1,  \"a\" : {\"text\":\"h\u{e9}llo \u{2713} \\u00e9\",\"n\":1.50}}",
        "{\"event_id\":\"x\",\"data\":{}}\n",
    ];
    let mut sent = Vec::new();
    for body in bodies {
        let mut new = event(org, "ConversationNoteAdded", at(0));
        new.payload = Bytes::from(body);
        enqueue(store, &new, 1).await;
        sent.push(new);
    }

    for claimed in claim(store, at(0)).await {
        let original = sent
            .iter()
            .find(|e| e.event_id == claimed.delivery.event_id)
            .unwrap_or_else(|| panic!("a claim must name an enqueued event"));
        assert_eq!(
            claimed.delivery.payload, original.payload,
            "a claim must carry the enqueued payload byte for byte"
        );
        let outcome = record(
            store,
            &claimed,
            &detail(at(1), 200, "OK"),
            NextStep::Complete,
        )
        .await;
        assert_eq!(
            outcome,
            LeaseOutcome::Applied,
            "the holder's Complete must apply"
        );
    }
    let logged = attempts(store, org, sub.id, "ConversationNoteAdded").await;
    assert_eq!(logged.len(), bodies.len(), "every attempt must be logged");
    for entry in logged {
        let original = sent
            .iter()
            .find(|e| e.event_id == entry.event_id)
            .unwrap_or_else(|| panic!("a log entry must name an enqueued event"));
        assert_eq!(
            entry.payload, original.payload,
            "a log entry must carry the enqueued payload byte for byte"
        );
    }
}
