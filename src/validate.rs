//! Request validation (SPEC 1-2): pure functions that turn a create or patch
//! request into checked values, reporting every problem with the field it is in.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::error::{Error, Operation, Result, ValidationErrors};
use crate::model::{
    Authorization, CreateWebhookSubscription, EventCatalogue, PatchWebhookSubscription,
    SubscriptionChange, UserId, AUTHORIZATION_HEADER, TEST_EVENT,
};

/// Longest accepted subscription name, in characters after trimming.
pub const MAX_NAME_CHARS: usize = 255;
/// Longest accepted URL, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// Most custom headers per subscription.
pub const MAX_CUSTOM_HEADERS: usize = 32;
/// Longest custom header name, in bytes.
pub const MAX_HEADER_NAME_BYTES: usize = 256;
/// Longest custom header value, in bytes.
pub const MAX_HEADER_VALUE_BYTES: usize = 4096;
/// Longest credential (username, password or token), in bytes.
pub const MAX_CREDENTIAL_BYTES: usize = 4096;

/// Header names no custom header may use (compared case-insensitively), on
/// top of the signature scheme's own headers.
pub const ALWAYS_RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    "user-agent",
];

/// A checked create request, ready to become a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ValidCreate {
    /// Trimmed name.
    pub name: String,
    /// The URL as given.
    pub url: String,
    /// Event names (catalogue members, no duplicates, request order).
    pub events: Vec<String>,
    /// `Authorization` (if any) plus the custom headers.
    pub headers: BTreeMap<String, String>,
    /// Whether deliveries start enabled.
    pub enabled: bool,
}

/// Validates requests against an event catalogue and a set of reserved headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validator {
    catalogue: EventCatalogue,
    /// Lowercase names refused as custom headers.
    reserved_headers: BTreeSet<String>,
}

impl Validator {
    /// A validator for `catalogue` that reserves [`ALWAYS_RESERVED_HEADERS`]
    /// plus `scheme_headers` (the signature scheme's header names).
    pub fn new<I, S>(catalogue: EventCatalogue, scheme_headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let reserved_headers = ALWAYS_RESERVED_HEADERS
            .iter()
            .map(|s| (*s).to_owned())
            .chain(
                scheme_headers
                    .into_iter()
                    .map(|s| s.as_ref().to_ascii_lowercase()),
            )
            .collect();
        Self {
            catalogue,
            reserved_headers,
        }
    }

    /// The catalogue event names are checked against.
    pub fn catalogue(&self) -> &EventCatalogue {
        &self.catalogue
    }

    /// Checks a create request; on failure the error lists every problem.
    pub fn validate_create(&self, request: &CreateWebhookSubscription) -> Result<ValidCreate> {
        let mut errors = ValidationErrors::default();
        let name = check_name(&request.name, &mut errors);
        check_url(&request.url, &mut errors);
        self.check_events(&request.events, &mut errors);
        let authorization = check_authorization(&request.authorization, &mut errors);
        self.check_custom_headers(&request.custom_headers, &mut errors);
        errors.into_result(Operation::Creation)?;

        let mut headers = request.custom_headers.clone();
        if let Some(value) = authorization {
            headers.insert(AUTHORIZATION_HEADER.to_owned(), value);
        }
        Ok(ValidCreate {
            name,
            url: request.url.clone(),
            events: request.events.clone(),
            headers,
            enabled: request.enabled,
        })
    }

    /// Checks a patch request and turns it into the change to apply, stamped
    /// with `updated_at` and `updated_by`.
    pub fn validate_patch(
        &self,
        request: &PatchWebhookSubscription,
        updated_at: DateTime<Utc>,
        updated_by: UserId,
    ) -> Result<SubscriptionChange> {
        let mut errors = ValidationErrors::default();
        let mut change = SubscriptionChange::touch(updated_at, updated_by);
        if let Some(name) = present(&request.name, "name", &mut errors) {
            change.name = Some(check_name(name, &mut errors));
        }
        if let Some(url) = present(&request.url, "url", &mut errors) {
            check_url(url, &mut errors);
            change.url = Some(url.clone());
        }
        if let Some(events) = present(&request.events, "events", &mut errors) {
            self.check_events(events, &mut errors);
            change.events = Some(events.clone());
        }
        if let Some(auth) = present(&request.authorization, "authorization", &mut errors) {
            change.authorization_header = Some(check_authorization(auth, &mut errors));
        }
        if let Some(headers) = present(&request.custom_headers, "customHeaders", &mut errors) {
            self.check_custom_headers(headers, &mut errors);
            change.custom_headers = Some(headers.clone());
        }
        if let Some(enabled) = present(&request.enabled, "enabled", &mut errors) {
            change.enabled = Some(*enabled);
        }
        errors.into_result(Operation::Patching)?;
        Ok(change)
    }

    /// Checks an event name taken from a URL path (`parameter` names it in
    /// the error): a catalogue name, or [`TEST_EVENT`] whose attempts are
    /// logged too.
    pub fn validate_event_parameter(&self, parameter: &str, event: &str) -> Result<()> {
        if self.catalogue.contains(event) || event == TEST_EVENT {
            Ok(())
        } else {
            Err(Error::InvalidPathParameter {
                parameter: parameter.to_owned(),
                detail: format!(
                    "unknown event `{}`; allowed values: {}",
                    printable(event),
                    self.catalogue.allowed_list()
                ),
            })
        }
    }

    fn check_events(&self, events: &[String], errors: &mut ValidationErrors) {
        let mut seen = BTreeSet::new();
        for (i, event) in events.iter().enumerate() {
            let field = format!("events[{i}]");
            if !self.catalogue.contains(event) {
                errors.push(
                    field,
                    format!(
                        "unknown event `{}`; allowed values: {}",
                        printable(event),
                        self.catalogue.allowed_list()
                    ),
                );
            } else if !seen.insert(event.as_str()) {
                errors.push(field, format!("duplicate event `{event}`"));
            }
        }
    }

    fn check_custom_headers(
        &self,
        headers: &BTreeMap<String, String>,
        errors: &mut ValidationErrors,
    ) {
        if headers.len() > MAX_CUSTOM_HEADERS {
            errors.push(
                "customHeaders",
                format!(
                    "at most {MAX_CUSTOM_HEADERS} headers are allowed, got {}",
                    headers.len()
                ),
            );
        }
        let mut seen = BTreeSet::new();
        for (name, value) in headers {
            let field = format!("customHeaders.{}", printable(name));
            let lower = name.to_ascii_lowercase();
            if let Err(why) = check_header_name(name) {
                errors.push(field.clone(), why);
            } else if self.reserved_headers.contains(&lower) {
                let hint = if lower == "authorization" {
                    "; use the `authorization` field"
                } else {
                    ""
                };
                errors.push(
                    field.clone(),
                    format!("`{name}` is a reserved header name{hint}"),
                );
            } else if !seen.insert(lower) {
                errors.push(
                    field.clone(),
                    "duplicate header name (names are case-insensitive)",
                );
            }
            if let Err(why) = check_header_value(value) {
                errors.push(field, why);
            }
        }
    }
}

impl Default for Validator {
    /// The conversation catalogue and the default signature scheme's headers.
    fn default() -> Self {
        Self::new(
            EventCatalogue::conversation(),
            crate::signature::SignatureScheme::default().reserved_header_names(),
        )
    }
}

/// The value of a patch field that is present, recording `null` as an error.
fn present<'a, T>(
    field: &'a Option<Option<T>>,
    name: &str,
    errors: &mut ValidationErrors,
) -> Option<&'a T> {
    match field {
        None => None,
        Some(None) => {
            errors.push(name, "must not be null");
            None
        }
        Some(Some(value)) => Some(value),
    }
}

fn check_name(name: &str, errors: &mut ValidationErrors) -> String {
    let trimmed = name.trim();
    let chars = trimmed.chars().count();
    if chars == 0 {
        errors.push("name", "must not be empty");
    } else if trimmed.chars().any(char::is_control) {
        errors.push("name", "must not contain control characters");
    } else if chars > MAX_NAME_CHARS {
        errors.push(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters, got {chars}"),
        );
    }
    trimmed.to_owned()
}

fn check_url(raw: &str, errors: &mut ValidationErrors) {
    if let Err(why) = url_problem(raw) {
        errors.push("url", why);
    }
}

fn url_problem(raw: &str) -> std::result::Result<(), String> {
    const ABSOLUTE: &str = "must be an absolute http or https URL";
    if raw.len() > MAX_URL_BYTES {
        return Err(format!(
            "must be at most {MAX_URL_BYTES} bytes, got {}",
            raw.len()
        ));
    }
    // The URL parser silently drops tabs, newlines and surrounding spaces;
    // refuse them so the stored URL is exactly the one that was checked.
    if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("must not contain whitespace or control characters".to_owned());
    }
    let url = url::Url::parse(raw).map_err(|e| format!("{ABSOLUTE} ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ABSOLUTE.to_owned());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must have a host".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain user information (use the authorization field)".to_owned());
    }
    if url.fragment().is_some() {
        return Err("must not contain a fragment".to_owned());
    }
    Ok(())
}

/// Checks credentials and returns the `Authorization` header value they produce.
fn check_authorization(auth: &Authorization, errors: &mut ValidationErrors) -> Option<String> {
    let before = errors.errors().len();
    match auth {
        Authorization::BasicAuth { username, password } => {
            if username.is_empty() {
                errors.push("authorization.username", "must not be empty");
            }
            if username.contains(':') {
                errors.push("authorization.username", "must not contain `:`");
            }
            check_credential("authorization.username", username, errors);
            check_credential("authorization.password", password, errors);
        }
        Authorization::TokenAuth { value } => {
            if value.trim().is_empty() {
                errors.push("authorization.value", "must not be empty");
            }
            // The token goes into the header as is, so it must be a valid header value.
            if value
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\r' | '\n' | '\0'))
            {
                errors.push("authorization.value", "must not contain control characters");
            }
            check_credential("authorization.value", value, errors);
        }
        Authorization::NoAuth => {}
    }
    if errors.errors().len() > before {
        None
    } else {
        auth.header_value()
    }
}

fn check_credential(field: &str, value: &str, errors: &mut ValidationErrors) {
    if value.contains(['\r', '\n', '\0']) {
        errors.push(field, "must not contain CR, LF or NUL");
    }
    if value.len() > MAX_CREDENTIAL_BYTES {
        errors.push(
            field,
            format!("must be at most {MAX_CREDENTIAL_BYTES} bytes"),
        );
    }
}

/// RFC 9110 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn check_header_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("header name must not be empty".to_owned());
    }
    if name.len() > MAX_HEADER_NAME_BYTES {
        return Err(format!(
            "header name must be at most {MAX_HEADER_NAME_BYTES} bytes"
        ));
    }
    if !name.bytes().all(is_tchar) {
        return Err(
            "header name must be an HTTP token (letters, digits and !#$%&'*+-.^_`|~)".to_owned(),
        );
    }
    Ok(())
}

fn check_header_value(value: &str) -> std::result::Result<(), String> {
    if value.contains(['\r', '\n', '\0']) {
        return Err("header value must not contain CR, LF or NUL".to_owned());
    }
    if value.len() > MAX_HEADER_VALUE_BYTES {
        return Err(format!(
            "header value must be at most {MAX_HEADER_VALUE_BYTES} bytes"
        ));
    }
    if !value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        return Err("header value must be visible ASCII, space or tab".to_owned());
    }
    Ok(())
}

/// `s` with control characters escaped and cut to a readable length, for
/// echoing user input inside error messages.
fn printable(s: &str) -> String {
    const MAX: usize = 64;
    let mut out: String = s.chars().take(MAX).flat_map(char::escape_debug).collect();
    if s.chars().count() > MAX {
        out.push('…');
    }
    out
}
