//! [`HttpTransport`]: the production [`Transport`] over reqwest, with the SSRF
//! guard, timeouts and a capped response body.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use http::{Request, Uri};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use super::{AddressPolicy, BlockReason, Transport, TransportError, TransportResponse};
use crate::{BoxError, Error};

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
const DEFAULT_MAX_RESPONSE_BODY: usize = 64 * 1024;
/// Parsed URLs kept per transport before the cache starts over.
const URL_CACHE_CAPACITY: usize = 1024;

/// Delivers requests over HTTP(S) with reqwest.
///
/// - Redirects are never followed: a `3xx` is returned as the response.
/// - Proxies are never used, whatever the environment says.
/// - Connections are kept alive and reused across requests (clones share the pool).
/// - At most [`max_response_body`](HttpTransportBuilder::max_response_body)
///   bytes of a response body are read; the rest is never downloaded.
/// - The SSRF guard ([`AddressPolicy`], on by default) checks literal hosts
///   before sending and filters every resolved address before connecting, so
///   only checked addresses are ever connected to (no DNS-rebinding window).
///
/// TLS uses rustls. With the `http-client` feature it uses the process-wide
/// rustls crypto provider if the host installed one, and aws-lc-rs
/// otherwise. With `http-client-no-provider` the host must install a
/// provider (`rustls::crypto::CryptoProvider::install_default`) before
/// [`build`](HttpTransportBuilder::build), which refuses to go on without one.
///
/// ```no_run
/// use std::time::Duration;
/// use webhook_subscriptions::transport::HttpTransport;
///
/// # fn main() -> webhook_subscriptions::Result<()> {
/// let transport = HttpTransport::builder()
///     .timeout(Duration::from_secs(10))
///     .build()?;
/// assert_eq!(transport.timeout(), Duration::from_secs(10));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
    urls: Arc<UrlCache>,
    connect_timeout: Duration,
    timeout: Duration,
    max_response_body: usize,
}

/// Target URLs parsed by the url crate, by request URI: deliveries go to the
/// same few URLs over and over, and parsing one costs more than the rest of
/// the transport's own work per request. Parsing is a pure function of the
/// URI, so a cached URL is exactly what parsing again would give.
///
/// `Uri`'s own equality ignores case in the authority (user info included),
/// so a hit is used only when the stored key is the same byte for byte.
#[derive(Default)]
struct UrlCache(Mutex<HashMap<Uri, Url>>);

impl fmt::Debug for UrlCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UrlCache")
    }
}

impl UrlCache {
    /// The URI parsed as a URL, the way it is checked and sent.
    fn parse(&self, uri: &Uri) -> Result<Url, TransportError> {
        // A panic elsewhere cannot leave the map half-written; use it anyway.
        let cached = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_key_value(uri)
            .filter(|(key, _)| same_bytes(key, uri))
            .map(|(_, url)| url.clone());
        if let Some(url) = cached {
            return Ok(url);
        }
        let url = Url::parse(&uri.to_string())
            .map_err(|e| TransportError::Other(format!("invalid url: {e}")))?;
        let mut urls = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if urls.len() >= URL_CACHE_CAPACITY {
            urls.clear();
        }
        // `insert` would keep an equal but differently spelled old key.
        urls.remove(uri);
        urls.insert(uri.clone(), url.clone());
        Ok(url)
    }
}

fn same_bytes(a: &Uri, b: &Uri) -> bool {
    a.scheme_str() == b.scheme_str()
        && a.authority().map(|x| x.as_str()) == b.authority().map(|x| x.as_str())
        && a.path_and_query().map(|x| x.as_str()) == b.path_and_query().map(|x| x.as_str())
}

impl HttpTransport {
    /// A builder with the defaults: connect timeout 5 s, whole-request
    /// timeout 15 s, 64 KiB of response body, the blocking [`AddressPolicy`].
    pub fn builder() -> HttpTransportBuilder {
        HttpTransportBuilder::default()
    }

    /// The whole-request timeout: no attempt takes longer than this.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Refuses a literal IP host before anything is sent; names are checked
    /// by the resolver, address by address.
    fn check_literal_host(&self, url: &Url) -> Result<(), TransportError> {
        let ip = match url.host() {
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
            Some(Host::Domain(_)) => return Ok(()),
            None => return Err(TransportError::Other("url has no host".to_owned())),
        };
        self.policy
            .check(ip)
            .map_err(|reason| TransportError::Blocked(format!("{ip} is blocked ({reason})")))
    }

    fn transport_error(&self, err: &reqwest::Error) -> TransportError {
        if let Some(blocked) = find_in_chain::<BlockedHost>(err) {
            return TransportError::Blocked(blocked.to_string());
        }
        if err.is_timeout() {
            return TransportError::Timeout(if err.is_connect() {
                format!("connect timed out after {:?}", self.connect_timeout)
            } else {
                format!("request timed out after {:?}", self.timeout)
            });
        }
        if let Some(tls) = find_in_chain::<rustls::Error>(err) {
            return TransportError::Other(format!("tls: {tls}"));
        }
        let cause = root_cause(err);
        if err.is_dns() {
            TransportError::Connect(format!("dns lookup failed: {cause}"))
        } else if err.is_connect() {
            TransportError::Connect(cause)
        } else {
            TransportError::Other(cause)
        }
    }
}

#[async_trait]
impl Transport for HttpTransport {
    async fn send(&self, request: Request<Bytes>) -> Result<TransportResponse, TransportError> {
        let (parts, body) = request.into_parts();
        // The url crate turns odd spellings (`2130706433`, `0x7f.1`,
        // `[::ffff:127.0.0.1]`) into the address they mean; the same parsed
        // URL is checked and sent, so the check sees what is connected to.
        let url = self.urls.parse(&parts.uri)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(TransportError::Other(format!(
                "unsupported url scheme {}",
                url.scheme()
            )));
        }
        self.check_literal_host(&url)?;
        if let Some(port) = url.port_or_known_default() {
            if !self.policy.port_allowed(port) {
                return Err(TransportError::Blocked(format!(
                    "port {port} is not allowed"
                )));
            }
        }

        let mut outgoing = reqwest::Request::new(parts.method, url);
        *outgoing.headers_mut() = parts.headers;
        *outgoing.body_mut() = Some(body.into());

        let mut response = self
            .client
            .execute(outgoing)
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let body = read_capped(&mut response, self.max_response_body)
            .await
            .map_err(|e| self.transport_error(&e))?;
        Ok(TransportResponse::new(status, headers, body))
    }
}

/// Reads at most `cap` bytes of the body, chunk by chunk; the rest is never
/// read (dropping the response closes the connection instead of draining it).
async fn read_capped(response: &mut reqwest::Response, cap: usize) -> reqwest::Result<Bytes> {
    let mut body = BytesMut::new();
    while body.len() < cap {
        let Some(chunk) = response.chunk().await? else {
            break;
        };
        let room = cap - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    Ok(body.freeze())
}

/// Configures an [`HttpTransport`]; created by [`HttpTransport::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct HttpTransportBuilder {
    connect_timeout: Duration,
    timeout: Duration,
    max_response_body: usize,
    address_policy: AddressPolicy,
}

impl Default for HttpTransportBuilder {
    fn default() -> Self {
        Self {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            max_response_body: DEFAULT_MAX_RESPONSE_BODY,
            address_policy: AddressPolicy::default(),
        }
    }
}

impl HttpTransportBuilder {
    /// How long establishing a connection (DNS, TCP, TLS) may take; default 5 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a whole request may take, from connecting to the last body
    /// byte read; default 15 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many bytes of a response body are read at most; default 64 KiB.
    pub fn max_response_body(mut self, bytes: usize) -> Self {
        self.max_response_body = bytes;
        self
    }

    /// Which addresses may be connected to; default [`AddressPolicy::default`],
    /// which refuses every non-public address.
    pub fn address_policy(mut self, policy: AddressPolicy) -> Self {
        self.address_policy = policy;
        self
    }

    /// Builds the transport.
    ///
    /// Fails with [`Error::InvalidConfiguration`] for a zero timeout, when no
    /// rustls crypto provider is available (see [`HttpTransport`]), or when the
    /// HTTP client cannot be set up.
    pub fn build(self) -> Result<HttpTransport, Error> {
        if self.connect_timeout.is_zero() {
            return Err(Error::InvalidConfiguration(
                "http transport: connect timeout must be greater than zero".to_owned(),
            ));
        }
        if self.timeout.is_zero() {
            return Err(Error::InvalidConfiguration(
                "http transport: timeout must be greater than zero".to_owned(),
            ));
        }
        ensure_crypto_provider()?;

        let policy = Arc::new(self.address_policy);
        let client = reqwest::Client::builder()
            .dns_resolver(GuardedResolver {
                policy: Arc::clone(&policy),
            })
            .redirect(reqwest::redirect::Policy::none())
            // Retrying is the delivery engine's job, with its own schedule and log.
            .retry(reqwest::retry::never())
            .no_proxy()
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            .build()
            .map_err(|e| Error::InvalidConfiguration(format!("http transport: {e}")))?;

        Ok(HttpTransport {
            client,
            policy,
            urls: Arc::default(),
            connect_timeout: self.connect_timeout,
            timeout: self.timeout,
            max_response_body: self.max_response_body,
        })
    }
}

/// reqwest built without a provider of its own panics in `build` when no
/// process-wide rustls provider is installed; refuse with an error instead.
fn ensure_crypto_provider() -> Result<(), Error> {
    if cfg!(feature = "http-client") || rustls::crypto::CryptoProvider::get_default().is_some() {
        Ok(())
    } else {
        Err(Error::InvalidConfiguration(
            "http transport: no rustls crypto provider installed; call \
             rustls::crypto::CryptoProvider::install_default or enable the http-client feature"
                .to_owned(),
        ))
    }
}

/// Resolves names with the system resolver and hands reqwest only the
/// addresses the policy allows, so nothing unchecked is ever connected to.
struct GuardedResolver {
    policy: Arc<AddressPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        Box::pin(async move {
            let host = name.as_str();
            let mut reasons = Vec::new();
            let allowed: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
                .await?
                .filter(|addr| match policy.check(addr.ip()) {
                    Ok(()) => true,
                    Err(reason) => {
                        if !reasons.contains(&reason) {
                            reasons.push(reason);
                        }
                        false
                    }
                })
                .collect();
            if allowed.is_empty() && !reasons.is_empty() {
                return Err(Box::new(BlockedHost {
                    host: host.to_owned(),
                    reasons,
                }) as BoxError);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// A name whose every address the policy refused; recovered from reqwest's
/// error chain so it is reported as [`TransportError::Blocked`].
#[derive(Debug)]
struct BlockedHost {
    host: String,
    reasons: Vec<BlockReason>,
}

impl fmt::Display for BlockedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} resolves only to blocked addresses (", self.host)?;
        for (i, reason) in self.reasons.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{reason}")?;
        }
        f.write_str(")")
    }
}

impl StdError for BlockedHost {}

/// `err` and its causes, innermost last. An `io::Error` wrapping another
/// error reports the wrapped error's `source` as its own, skipping the
/// wrapped error itself (rustls hands its errors over that way), so this
/// steps into it with `get_ref` instead.
fn causes<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(err), |&e| match e.downcast_ref::<io::Error>() {
        Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
        None => e.source(),
    })
}

fn find_in_chain<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    causes(err).find_map(|e| e.downcast_ref::<T>())
}

/// A short description of the innermost cause, without the URL (which may
/// carry credentials in its query).
fn root_cause(err: &(dyn StdError + 'static)) -> String {
    let Some(root) = causes(err).last() else {
        return err.to_string();
    };
    match root.downcast_ref::<io::Error>() {
        // "connection refused" rather than "Connection refused (os error 111)".
        Some(io) if io.raw_os_error().is_some() => io.kind().to_string(),
        _ => root.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_cache_answers_each_spelling_of_the_user_info_with_its_own_url() {
        let cache = UrlCache::default();
        let upper: Uri = "http://Alice@example.com/hook".parse().unwrap();
        let lower: Uri = "http://alice@example.com/hook".parse().unwrap();
        assert_eq!(upper, lower, "Uri equality ignores the case of user info");

        for _ in 0..2 {
            assert_eq!(cache.parse(&upper).unwrap().username(), "Alice");
            assert_eq!(cache.parse(&lower).unwrap().username(), "alice");
        }
    }
}
