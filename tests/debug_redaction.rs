//! `Debug` output never shows credentials, custom header values or secret
//! keys: each type that holds them is formatted with known secrets, and none
//! of them may appear.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{TimeZone, Utc};
use webhook_subscriptions::model::{
    Authorization, CreateWebhookSubscription, DeliveryId, EventId, OrganizationId,
    PatchWebhookSubscription, SecretKey, SubscriptionId, UserId, WebhookSubscription,
};
use webhook_subscriptions::storage::{ClaimedDelivery, Delivery, DeliveryState, Lease};
use webhook_subscriptions::validate::Validator;

const PASSWORD: &str = "hunter2-password";
const TOKEN: &str = "tok-0123456789";
const HEADER_VALUE: &str = "custom-header-secret";
/// The secret key's bytes, and their hex form as the API shows it.
const KEY: [u8; 32] = [0xab; 32];

fn secrets() -> Vec<String> {
    vec![
        PASSWORD.to_owned(),
        TOKEN.to_owned(),
        HEADER_VALUE.to_owned(),
        SecretKey::from_bytes(KEY).to_hex(),
        // The Basic header value is base64 of `user:password`.
        Authorization::BasicAuth {
            username: "user".to_owned(),
            password: PASSWORD.to_owned(),
        }
        .header_value()
        .expect("basic header"),
    ]
}

fn assert_redacted(what: &str, debug: String) {
    for secret in secrets() {
        assert!(!debug.contains(&secret), "{what} shows {secret}: {debug}");
    }
    assert!(debug.contains("<redacted>"), "{what}: {debug}");
}

fn custom_headers() -> BTreeMap<String, String> {
    BTreeMap::from([("X-Api-Key".to_owned(), HEADER_VALUE.to_owned())])
}

fn basic() -> Authorization {
    Authorization::BasicAuth {
        username: "user".to_owned(),
        password: PASSWORD.to_owned(),
    }
}

fn subscription() -> WebhookSubscription {
    let at = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let user = UserId::new_v4();
    let mut headers = custom_headers();
    headers.insert(
        "Authorization".to_owned(),
        basic().header_value().expect("basic"),
    );
    WebhookSubscription {
        id: SubscriptionId::new_v4(),
        name: "n".to_owned(),
        url: "https://example.com/hook".to_owned(),
        subscribed_events: vec!["ConversationCreated".to_owned()],
        headers,
        secret_key: SecretKey::from_bytes(KEY),
        enabled: true,
        created_at: at,
        created_by: user,
        updated_at: at,
        updated_by: user,
        filters: None,
        previous_secret: None,
    }
}

fn delivery_to(subscription: &WebhookSubscription) -> Delivery {
    Delivery {
        id: DeliveryId::new_v4(),
        organization_id: OrganizationId::new_v4(),
        subscription_id: subscription.id,
        event_id: EventId::new_v4(),
        event_name: "ConversationCreated".to_owned(),
        payload: Bytes::from_static(b"{}"),
        attempts: 0,
        due_at: subscription.created_at,
        state: DeliveryState::Leased,
    }
}

fn create_request(authorization: Authorization) -> CreateWebhookSubscription {
    let mut request = CreateWebhookSubscription::new("n", "https://example.com/hook");
    request.authorization = authorization;
    request.custom_headers = custom_headers();
    request
}

#[test]
fn subscriptions_and_claimed_deliveries_hide_headers_and_the_secret() {
    let subscription = subscription();
    assert_redacted("WebhookSubscription", format!("{subscription:?}"));
    assert_redacted("WebhookSubscription (pretty)", format!("{subscription:#?}"));

    let at = subscription.created_at;
    let claimed = ClaimedDelivery {
        delivery: delivery_to(&subscription),
        subscription: Arc::new(subscription),
        lease: Lease {
            delivery_id: DeliveryId::new_v4(),
            token: uuid::Uuid::new_v4(),
            expires_at: at,
        },
    };
    assert_redacted("ClaimedDelivery", format!("{claimed:?}"));
}

#[test]
fn requests_and_validated_requests_hide_credentials_and_header_values() {
    let validator = Validator::default();
    for authorization in [
        basic(),
        Authorization::TokenAuth {
            value: TOKEN.to_owned(),
        },
    ] {
        let request = create_request(authorization.clone());
        assert_redacted("CreateWebhookSubscription", format!("{request:?}"));
        let valid = validator.validate_create(&request).expect("valid");
        assert_redacted("ValidCreate", format!("{valid:?}"));

        let patch = PatchWebhookSubscription {
            authorization: Some(Some(authorization)),
            custom_headers: Some(Some(custom_headers())),
            ..PatchWebhookSubscription::default()
        };
        assert_redacted("PatchWebhookSubscription", format!("{patch:?}"));
        let change = validator
            .validate_patch(&patch, Utc::now(), UserId::new_v4())
            .expect("valid");
        assert_redacted("SubscriptionChange", format!("{change:?}"));
    }
}

#[cfg(feature = "runtime-tokio")]
#[test]
fn delivery_requests_hide_every_subscription_header() {
    use webhook_subscriptions::delivery::build_request;
    use webhook_subscriptions::signature::SignatureScheme;

    let subscription = subscription();
    let delivery = delivery_to(&subscription);
    let request = build_request(
        &SignatureScheme::default(),
        &subscription,
        &delivery,
        subscription.created_at,
    )
    .expect("request");
    let debug = format!("{request:?}");
    for secret in secrets() {
        assert!(!debug.contains(&secret), "request shows {secret}: {debug}");
    }
}
