//! `openapi.yaml` describes exactly what the handler serves: the same
//! operations, the context headers, the statuses each operation can answer,
//! and schemas the fixtures satisfy.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{json, Value};
use webhook_subscriptions::api::ApiHandler;
use webhook_subscriptions::model::CONVERSATION_EVENTS;
use webhook_subscriptions::storage::MemoryStore;
use webhook_subscriptions::WebhookService;

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml");
    let text = std::fs::read_to_string(path).expect("openapi.yaml");
    serde_norway::from_str(&text).expect("openapi.yaml is YAML")
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn handler() -> ApiHandler {
    ApiHandler::new(WebhookService::builder(Arc::new(MemoryStore::new())).build())
}

/// Every (method, path template, operation) of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut out = Vec::new();
    for (path, item) in paths {
        for (key, operation) in item.as_object().expect("path item") {
            if METHODS.contains(&key.as_str()) {
                out.push((key.to_uppercase(), path.clone(), operation.clone()));
            }
        }
    }
    out
}

/// Follows a local `$ref` (`#/components/...`), or returns `value` itself.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("non-local $ref {reference}"));
            let target = doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {reference}"));
            resolve(doc, target)
        }
        None => value,
    }
}

/// The parameters of an operation, its path item's included.
fn parameters(doc: &Value, path: &str, operation: &Value) -> Vec<Value> {
    let shared = doc["paths"][path]["parameters"].as_array().cloned();
    let own = operation["parameters"].as_array().cloned();
    shared
        .into_iter()
        .chain(own)
        .flatten()
        .map(|p| resolve(doc, &p).clone())
        .collect()
}

#[test]
fn the_documented_operations_are_the_handlers_routes() {
    let doc = document();
    let documented: BTreeSet<(String, String, String)> = operations(&doc)
        .into_iter()
        .map(|(method, path, op)| {
            let id = op["operationId"].as_str().expect("operationId").to_owned();
            (method, path, id)
        })
        .collect();
    let served: BTreeSet<(String, String, String)> = handler()
        .routes()
        .into_iter()
        .map(|r| (r.method.to_string(), r.path, r.operation_id.to_owned()))
        .collect();
    assert_eq!(documented, served);
    assert_eq!(served.len(), 12);
}

#[test]
fn the_document_is_openapi_3_1_with_local_references_only() {
    let doc = document();
    assert_eq!(doc["openapi"], json!("3.1.0"));
    fn check_refs(doc: &Value, value: &Value) {
        match value {
            Value::Object(map) => {
                if map.contains_key("$ref") {
                    resolve(doc, value);
                }
                map.values().for_each(|v| check_refs(doc, v));
            }
            Value::Array(items) => items.iter().for_each(|v| check_refs(doc, v)),
            _ => {}
        }
    }
    check_refs(&doc, &doc);
}

#[test]
fn every_operation_requires_the_context_headers() {
    let doc = document();
    for (method, path, operation) in operations(&doc) {
        let params = parameters(&doc, &path, &operation);
        for header in ["X-Organization-Id", "X-User-Id"] {
            let param = params
                .iter()
                .find(|p| p["in"] == "header" && p["name"] == header)
                .unwrap_or_else(|| panic!("{method} {path} lacks {header}"));
            assert_eq!(param["required"], json!(true), "{method} {path} {header}");
            assert_eq!(resolve(&doc, &param["schema"])["format"], json!("uuid"));
        }
        // Every `{name}` in the template is a required path parameter.
        for name in path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        {
            assert!(
                params
                    .iter()
                    .any(|p| p["in"] == "path" && p["name"] == name && p["required"] == true),
                "{method} {path} lacks path parameter {name}"
            );
        }
    }
}

#[test]
fn every_operation_documents_the_statuses_it_can_answer() {
    let doc = document();
    for (method, path, operation) in operations(&doc) {
        let id = operation["operationId"].as_str().expect("operationId");
        let statuses: BTreeSet<&str> = operation["responses"]
            .as_object()
            .expect("responses")
            .keys()
            .map(String::as_str)
            .collect();
        let success = match id {
            "createWebhookSubscription" => "201",
            "deleteWebhookSubscription" => "204",
            "redeliverFailedDeliveries" | "redeliverFailedDelivery" | "sendTestEvent" => "202",
            _ => "200",
        };
        let mut expected: BTreeSet<&str> = [success, "400", "500"].into();
        if path.contains("{webhookSubscriptionId}") {
            expected.insert("404");
        }
        if operation.get("requestBody").is_some() {
            expected.extend(["413", "415"]);
        }
        if id == "createWebhookSubscription" {
            // The per-organization subscription limit.
            expected.insert("409");
        }
        assert_eq!(statuses, expected, "{method} {path}");
        for (status, response) in operation["responses"].as_object().expect("responses") {
            let response = resolve(&doc, response);
            let content = &response["content"];
            if status == "204" {
                assert!(content.is_null(), "204 has no body");
            } else {
                assert!(
                    content["application/json"]["schema"].is_object(),
                    "{method} {path} {status} has a JSON body"
                );
            }
        }
    }
}

#[test]
fn the_event_name_enum_is_the_default_catalogue() {
    let doc = document();
    let names: Vec<&str> = doc["components"]["schemas"]["EventName"]["enum"]
        .as_array()
        .expect("enum")
        .iter()
        .map(|v| v.as_str().expect("name"))
        .collect();
    assert_eq!(names, CONVERSATION_EVENTS);
}

/// The JSON schema of the `status` response of `operation_id`.
fn response_schema<'a>(doc: &'a Value, operation_id: &str, status: &str) -> &'a Value {
    let operation = doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .filter_map(Value::as_object)
        .flat_map(|item| item.iter())
        .find(|(key, op)| METHODS.contains(&key.as_str()) && op["operationId"] == operation_id)
        .map(|(_, op)| op)
        .unwrap_or_else(|| panic!("no operation {operation_id}"));
    &resolve(doc, &operation["responses"][status])["content"]["application/json"]["schema"]
}

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    &doc["components"]["schemas"][name]
}

#[test]
fn the_fixtures_satisfy_the_schemas() {
    let doc = document();
    let cases = [
        (
            schema(&doc, "CreateWebhookSubscription"),
            "create_request.json",
        ),
        (
            schema(&doc, "PatchWebhookSubscription"),
            "patch_request.json",
        ),
        (
            response_schema(&doc, "createWebhookSubscription", "201"),
            "create_response.json",
        ),
        (
            response_schema(&doc, "listWebhookSubscriptions", "200"),
            "list_response.json",
        ),
        (
            response_schema(&doc, "patchWebhookSubscription", "200"),
            "patch_response.json",
        ),
        (
            response_schema(&doc, "getDeliveryStatuses", "200"),
            "delivery_status_response.json",
        ),
        (
            response_schema(&doc, "getEventLogs", "200"),
            "event_logs_response.json",
        ),
        (
            response_schema(&doc, "createWebhookSubscription", "400"),
            "error_response.json",
        ),
    ];
    for (schema, name) in cases {
        let errors = validate(&doc, schema, &fixture(name));
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
}

#[test]
fn the_schemas_refuse_what_the_handler_refuses() {
    let doc = document();
    let create = schema(&doc, "CreateWebhookSubscription");
    let patch = schema(&doc, "PatchWebhookSubscription");
    let subscription = response_schema(&doc, "getWebhookSubscription", "200");

    let mut unknown_field = fixture("create_request.json");
    unknown_field["colour"] = json!("red");
    let mut duplicate_events = fixture("create_request.json");
    duplicate_events["events"] = json!(["ConversationCreated", "ConversationCreated"]);
    let mut unknown_auth = fixture("create_request.json");
    unknown_auth["authorization"] = json!({"_type": "Magic"});
    let mut no_url = fixture("create_request.json");
    no_url.as_object_mut().expect("object").remove("url");
    for (what, value) in [
        ("unknown field", &unknown_field),
        ("duplicate events", &duplicate_events),
        ("unknown authorization", &unknown_auth),
        ("missing url", &no_url),
    ] {
        assert!(!validate(&doc, create, value).is_empty(), "{what} passed");
    }
    for null_field in [
        "name",
        "url",
        "events",
        "authorization",
        "customHeaders",
        "enabled",
    ] {
        let value = json!({ null_field: null });
        assert!(
            !validate(&doc, patch, &value).is_empty(),
            "null {null_field} passed"
        );
    }
    let mut no_id = fixture("create_response.json");
    no_id["data"].as_object_mut().expect("object").remove("id");
    let mut bad_secret = fixture("create_response.json");
    bad_secret["data"]["secretKey"] = json!(42);
    let mut bad_time = fixture("create_response.json");
    bad_time["data"]["createdAt"] = json!("yesterday");
    for (what, value) in [
        ("missing id", &no_id),
        ("non-string secret", &bad_secret),
        ("malformed time", &bad_time),
    ] {
        assert!(
            !validate(&doc, subscription, value).is_empty(),
            "{what} passed"
        );
    }
}

/// A small JSON Schema checker for the keywords `openapi.yaml` uses. It
/// refuses keywords it does not know, so nothing is silently skipped;
/// `pattern` is the one it does not check (no regex engine here).
fn validate(doc: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(doc, schema, value, "$", &mut errors);
    errors
}

fn check(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    let Some(keywords) = schema.as_object() else {
        panic!("schema at {at} is not an object: {schema}");
    };
    for (keyword, rule) in keywords {
        match keyword.as_str() {
            "description" | "default" | "discriminator" | "title" | "examples" | "pattern"
            | "$ref" => {}
            "type" => {
                let ok = match rule.as_str() {
                    Some("object") => value.is_object(),
                    Some("array") => value.is_array(),
                    Some("string") => value.is_string(),
                    Some("boolean") => value.is_boolean(),
                    Some("integer") => value.is_i64() || value.is_u64(),
                    Some("number") => value.is_number(),
                    Some("null") => value.is_null(),
                    _ => panic!("unsupported type {rule}"),
                };
                if !ok {
                    errors.push(format!("{at}: expected {rule}, got {value}"));
                }
            }
            "const" if value != rule => errors.push(format!("{at}: expected {rule}")),
            "enum" if !rule.as_array().is_some_and(|v| v.contains(value)) => {
                errors.push(format!("{at}: {value} is not in the enum"));
            }
            "const" | "enum" => {}
            "format" => {
                if let Some(text) = value.as_str() {
                    let ok = match rule.as_str() {
                        Some("uuid") => is_uuid(text),
                        Some("date-time") => chrono::DateTime::parse_from_rfc3339(text).is_ok(),
                        _ => panic!("unsupported format {rule}"),
                    };
                    if !ok {
                        errors.push(format!("{at}: {text} is not a {rule}"));
                    }
                }
            }
            "minLength" | "maxLength" => {
                if let (Some(text), Some(limit)) = (value.as_str(), rule.as_u64()) {
                    let chars = text.chars().count() as u64;
                    if (keyword == "minLength" && chars < limit)
                        || (keyword == "maxLength" && chars > limit)
                    {
                        errors.push(format!("{at}: {keyword} {limit}, got {chars}"));
                    }
                }
            }
            "minimum" | "maximum" => {
                if let (Some(n), Some(limit)) = (value.as_f64(), rule.as_f64()) {
                    if (keyword == "minimum" && n < limit) || (keyword == "maximum" && n > limit) {
                        errors.push(format!("{at}: {keyword} {limit}, got {n}"));
                    }
                }
            }
            "required" => {
                if let Some(object) = value.as_object() {
                    for name in rule.as_array().expect("required list") {
                        let name = name.as_str().expect("required name");
                        if !object.contains_key(name) {
                            errors.push(format!("{at}: missing {name}"));
                        }
                    }
                }
            }
            "properties" => {
                if let Some(object) = value.as_object() {
                    for (name, property) in rule.as_object().expect("properties") {
                        if let Some(v) = object.get(name) {
                            check(doc, property, v, &format!("{at}.{name}"), errors);
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(object) = value.as_object() {
                    let declared = keywords.get("properties").and_then(Value::as_object);
                    for (name, v) in object {
                        if declared.is_some_and(|d| d.contains_key(name)) {
                            continue;
                        }
                        match rule {
                            Value::Bool(false) => {
                                errors.push(format!("{at}: unexpected property {name}"));
                            }
                            Value::Bool(true) => {}
                            _ => check(doc, rule, v, &format!("{at}.{name}"), errors),
                        }
                    }
                }
            }
            "propertyNames" => {
                if let Some(object) = value.as_object() {
                    for name in object.keys() {
                        check(doc, rule, &json!(name), &format!("{at}[{name}]"), errors);
                    }
                }
            }
            "maxProperties" => {
                if let (Some(object), Some(limit)) = (value.as_object(), rule.as_u64()) {
                    if object.len() as u64 > limit {
                        errors.push(format!("{at}: more than {limit} properties"));
                    }
                }
            }
            "items" => {
                if let Some(items) = value.as_array() {
                    for (i, item) in items.iter().enumerate() {
                        check(doc, rule, item, &format!("{at}[{i}]"), errors);
                    }
                }
            }
            "uniqueItems" => {
                if let (Some(items), Some(true)) = (value.as_array(), rule.as_bool()) {
                    let distinct: BTreeSet<String> = items.iter().map(Value::to_string).collect();
                    if distinct.len() != items.len() {
                        errors.push(format!("{at}: items are not unique"));
                    }
                }
            }
            "allOf" => {
                for part in rule.as_array().expect("allOf list") {
                    check(doc, part, value, at, errors);
                }
            }
            "oneOf" => {
                let matching = rule
                    .as_array()
                    .expect("oneOf list")
                    .iter()
                    .filter(|part| validate(doc, part, value).is_empty())
                    .count();
                if matching != 1 {
                    errors.push(format!("{at}: matches {matching} of oneOf"));
                }
            }
            other => panic!("the test's schema checker does not know `{other}` (at {at})"),
        }
    }
}

fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}
