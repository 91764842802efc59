//! The [`Transport`] trait: how a signed delivery request reaches a receiver.
//!
//! The delivery engine hands a transport a fully built `http::Request<Bytes>`
//! and gets back a [`TransportResponse`] (status, headers, a capped prefix of the
//! body) or a typed [`TransportError`]. The production implementation is
//! `HttpTransport` (feature `http-client`); tests and hosts may implement the
//! trait themselves, and any async closure of the right shape is a transport.

use std::future::Future;
use std::sync::Arc;

use ::http::{HeaderMap, Request, StatusCode};
use async_trait::async_trait;
use bytes::Bytes;

#[cfg(feature = "http-client-no-provider")]
mod http;
mod ssrf;

#[cfg(feature = "http-client-no-provider")]
#[cfg_attr(docsrs, doc(cfg(feature = "http-client-no-provider")))]
pub use self::http::{HttpTransport, HttpTransportBuilder};
pub use ssrf::{AddressPolicy, BlockReason, IpNetwork};

/// Sends one delivery request and reports what the receiver answered.
///
/// Implementations must not follow redirects and should read at most a bounded
/// prefix of the response body.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Sends `request` and returns the receiver's answer or why there was none.
    async fn send(&self, request: Request<Bytes>) -> Result<TransportResponse, TransportError>;
}

/// What a receiver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransportResponse {
    /// The HTTP status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// At most the transport's cap of the response body (a prefix).
    pub body: Bytes,
}

impl TransportResponse {
    /// A response with the given status, headers and (already capped) body.
    pub fn new(status: StatusCode, headers: HeaderMap, body: Bytes) -> Self {
        Self {
            status,
            headers,
            body,
        }
    }
}

/// Why a request got no HTTP response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The connection or the whole request took longer than allowed.
    #[error("timeout: {0}")]
    Timeout(String),
    /// The connection could not be established (refused, reset, DNS failure).
    #[error("connection error: {0}")]
    Connect(String),
    /// The target was refused by the address policy (SSRF guard) before any
    /// connection. The text says which address or port and why, for
    /// operators; the message (and so the `responseText` tenants see) leaves
    /// it out, so a tenant cannot map the host's network through host names.
    #[error("blocked by address policy")]
    Blocked(String),
    /// Any other failure (TLS, protocol, invalid request).
    #[error("request failed: {0}")]
    Other(String),
}

impl TransportError {
    /// The description carried by any kind, including what the message of
    /// [`TransportError::Blocked`] leaves out: for operators' logs, not for
    /// tenants.
    pub fn detail(&self) -> &str {
        match self {
            TransportError::Timeout(detail)
            | TransportError::Connect(detail)
            | TransportError::Blocked(detail)
            | TransportError::Other(detail) => detail,
        }
    }
}

#[async_trait]
impl<T: Transport + ?Sized> Transport for Arc<T> {
    async fn send(&self, request: Request<Bytes>) -> Result<TransportResponse, TransportError> {
        (**self).send(request).await
    }
}

#[async_trait]
impl<T: Transport + ?Sized> Transport for Box<T> {
    async fn send(&self, request: Request<Bytes>) -> Result<TransportResponse, TransportError> {
        (**self).send(request).await
    }
}

/// Lets an async closure act as a transport (handy for tests and adapters).
///
/// ```
/// use bytes::Bytes;
/// use http::{HeaderMap, StatusCode};
/// use webhook_subscriptions::transport::{from_fn, TransportResponse};
///
/// let transport = from_fn(|_request: http::Request<Bytes>| async {
///     Ok(TransportResponse::new(StatusCode::OK, HeaderMap::new(), Bytes::new()))
/// });
/// # let _ = transport;
/// ```
pub fn from_fn<F, Fut>(f: F) -> FnTransport<F>
where
    F: Fn(Request<Bytes>) -> Fut + Send + Sync,
    Fut: Future<Output = Result<TransportResponse, TransportError>> + Send,
{
    FnTransport(f)
}

/// A [`Transport`] made from an async closure by [`from_fn`].
#[derive(Clone)]
pub struct FnTransport<F>(F);

impl<F> std::fmt::Debug for FnTransport<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnTransport")
    }
}

#[async_trait]
impl<F, Fut> Transport for FnTransport<F>
where
    F: Fn(Request<Bytes>) -> Fut + Send + Sync,
    Fut: Future<Output = Result<TransportResponse, TransportError>> + Send,
{
    async fn send(&self, request: Request<Bytes>) -> Result<TransportResponse, TransportError> {
        (self.0)(request).await
    }
}
