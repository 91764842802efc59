//! Building the delivered envelope at publish time, and refusing bad events.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};
use webhook_subscriptions::delivery::{prepare_event, PublishLimits, DEFAULT_MAX_BODY_BYTES};
use webhook_subscriptions::model::{Event, EventCatalogue, EventId, Organization};
use webhook_subscriptions::Error;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn organization() -> Organization {
    Organization::new(
        "a1b15dc2-bba8-48a8-a92e-852014a166e9".parse().unwrap(),
        "Your Org Name",
    )
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2023, 9, 15, 12, 0, 0).unwrap()
}

fn note_added_event() -> Event {
    let expected = fixture("event_payload_note_added.json");
    Event::new("ConversationNoteAdded", expected["data"].clone())
        .with_id("8967e0c6-fe64-4105-bf71-14ae0c256aa4".parse().unwrap())
        .with_timestamp(Utc.with_ymd_and_hms(2023, 9, 15, 12, 0, 0).unwrap())
}

fn prepare(event: Event) -> Result<webhook_subscriptions::storage::NewEvent, Error> {
    prepare_event(
        &EventCatalogue::default(),
        &PublishLimits::default(),
        &organization(),
        event,
        now(),
    )
}

fn invalid_event_message(
    result: Result<webhook_subscriptions::storage::NewEvent, Error>,
) -> String {
    match result {
        Err(Error::InvalidEvent(message)) => message,
        other => panic!("expected an invalid event error, got {other:?}"),
    }
}

#[test]
fn envelope_matches_the_note_added_fixture() {
    let prepared = prepare(note_added_event()).unwrap();
    let sent: Value = serde_json::from_slice(&prepared.payload).unwrap();
    assert_eq!(sent, fixture("event_payload_note_added.json"));
    assert_eq!(prepared.event_name, "ConversationNoteAdded");
    assert_eq!(prepared.organization_id, organization().id);
    assert_eq!(
        prepared.event_id,
        "8967e0c6-fe64-4105-bf71-14ae0c256aa4".parse().unwrap()
    );
    assert_eq!(prepared.published_at, now());
}

#[test]
fn envelope_bytes_match_the_logged_payload_in_field_order() {
    let logs = fixture("event_logs_response.json");
    let logged = logs["data"][0]["payload"].as_str().unwrap();
    let prepared = prepare(note_added_event()).unwrap();
    assert_eq!(std::str::from_utf8(&prepared.payload).unwrap(), logged);
}

#[test]
fn defaults_fill_id_timestamp_and_version() {
    let at = now() + chrono::Duration::microseconds(987_654);
    let prepared = prepare_event(
        &EventCatalogue::default(),
        &PublishLimits::default(),
        &organization(),
        Event::new("ConversationCreated", json!({"csid": 1})),
        at,
    )
    .unwrap();
    let sent: Value = serde_json::from_slice(&prepared.payload).unwrap();
    assert_eq!(sent["event_version"], "1");
    assert_eq!(sent["event_fqn"], "CONVERSATION_CREATED");
    assert_eq!(sent["event_timestamp"], "2023-09-15T12:00:00.987Z");
    let id: EventId = sent["event_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(id.as_uuid().get_version_num(), 4);
    assert_eq!(id, prepared.event_id);
    assert_eq!(
        sent["organization"],
        json!({"id": "a1b15dc2-bba8-48a8-a92e-852014a166e9", "name": "Your Org Name"})
    );
}

#[test]
fn a_given_version_is_kept() {
    let prepared = prepare(note_added_event().with_version("2")).unwrap();
    let sent: Value = serde_json::from_slice(&prepared.payload).unwrap();
    assert_eq!(sent["event_version"], "2");
}

#[test]
fn unknown_event_names_are_refused_with_the_allowed_list() {
    let message = invalid_event_message(prepare(Event::new("NoteAdded", json!({}))));
    assert!(message.contains("`NoteAdded`"), "{message}");
    assert!(message.contains("ConversationNoteAdded"), "{message}");
    assert!(message.contains("SLAEvaluationVoided"), "{message}");
    let full = Error::InvalidEvent(message).to_string();
    assert!(
        full.starts_with("Invalid event: unknown event name"),
        "{full}"
    );
}

#[test]
fn non_object_data_is_refused() {
    for data in [
        json!([1, 2]),
        json!("text"),
        json!(null),
        json!(3),
        json!(true),
    ] {
        let message = invalid_event_message(prepare(Event::new("ConversationOpen", data.clone())));
        assert!(
            message.contains("data must be a JSON object"),
            "{data}: {message}"
        );
    }
}

#[test]
fn empty_version_is_refused() {
    let message = invalid_event_message(prepare(note_added_event().with_version("")));
    assert!(message.contains("version"), "{message}");
}

/// The serialized size of an envelope whose data is `{"pad": "<n x's>"}`,
/// computed from an independently built JSON value.
fn envelope_len_with_padding(n: usize) -> usize {
    let envelope = json!({
        "event_id": "8967e0c6-fe64-4105-bf71-14ae0c256aa4",
        "event_fqn": "CONVERSATION_OPEN",
        "event_version": "1",
        "event_timestamp": "2023-09-15T12:00:00.000Z",
        "organization": {"id": "a1b15dc2-bba8-48a8-a92e-852014a166e9", "name": "Your Org Name"},
        "data": {"pad": "x".repeat(n)},
    });
    serde_json::to_vec(&envelope).unwrap().len()
}

fn padded_event(n: usize) -> Event {
    Event::new("ConversationOpen", json!({"pad": "x".repeat(n)}))
        .with_id("8967e0c6-fe64-4105-bf71-14ae0c256aa4".parse().unwrap())
        .with_timestamp(now())
}

#[test]
fn bodies_over_256_kib_are_refused_at_publish() {
    assert_eq!(DEFAULT_MAX_BODY_BYTES, 256 * 1024);
    let overhead = envelope_len_with_padding(0);
    let fits = 256 * 1024 - overhead;
    let prepared = prepare(padded_event(fits)).unwrap();
    assert_eq!(prepared.payload.len(), 256 * 1024);

    let message = invalid_event_message(prepare(padded_event(fits + 1)));
    assert!(message.contains("262145 bytes"), "{message}");
    assert!(message.contains("limit of 262144 bytes"), "{message}");

    let huge = invalid_event_message(prepare(padded_event(1024 * 1024)));
    assert!(huge.contains("limit"), "{huge}");
}

#[test]
fn the_size_cap_is_configurable() {
    let limits = PublishLimits::new(1024);
    let organization = organization();
    let catalogue = EventCatalogue::default();
    let overhead = envelope_len_with_padding(0);
    assert!(prepare_event(
        &catalogue,
        &limits,
        &organization,
        padded_event(1024 - overhead),
        now()
    )
    .is_ok());
    assert!(prepare_event(
        &catalogue,
        &limits,
        &organization,
        padded_event(1025 - overhead),
        now()
    )
    .is_err());
    let bigger = PublishLimits::new(1024 * 1024);
    assert!(prepare_event(
        &catalogue,
        &bigger,
        &organization,
        padded_event(512 * 1024),
        now()
    )
    .is_ok());
}
