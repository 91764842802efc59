//! Request validation: pure functions that turn a create or patch
//! request into checked values, reporting every problem with the field it is in.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use url::Host;

use crate::error::{Error, Operation, Result, ValidationErrors};
use crate::model::{
    Authorization, CreateWebhookSubscription, EventCatalogue, PatchWebhookSubscription,
    RedactedHeaders, SubscriptionChange, UserId, AUTHORIZATION_HEADER, TEST_EVENT,
};
use crate::signature::{SignatureScheme, StandardWebhooksScheme};
use crate::transport::AddressPolicy;

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
/// top of the headers of every built-in signature scheme (with their
/// default names) and of the configured one.
pub const ALWAYS_RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    "user-agent",
    // Cloud metadata services trust these as proof that a request is not forwarded.
    "metadata",
    "metadata-flavor",
    "x-aws-ec2-metadata-token",
    "x-aws-ec2-metadata-token-ttl-seconds",
];

/// A checked create request, ready to become a subscription.
///
/// `Debug` shows header names but not their values.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ValidCreate {
    /// Trimmed name.
    pub name: String,
    /// The URL in normalised form (as `url::Url` writes it: host in
    /// lowercase and punycode, special characters percent-encoded).
    pub url: String,
    /// Event names (catalogue members, no duplicates, request order).
    pub events: Vec<String>,
    /// `Authorization` (if any) plus the custom headers.
    pub headers: BTreeMap<String, String>,
    /// Whether deliveries start enabled.
    pub enabled: bool,
}

impl fmt::Debug for ValidCreate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidCreate")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("headers", &RedactedHeaders(&self.headers))
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// Validates requests against an event catalogue, a set of reserved headers
/// and the address policy deliveries will be held to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validator {
    catalogue: EventCatalogue,
    /// Lowercase names refused as custom headers.
    reserved_headers: BTreeSet<String>,
    address_policy: AddressPolicy,
}

impl Validator {
    /// A validator for `catalogue` that reserves [`ALWAYS_RESERVED_HEADERS`],
    /// the headers of every built-in signature scheme with their default
    /// names, and `scheme_headers` (the configured scheme's header names).
    /// URLs are held to [`AddressPolicy::default`].
    pub fn new<I, S>(catalogue: EventCatalogue, scheme_headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        // A host may switch schemes later; a header saved now must not
        // collide with the signature headers of any of them.
        let built_in = SignatureScheme::default()
            .reserved_header_names()
            .into_iter()
            .chain(StandardWebhooksScheme::default().reserved_header_names());
        let reserved_headers = ALWAYS_RESERVED_HEADERS
            .iter()
            .map(|s| (*s).to_owned())
            .chain(
                built_in
                    .chain(scheme_headers.into_iter().map(|s| s.as_ref().to_owned()))
                    .map(|s| s.to_ascii_lowercase()),
            )
            .collect();
        Self {
            catalogue,
            reserved_headers,
            address_policy: AddressPolicy::default(),
        }
    }

    /// Refuses URLs whose host is a literal IP address, or whose port,
    /// `policy` would not let a delivery reach; use the same policy as the
    /// transport. Host names are left to the transport, which checks every
    /// address they resolve to.
    #[must_use]
    pub fn with_address_policy(mut self, policy: AddressPolicy) -> Self {
        self.address_policy = policy;
        self
    }

    /// The catalogue event names are checked against.
    pub fn catalogue(&self) -> &EventCatalogue {
        &self.catalogue
    }

    /// The address policy URLs are checked against.
    pub fn address_policy(&self) -> &AddressPolicy {
        &self.address_policy
    }

    /// Checks a create request; on failure the error lists every problem.
    pub fn validate_create(&self, request: &CreateWebhookSubscription) -> Result<ValidCreate> {
        let mut errors = ValidationErrors::default();
        let name = check_name(&request.name, &mut errors);
        let url = self.check_url(&request.url, &mut errors);
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
            url,
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
            change.url = Some(self.check_url(url, &mut errors));
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

    /// Reports each bad value once, at its first position, with how often it
    /// occurs, and the allowed values once: the error stays small however
    /// long the list.
    fn check_events(&self, events: &[String], errors: &mut ValidationErrors) {
        struct Problem<'a> {
            index: usize,
            event: &'a str,
            known: bool,
            count: usize,
        }
        // Positions grouped by value, each group in request order (the sort
        // is stable): cheaper than hashing every entry of a huge list.
        let mut order: Vec<usize> = (0..events.len()).collect();
        order.sort_by_key(|&i| events[i].as_str());
        let mut problems: Vec<Problem<'_>> = order
            .chunk_by(|&a, &b| events[a] == events[b])
            .filter_map(|group| {
                let event = events[group[0]].as_str();
                let known = self.catalogue.contains(event);
                match (known, group) {
                    (true, [_]) => None,
                    (true, [_, again, ..]) => Some(Problem {
                        index: *again,
                        event,
                        known,
                        count: group.len() - 1,
                    }),
                    _ => Some(Problem {
                        index: group[0],
                        event,
                        known,
                        count: group.len(),
                    }),
                }
            })
            .collect();
        problems.sort_unstable_by_key(|problem| problem.index);
        let mut allowed_listed = false;
        for problem in problems {
            if errors.is_full() {
                errors.omit();
                continue;
            }
            let event = printable(problem.event);
            let mut message = if problem.known {
                format!("duplicate event `{event}`")
            } else {
                format!("unknown event `{event}`")
            };
            if problem.count > 1 {
                let given = if problem.known { "repeated" } else { "given" };
                message.push_str(&format!(" ({given} {} times)", problem.count));
            }
            if !problem.known && !allowed_listed {
                allowed_listed = true;
                message.push_str("; allowed values: ");
                message.push_str(&self.catalogue.allowed_list());
            }
            errors.push(format!("events[{}]", problem.index), message);
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
            if errors.is_full() {
                // Only counted from here on; skip building messages.
                errors.omit();
                continue;
            }
            let field = format!("customHeaders.{}", printable(name));
            let lower = name.to_ascii_lowercase();
            if let Err(why) = check_header_name(name) {
                errors.push(field.clone(), why);
            } else if self.reserved_headers.contains(&lower) {
                let hint = match lower.as_str() {
                    "authorization" => "; use the `authorization` field",
                    "metadata"
                    | "metadata-flavor"
                    | "x-aws-ec2-metadata-token"
                    | "x-aws-ec2-metadata-token-ttl-seconds" => {
                        "; cloud metadata services trust it"
                    }
                    _ => "",
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

impl Validator {
    /// The normalised URL, or `raw` after recording why it cannot be used.
    fn check_url(&self, raw: &str, errors: &mut ValidationErrors) -> String {
        match self.url_problem(raw) {
            Ok(url) => url,
            Err(why) => {
                errors.push("url", why);
                raw.to_owned()
            }
        }
    }

    fn url_problem(&self, raw: &str) -> std::result::Result<String, String> {
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
            return Err(
                "must not contain user information (use the authorization field)".to_owned(),
            );
        }
        if url.fragment().is_some() {
            return Err("must not contain a fragment".to_owned());
        }
        let ip = match url.host() {
            Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = ip {
            self.address_policy.check(ip).map_err(|reason| {
                format!("host {ip} is a {reason} address, which deliveries may not reach")
            })?;
        }
        if let Some(port) = url.port_or_known_default() {
            if !self.address_policy.port_allowed(port) {
                return Err(format!("port {port} is not allowed for deliveries"));
            }
        }
        // Stored and sent in this form, so it must still fit and be a valid
        // HTTP request target (percent-encoding can lengthen it).
        let normalised = String::from(url);
        if normalised.len() > MAX_URL_BYTES {
            return Err(format!(
                "must be at most {MAX_URL_BYTES} bytes once normalised, got {}",
                normalised.len()
            ));
        }
        http::Uri::try_from(normalised.as_str())
            .map_err(|e| format!("cannot be sent as an HTTP request target ({e})"))?;
        Ok(normalised)
    }
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
