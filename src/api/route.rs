//! The route table and path matching: which operation a method and path name.

use std::borrow::Cow;

use http::Method;

/// The path parameter naming a subscription.
pub(crate) const SUBSCRIPTION_ID_PARAM: &str = "webhookSubscriptionId";
/// The path parameter naming an event in the logs route.
pub(crate) const EVENT_PARAM: &str = "event";
/// The path parameter naming a failed delivery.
pub(crate) const DELIVERY_ID_PARAM: &str = "deliveryId";

/// One operation the handler serves, for documentation and route listings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Route {
    /// The HTTP method.
    pub method: Method,
    /// The path template under the configured base path, with parameters in
    /// braces (`/v1/webhooks/{webhookSubscriptionId}`), as in `openapi.yaml`.
    pub path: String,
    /// The operation's `operationId` in `openapi.yaml`.
    pub operation_id: &'static str,
}

/// The path shapes under the base path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    /// `{base}`
    Collection,
    /// `{base}/{webhookSubscriptionId}`
    Subscription,
    /// `{base}/{webhookSubscriptionId}/delivery-status`
    DeliveryStatus,
    /// `{base}/{webhookSubscriptionId}/delivery-status/logs/{event}`
    EventLogs,
    /// `{base}/{webhookSubscriptionId}/failed-deliveries`
    FailedDeliveries,
    /// `{base}/{webhookSubscriptionId}/failed-deliveries/redeliver`
    RedeliverFailedSince,
    /// `{base}/{webhookSubscriptionId}/failed-deliveries/{deliveryId}/redeliver`
    RedeliverFailed,
    /// `{base}/{webhookSubscriptionId}/test-event`
    TestEvent,
    /// `{base}/{webhookSubscriptionId}/rotate-secret`
    RotateSecret,
}

impl Resource {
    fn template(self) -> &'static str {
        match self {
            Resource::Collection => "",
            Resource::Subscription => "/{webhookSubscriptionId}",
            Resource::DeliveryStatus => "/{webhookSubscriptionId}/delivery-status",
            Resource::EventLogs => "/{webhookSubscriptionId}/delivery-status/logs/{event}",
            Resource::FailedDeliveries => "/{webhookSubscriptionId}/failed-deliveries",
            Resource::RedeliverFailedSince => {
                "/{webhookSubscriptionId}/failed-deliveries/redeliver"
            }
            Resource::RedeliverFailed => {
                "/{webhookSubscriptionId}/failed-deliveries/{deliveryId}/redeliver"
            }
            Resource::TestEvent => "/{webhookSubscriptionId}/test-event",
            Resource::RotateSecret => "/{webhookSubscriptionId}/rotate-secret",
        }
    }

    /// The operation `method` selects on this resource, if any.
    pub(crate) fn operation(self, method: &Method) -> Option<Op> {
        Op::ALL
            .into_iter()
            .find(|op| op.resource() == self && op.method() == method)
    }

    /// The `Allow` header value for this resource.
    pub(crate) fn allow(self) -> String {
        Op::ALL
            .into_iter()
            .filter(|op| op.resource() == self)
            .map(|op| op.method().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Every operation served: subscription management, delivery statuses and
/// logs, then replay, test events and secret rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Create,
    List,
    Get,
    Patch,
    Delete,
    DeliveryStatuses,
    EventLogs,
    ListFailedDeliveries,
    RedeliverFailedSince,
    RedeliverFailed,
    SendTestEvent,
    RotateSecret,
}

impl Op {
    pub(crate) const ALL: [Op; 12] = [
        Op::Create,
        Op::List,
        Op::Get,
        Op::Patch,
        Op::Delete,
        Op::DeliveryStatuses,
        Op::EventLogs,
        Op::ListFailedDeliveries,
        Op::RedeliverFailedSince,
        Op::RedeliverFailed,
        Op::SendTestEvent,
        Op::RotateSecret,
    ];

    fn method(self) -> Method {
        match self {
            Op::Create
            | Op::RedeliverFailedSince
            | Op::RedeliverFailed
            | Op::SendTestEvent
            | Op::RotateSecret => Method::POST,
            Op::List
            | Op::Get
            | Op::DeliveryStatuses
            | Op::EventLogs
            | Op::ListFailedDeliveries => Method::GET,
            Op::Patch => Method::PATCH,
            Op::Delete => Method::DELETE,
        }
    }

    fn resource(self) -> Resource {
        match self {
            Op::Create | Op::List => Resource::Collection,
            Op::Get | Op::Patch | Op::Delete => Resource::Subscription,
            Op::DeliveryStatuses => Resource::DeliveryStatus,
            Op::EventLogs => Resource::EventLogs,
            Op::ListFailedDeliveries => Resource::FailedDeliveries,
            Op::RedeliverFailedSince => Resource::RedeliverFailedSince,
            Op::RedeliverFailed => Resource::RedeliverFailed,
            Op::SendTestEvent => Resource::TestEvent,
            Op::RotateSecret => Resource::RotateSecret,
        }
    }

    fn operation_id(self) -> &'static str {
        match self {
            Op::Create => "createWebhookSubscription",
            Op::List => "listWebhookSubscriptions",
            Op::Get => "getWebhookSubscription",
            Op::Patch => "patchWebhookSubscription",
            Op::Delete => "deleteWebhookSubscription",
            Op::DeliveryStatuses => "getDeliveryStatuses",
            Op::EventLogs => "getEventLogs",
            Op::ListFailedDeliveries => "listFailedDeliveries",
            Op::RedeliverFailedSince => "redeliverFailedDeliveries",
            Op::RedeliverFailed => "redeliverFailedDelivery",
            Op::SendTestEvent => "sendTestEvent",
            Op::RotateSecret => "rotateSecret",
        }
    }

    pub(crate) fn route(self, base_path: &str) -> Route {
        let mut path = format!("{base_path}{}", self.resource().template());
        if path.is_empty() {
            path.push('/');
        }
        Route {
            method: self.method(),
            path,
            operation_id: self.operation_id(),
        }
    }
}

/// A matched path: the resource and its raw (still percent-encoded) parameters.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PathMatch<'a> {
    pub(crate) resource: Resource,
    pub(crate) subscription_id: Option<&'a str>,
    pub(crate) event: Option<&'a str>,
    pub(crate) delivery_id: Option<&'a str>,
}

/// Matches `path` (as sent, percent-encoded) against the routes under `base`
/// (its segments, literal). One trailing slash is ignored, so
/// `/v1/webhooks/` is `/v1/webhooks`; empty segments elsewhere match nothing.
pub(crate) fn match_path<'a>(base: &[String], path: &'a str) -> Option<PathMatch<'a>> {
    let rest = path.strip_prefix('/')?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let mut segments: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('/').collect()
    };
    if segments.len() < base.len()
        || !base
            .iter()
            .zip(&segments)
            .all(|(literal, raw)| segment_is(raw, literal))
    {
        return None;
    }
    let tail = segments.split_off(base.len());
    let mut delivery_id = None;
    let (resource, subscription_id, event) = match tail.as_slice() {
        [] => (Resource::Collection, None, None),
        [id] => (Resource::Subscription, Some(*id), None),
        [id, status] if segment_is(status, "delivery-status") => {
            (Resource::DeliveryStatus, Some(*id), None)
        }
        [id, status, logs, event]
            if segment_is(status, "delivery-status") && segment_is(logs, "logs") =>
        {
            (Resource::EventLogs, Some(*id), Some(*event))
        }
        [id, action] => {
            let resource = if segment_is(action, "failed-deliveries") {
                Resource::FailedDeliveries
            } else if segment_is(action, "test-event") {
                Resource::TestEvent
            } else if segment_is(action, "rotate-secret") {
                Resource::RotateSecret
            } else {
                return None;
            };
            (resource, Some(*id), None)
        }
        [id, failed, redeliver]
            if segment_is(failed, "failed-deliveries") && segment_is(redeliver, "redeliver") =>
        {
            (Resource::RedeliverFailedSince, Some(*id), None)
        }
        [id, failed, delivery, redeliver]
            if segment_is(failed, "failed-deliveries") && segment_is(redeliver, "redeliver") =>
        {
            delivery_id = Some(*delivery);
            (Resource::RedeliverFailed, Some(*id), None)
        }
        _ => return None,
    };
    if [subscription_id, event, delivery_id]
        .iter()
        .any(|param| param.is_some_and(str::is_empty))
    {
        return None;
    }
    Some(PathMatch {
        resource,
        subscription_id,
        event,
        delivery_id,
    })
}

fn segment_is(raw: &str, literal: &str) -> bool {
    percent_decode(raw).is_some_and(|decoded| decoded == literal)
}

/// Decodes `%XX` escapes in one path segment; `None` if the result is not
/// UTF-8. A `%` not followed by two hex digits is kept as is.
pub(crate) fn percent_decode(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.contains('%') {
        return Some(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&hi), Some(&lo)) => hex_digit(hi).zip(hex_digit(lo)),
            _ => None,
        };
        match escaped {
            Some((hi, lo)) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

fn hex_digit(c: u8) -> Option<u8> {
    char::from(c)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<String> {
        vec!["v1".to_owned(), "webhooks".to_owned()]
    }

    #[test]
    fn trailing_slash_is_ignored_once() {
        let collection = match_path(&base(), "/v1/webhooks/").map(|m| m.resource);
        assert_eq!(collection, Some(Resource::Collection));
        let item = match_path(&base(), "/v1/webhooks/abc/").map(|m| m.resource);
        assert_eq!(item, Some(Resource::Subscription));
        assert_eq!(match_path(&base(), "/v1/webhooks//"), None);
    }

    #[test]
    fn empty_segments_match_nothing() {
        assert_eq!(match_path(&base(), "/v1//webhooks"), None);
        assert_eq!(match_path(&base(), "/v1/webhooks//delivery-status"), None);
        assert_eq!(
            match_path(&base(), "/v1/webhooks/x/delivery-status/logs/"),
            None
        );
    }

    #[test]
    fn literal_segments_may_be_percent_encoded() {
        let m = match_path(&base(), "/v1/%77ebhooks/id/delivery%2Dstatus/logs/Ev");
        assert_eq!(
            m,
            Some(PathMatch {
                resource: Resource::EventLogs,
                subscription_id: Some("id"),
                event: Some("Ev"),
                delivery_id: None,
            })
        );
    }

    #[test]
    fn other_prefixes_and_shapes_do_not_match() {
        assert_eq!(match_path(&base(), "/v1/webhook"), None);
        assert_eq!(match_path(&base(), "/v2/webhooks"), None);
        assert_eq!(match_path(&base(), "v1/webhooks"), None);
        assert_eq!(match_path(&base(), "/v1/webhooks/id/logs"), None);
        assert_eq!(
            match_path(&base(), "/v1/webhooks/id/delivery-status/x"),
            None
        );
    }

    #[test]
    fn percent_decode_handles_escapes_and_stray_percents() {
        assert_eq!(percent_decode("a%20b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("%E2%98%83").as_deref(), Some("☃"));
        assert_eq!(percent_decode("100%").as_deref(), Some("100%"));
        assert_eq!(percent_decode("%zz%4").as_deref(), Some("%zz%4"));
        assert_eq!(percent_decode("%FF"), None);
    }

    #[test]
    fn allow_lists_the_resource_methods() {
        assert_eq!(Resource::Collection.allow(), "POST, GET");
        assert_eq!(Resource::Subscription.allow(), "GET, PATCH, DELETE");
        assert_eq!(Resource::EventLogs.allow(), "GET");
    }
}
