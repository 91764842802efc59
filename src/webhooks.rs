//! [`Webhooks`]: the whole engine configured once. It owns the event
//! catalogue, the signature scheme, the limits, the transport timeout and the
//! clock, and hands out the [`WebhookService`], the [`ApiHandler`] and the
//! delivery [`Worker`](crate::delivery::Worker) built from the same values, so
//! the REST API never accepts a custom header the worker's signature
//! overwrites and the worker never waits longer than the transport does.
//!
//! Each part stays usable on its own ([`WebhookService::builder`],
//! [`ApiHandler::builder`], [`Worker::builder`](crate::delivery::Worker::builder))
//! for hosts that need a combination this builder does not offer.

use std::sync::Arc;
use std::time::Duration;

use crate::api::{ApiHandler, ApiHandlerBuilder, DEFAULT_BASE_PATH, DEFAULT_MAX_BODY_BYTES};
use crate::clock::{Clock, SystemClock};
use crate::delivery::PublishLimits;
use crate::error::{Error, Result};
use crate::model::EventCatalogue;
use crate::service::WebhookService;
use crate::signature::SignatureScheme;
use crate::storage::Storage;
use crate::transport::AddressPolicy;
use crate::validate::Validator;

/// How long one delivery attempt may take, connect to last byte, unless
/// configured otherwise.
pub const DEFAULT_TRANSPORT_TIMEOUT: Duration = Duration::from_secs(15);

/// The engine, configured once: subscription management, the REST handler
/// and the delivery worker, all agreeing on the catalogue, the signature
/// scheme, the limits, the transport timeout and the clock.
///
/// Cheap to clone; clones share the store.
///
/// ```
/// use std::sync::Arc;
///
/// use webhook_subscriptions::signature::{SignatureScheme, StandardWebhooksScheme};
/// use webhook_subscriptions::storage::MemoryStore;
/// use webhook_subscriptions::Webhooks;
///
/// # fn main() -> webhook_subscriptions::Result<()> {
/// let webhooks = Webhooks::builder(Arc::new(MemoryStore::new()))
///     .events(["InvoicePaid", "InvoiceOverdue"])
///     .signature_scheme(SignatureScheme::from(StandardWebhooksScheme::default()))
///     .build()?;
///
/// // The service and the REST handler accept the host's events...
/// assert!(webhooks.service().catalogue().contains("InvoicePaid"));
/// let api = webhooks.api();
/// assert_eq!(api.base_path(), "/v1/webhooks");
/// // ...and refuse the scheme's headers as custom headers; a worker from
/// // `webhooks.worker(transport)` signs with the same scheme.
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Webhooks {
    service: WebhookService,
    api: ApiHandler,
    scheme: SignatureScheme,
    transport_timeout: Duration,
    address_policy: AddressPolicy,
}

/// Configures [`Webhooks`]; [`build`](WebhooksBuilder::build) checks it.
#[must_use]
#[derive(Debug)]
pub struct WebhooksBuilder {
    storage: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    catalogue: EventCatalogue,
    events: Vec<String>,
    scheme: SignatureScheme,
    publish_limits: PublishLimits,
    transport_timeout: Duration,
    base_path: String,
    max_body_bytes: usize,
    address_policy: AddressPolicy,
}

impl WebhooksBuilder {
    /// Starts from `catalogue` instead of the built-in conversation catalogue
    /// ([`EventCatalogue::conversation`]); names added with
    /// [`events`](Self::events) come on top of it.
    pub fn catalogue(mut self, catalogue: EventCatalogue) -> Self {
        self.catalogue = catalogue;
        self
    }

    /// Adds the host's event names to the catalogue. Each must be ASCII
    /// letters and digits starting with a letter, at most 128 bytes, and not
    /// already in the catalogue; [`build`](Self::build) says which is not.
    pub fn events<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.events
            .extend(names.into_iter().map(|name| name.as_ref().to_owned()));
        self
    }

    /// Signs deliveries with `scheme` (default [`SignatureScheme::default`])
    /// and reserves its headers, so no subscription can set them.
    pub fn signature_scheme(mut self, scheme: SignatureScheme) -> Self {
        self.scheme = scheme;
        self
    }

    /// Caps published envelopes (default 256 KiB).
    pub fn publish_limits(mut self, limits: PublishLimits) -> Self {
        self.publish_limits = limits;
        self
    }

    /// The longest one delivery attempt may take, connect to last byte
    /// (default [`DEFAULT_TRANSPORT_TIMEOUT`]): given to the HTTP transport
    /// and to the worker, whose lease must outlast it.
    pub fn transport_timeout(mut self, timeout: Duration) -> Self {
        self.transport_timeout = timeout;
        self
    }

    /// Reads time from `clock` instead of the system clock, in the service
    /// and the worker alike.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Serves the REST routes under `path` (default [`DEFAULT_BASE_PATH`]);
    /// see [`ApiHandlerBuilder::base_path`].
    pub fn base_path(mut self, path: impl Into<String>) -> Self {
        self.base_path = path.into();
        self
    }

    /// Refuses REST request bodies larger than `bytes` with 413 (default
    /// [`DEFAULT_MAX_BODY_BYTES`]).
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Which target addresses deliveries may reach (default: public
    /// addresses only, see [`AddressPolicy`]). Validation refuses a
    /// subscription URL whose literal host or port the policy blocks, and
    /// [`Webhooks::http_transport_builder`] starts from the same policy, so
    /// a tenant learns at once what the transport would refuse.
    pub fn address_policy(mut self, policy: AddressPolicy) -> Self {
        self.address_policy = policy;
        self
    }

    /// The configured engine, or [`Error::InvalidConfiguration`] for an
    /// invalid event name, a zero transport timeout, or a malformed base
    /// path or body limit.
    pub fn build(self) -> Result<Webhooks> {
        let catalogue = if self.events.is_empty() {
            self.catalogue
        } else {
            self.catalogue
                .extended(&self.events)
                .map_err(|e| Error::InvalidConfiguration(e.to_string()))?
        };
        if self.transport_timeout.is_zero() {
            return Err(Error::InvalidConfiguration(
                "transport timeout must not be zero".to_owned(),
            ));
        }
        let validator = Validator::new(catalogue, self.scheme.reserved_header_names())
            .with_address_policy(self.address_policy.clone());
        let service = WebhookService::builder(self.storage)
            .clock(self.clock)
            .validator(validator)
            .publish_limits(self.publish_limits)
            .build();
        let api = ApiHandler::builder(service.clone())
            .base_path(self.base_path)
            .max_body_bytes(self.max_body_bytes)
            .build()?;
        Ok(Webhooks {
            service,
            api,
            scheme: self.scheme,
            transport_timeout: self.transport_timeout,
            address_policy: self.address_policy,
        })
    }
}

impl Webhooks {
    /// Starts configuring the engine over `storage`.
    pub fn builder(storage: Arc<dyn Storage>) -> WebhooksBuilder {
        WebhooksBuilder {
            storage,
            clock: Arc::new(SystemClock),
            catalogue: EventCatalogue::conversation(),
            events: Vec::new(),
            scheme: SignatureScheme::default(),
            publish_limits: PublishLimits::default(),
            transport_timeout: DEFAULT_TRANSPORT_TIMEOUT,
            base_path: DEFAULT_BASE_PATH.to_owned(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            address_policy: AddressPolicy::default(),
        }
    }

    /// Subscription management and publishing.
    pub fn service(&self) -> &WebhookService {
        &self.service
    }

    /// The REST handler, under the configured base path and body limit.
    pub fn api(&self) -> ApiHandler {
        self.api.clone()
    }

    /// A REST handler builder with the configured base path and body limit,
    /// to change them (e.g. `base_path("/")` under a router that strips the
    /// prefix) or to add an error hook.
    pub fn api_builder(&self) -> ApiHandlerBuilder {
        ApiHandler::builder(self.service.clone())
            .base_path(self.api.base_path().to_owned())
            .max_body_bytes(self.api.max_body_bytes())
    }

    /// The scheme deliveries are signed with.
    pub fn signature_scheme(&self) -> &SignatureScheme {
        &self.scheme
    }

    /// The longest one delivery attempt may take.
    pub fn transport_timeout(&self) -> Duration {
        self.transport_timeout
    }
}

#[cfg(feature = "runtime-tokio")]
impl Webhooks {
    /// A worker builder over the same store, clock, signature scheme and
    /// transport timeout, sending through `transport`: set the worker's own
    /// settings (retry policy, concurrency, lease...) on it, then `build()`.
    pub fn worker_builder(
        &self,
        transport: Arc<dyn crate::transport::Transport>,
    ) -> crate::delivery::WorkerBuilder {
        crate::delivery::Worker::builder(Arc::clone(self.service.storage()), transport)
            .clock(Arc::clone(self.service.clock()))
            .signature_scheme(self.scheme.clone())
            .transport_timeout(self.transport_timeout)
    }

    /// A worker with the default worker settings sending through
    /// `transport`; see [`worker_builder`](Self::worker_builder).
    pub fn worker(
        &self,
        transport: Arc<dyn crate::transport::Transport>,
    ) -> Result<crate::delivery::Worker> {
        self.worker_builder(transport).build()
    }
}

#[cfg(feature = "http-client-no-provider")]
impl Webhooks {
    /// An HTTP transport builder with the configured transport timeout and
    /// address policy (the SSRF guard on, as always).
    pub fn http_transport_builder(&self) -> crate::transport::HttpTransportBuilder {
        crate::transport::HttpTransport::builder()
            .timeout(self.transport_timeout)
            .address_policy(self.address_policy.clone())
    }
}
