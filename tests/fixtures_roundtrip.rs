//! Every request/response fixture deserializes into its type and serializes
//! back to equal JSON.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use webhook_subscriptions::model::{
    CreateWebhookSubscription, DataEnvelope, EventDeliveryStatus, EventEnvelope, EventLogEntry,
    PatchWebhookSubscription, WebhookSubscription,
};
use webhook_subscriptions::ErrorBody;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"))
}

fn assert_roundtrip<T: DeserializeOwned + Serialize>(name: &str) -> T {
    let original = fixture(name);
    let typed: T = serde_json::from_value(original.clone())
        .unwrap_or_else(|e| panic!("{name} does not deserialize: {e}"));
    let back = serde_json::to_value(&typed).expect("serializes");
    assert_eq!(back, original, "{name} does not round-trip");
    typed
}

#[test]
fn create_request_fixture_round_trips() {
    let request: CreateWebhookSubscription = assert_roundtrip("create_request.json");
    assert_eq!(
        request.events,
        ["ConversationCreated", "ConversationClosed"]
    );
}

#[test]
fn patch_request_fixture_round_trips() {
    let patch: PatchWebhookSubscription = assert_roundtrip("patch_request.json");
    assert_eq!(patch.name, Some(Some("New name".to_owned())));
    assert_eq!(patch.url, None, "absent field stays absent");
}

#[test]
fn create_response_fixture_round_trips() {
    let response: DataEnvelope<WebhookSubscription> = assert_roundtrip("create_response.json");
    assert_eq!(
        response.data.secret_key.to_hex(),
        "4f4a988b468e785965b780684bde5546c52aee658d76b4c33fb69c526ea4bdbc"
    );
}

#[test]
fn patch_response_fixture_round_trips() {
    assert_roundtrip::<DataEnvelope<WebhookSubscription>>("patch_response.json");
}

#[test]
fn list_response_fixture_round_trips() {
    assert_roundtrip::<DataEnvelope<Vec<WebhookSubscription>>>("list_response.json");
}

#[test]
fn delivery_status_response_fixture_round_trips() {
    assert_roundtrip::<DataEnvelope<Vec<EventDeliveryStatus>>>("delivery_status_response.json");
}

#[test]
fn event_logs_response_fixture_round_trips() {
    assert_roundtrip::<DataEnvelope<Vec<EventLogEntry>>>("event_logs_response.json");
}

#[test]
fn error_response_fixture_round_trips() {
    assert_roundtrip::<ErrorBody>("error_response.json");
}

#[test]
fn event_payload_fixture_round_trips() {
    assert_roundtrip::<EventEnvelope>("event_payload_note_added.json");
}

#[test]
fn event_envelope_serializes_in_wire_order() {
    // The logged payload string in the fixture is the exact body that was sent.
    let logs = fixture("event_logs_response.json");
    let sent = logs["data"][0]["payload"].as_str().expect("payload string");
    let envelope: EventEnvelope = serde_json::from_str(sent).expect("payload parses");
    assert_eq!(serde_json::to_string(&envelope).expect("serializes"), sent);
}

#[test]
fn patch_tells_null_from_absent() {
    let patch: PatchWebhookSubscription =
        serde_json::from_str(r#"{"name": null}"#).expect("parses");
    assert_eq!(patch.name, Some(None));
    assert_eq!(patch.events, None);
}

#[test]
fn unknown_fields_are_refused_by_name() {
    let err = serde_json::from_str::<CreateWebhookSubscription>(
        r#"{"name": "a", "url": "https://example.com", "colour": "red"}"#,
    )
    .expect_err("unknown field");
    assert!(err.to_string().contains("colour"), "{err}");
    let err = serde_json::from_str::<PatchWebhookSubscription>(r#"{"nmae": "a"}"#)
        .expect_err("unknown field");
    assert!(err.to_string().contains("nmae"), "{err}");
}

#[test]
fn secret_key_debug_is_redacted() {
    let response: DataEnvelope<WebhookSubscription> =
        serde_json::from_value(fixture("create_response.json")).expect("parses");
    let debug = format!("{:?}", response.data);
    assert!(!debug.contains("4f4a988b"), "{debug}");
}
