//! The delivery worker (feature `runtime-tokio`): claims due deliveries,
//! sends them with bounded concurrency, and records every attempt.

use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;

use super::outcome::{delivery_detail, AttemptResult, Outcome};
use super::request::build_request;
use super::retry::{JitterSource, OsJitter, RetryPolicy};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::model::time::truncate_to_millis;
use crate::model::{
    ClaimedDelivery, DeliveryDetail, DeliveryId, LeaseOutcome, NextStep, OrganizationId,
};
use crate::signature::SignatureScheme;
use crate::storage::Storage;
use crate::transport::{Transport, TransportError};

/// How much longer than the transport timeout a lease must last at least:
/// time to sign before sending and to record the outcome after it.
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);

const DEFAULT_LEASE: Duration = Duration::from_secs(60);
const DEFAULT_TRANSPORT_TIMEOUT: Duration = Duration::from_secs(15);
const DEFAULT_CONCURRENCY: usize = 32;
const DEFAULT_BATCH_SIZE: usize = 32;
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Delivers queued deliveries: claims those that are due, sends each signed
/// request through the [`Transport`], and records the attempt with the next
/// step the [`RetryPolicy`] picks.
///
/// Drive it yourself with [`run_once`](Worker::run_once), or let
/// [`run`](Worker::run) loop in the background until shutdown. Several
/// workers (in one process or many) may share a store: leases keep them from
/// sending the same delivery at once.
///
/// A claimed delivery whose subscription is disabled, or no longer
/// subscribed to the event, is not sent. It is failed with a log entry
/// saying why (`responseCode` 0, `not sent: ...`) rather than dropped, so it
/// can still be redelivered by hand once the subscription takes it again.
///
/// Cheap to clone; clones share everything.
///
/// ```
/// use std::sync::Arc;
///
/// use bytes::Bytes;
/// use http::{HeaderMap, StatusCode};
/// use webhook_subscriptions::delivery::{publish, PublishLimits, Worker};
/// use webhook_subscriptions::model::{Event, EventCatalogue, Organization, OrganizationId};
/// use webhook_subscriptions::storage::MemoryStore;
/// use webhook_subscriptions::transport::{from_fn, TransportResponse};
/// use webhook_subscriptions::SystemClock;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = Arc::new(MemoryStore::new());
/// // In production: the HTTP transport of feature `http-client`.
/// let transport = from_fn(|_request: http::Request<Bytes>| async {
///     Ok(TransportResponse::new(StatusCode::OK, HeaderMap::new(), Bytes::new()))
/// });
/// let worker = Worker::builder(store.clone(), Arc::new(transport)).build()?;
///
/// let organization = Organization::new(OrganizationId::new_v4(), "Acme");
/// let event = Event::new("ConversationCreated", serde_json::json!({"csid": 1}));
/// let catalogue = EventCatalogue::default();
/// let limits = PublishLimits::default();
/// let receipt = publish(&*store, &SystemClock, &catalogue, &limits, &organization, event).await?;
/// assert_eq!(receipt.enqueued, 0); // nobody subscribed yet
///
/// // Either drive the worker yourself...
/// let report = worker.run_once().await?;
/// assert_eq!(report.claimed, 0);
///
/// // ...or let it loop in the background until shutdown.
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let running = tokio::spawn(worker.run(async {
///     let _ = stopped.await;
/// }));
/// let _ = stop.send(());
/// let report = running.await?;
/// assert_eq!(report.attempts(), 0);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Arc<dyn Storage>,
    transport: Arc<dyn Transport>,
    clock: Arc<dyn Clock>,
    scheme: SignatureScheme,
    policy: RetryPolicy,
    jitter: Arc<dyn JitterSource>,
    lease: TimeDelta,
    concurrency: usize,
    batch_size: usize,
    poll_interval: Duration,
    transport_timeout: Duration,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("Worker")
            .field("storage", &inner.storage)
            .field("clock", &inner.clock)
            .field("policy", &inner.policy)
            .field("lease", &inner.lease)
            .field("concurrency", &inner.concurrency)
            .field("batch_size", &inner.batch_size)
            .field("poll_interval", &inner.poll_interval)
            .field("transport_timeout", &inner.transport_timeout)
            .finish_non_exhaustive()
    }
}

/// Configures a [`Worker`]; [`build`](WorkerBuilder::build) validates it.
#[must_use]
pub struct WorkerBuilder {
    storage: Arc<dyn Storage>,
    transport: Arc<dyn Transport>,
    clock: Arc<dyn Clock>,
    scheme: SignatureScheme,
    policy: RetryPolicy,
    jitter: Arc<dyn JitterSource>,
    lease: Duration,
    concurrency: usize,
    batch_size: usize,
    poll_interval: Duration,
    transport_timeout: Duration,
}

impl fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("storage", &self.storage)
            .field("clock", &self.clock)
            .field("policy", &self.policy)
            .field("lease", &self.lease)
            .field("concurrency", &self.concurrency)
            .field("batch_size", &self.batch_size)
            .field("poll_interval", &self.poll_interval)
            .field("transport_timeout", &self.transport_timeout)
            .finish_non_exhaustive()
    }
}

impl WorkerBuilder {
    /// Reads time from `clock` (default: the system clock). Attempts are
    /// stamped and retries scheduled with it; sleeps and timeouts use tokio time.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Signs with `scheme` (default: [`SignatureScheme::default`]).
    pub fn signature_scheme(mut self, scheme: SignatureScheme) -> Self {
        self.scheme = scheme;
        self
    }

    /// Retries on `policy` (default: [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Draws jitter from `source` (default: [`OsJitter`]).
    pub fn jitter_source(mut self, source: Arc<dyn JitterSource>) -> Self {
        self.jitter = source;
        self
    }

    /// How long a claim holds before another worker may take the delivery
    /// over (default 60 s). Must be at least the transport timeout plus
    /// [`LEASE_MARGIN`].
    pub fn lease_duration(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The most deliveries in flight at once (default 32).
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// The most deliveries claimed per store call (default 32). A worker
    /// never claims more than it has free slots, so every claimed delivery
    /// is sent at once and its lease covers only its own attempt.
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// How long [`Worker::run`] waits before looking again when the queue
    /// had nothing more due (default 200 ms).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The longest one attempt may take, connect to last byte (default
    /// 15 s). Set it to the transport's own total timeout; the worker also
    /// enforces it, logging a timeout, so the lease check holds for any transport.
    pub fn transport_timeout(mut self, timeout: Duration) -> Self {
        self.transport_timeout = timeout;
        self
    }

    /// The worker, or [`Error::InvalidConfiguration`] when a value is out of
    /// range or the lease does not outlast the transport timeout by
    /// [`LEASE_MARGIN`] (a slow receiver would then get duplicates).
    pub fn build(self) -> Result<Worker> {
        let invalid = |why: String| Err(Error::InvalidConfiguration(format!("worker: {why}")));
        if self.concurrency == 0 {
            return invalid("concurrency must be at least 1".to_owned());
        }
        if self.batch_size == 0 {
            return invalid("batch size must be at least 1".to_owned());
        }
        if self.poll_interval.is_zero() {
            return invalid("poll interval must not be zero".to_owned());
        }
        if self.transport_timeout.is_zero() {
            return invalid("transport timeout must not be zero".to_owned());
        }
        let needed = self.transport_timeout.saturating_add(LEASE_MARGIN);
        if self.lease < needed {
            return invalid(format!(
                "lease of {:?} does not outlast the transport timeout of {:?} plus a margin of {:?}",
                self.lease, self.transport_timeout, LEASE_MARGIN
            ));
        }
        let Ok(lease) = TimeDelta::from_std(self.lease) else {
            return invalid(format!("lease of {:?} is too long", self.lease));
        };
        Ok(Worker {
            inner: Arc::new(Inner {
                storage: self.storage,
                transport: self.transport,
                clock: self.clock,
                scheme: self.scheme,
                policy: self.policy,
                jitter: self.jitter,
                lease,
                concurrency: self.concurrency,
                batch_size: self.batch_size,
                poll_interval: self.poll_interval,
                transport_timeout: self.transport_timeout,
            }),
        })
    }
}

/// What a worker did: counts of claims and of how they ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunReport {
    /// Deliveries claimed.
    pub claimed: usize,
    /// Attempts answered with 2xx.
    pub delivered: usize,
    /// Failed attempts with another attempt scheduled.
    pub retrying: usize,
    /// Failed attempts that used up the schedule (the delivery is now failed).
    pub failed: usize,
    /// Attempts answered with `410 Gone` (the subscription is now disabled).
    pub disabled: usize,
    /// Deliveries not sent because their subscription is disabled or no
    /// longer subscribed to the event (failed with a log entry).
    pub skipped: usize,
    /// Attempts recorded after the lease had been lost; the new holder decides.
    pub lease_lost: usize,
    /// Claims given back unsent at shutdown.
    pub released: usize,
    /// Store failures while recording or releasing; those deliveries are
    /// claimed again once their lease expires.
    pub errors: usize,
}

impl RunReport {
    /// Attempts made (answered or not), excluding skipped and released claims.
    pub fn attempts(&self) -> usize {
        self.delivered + self.retrying + self.failed + self.disabled + self.lease_lost
    }

    fn count(&mut self, handled: std::result::Result<Result<Handled>, JoinError>) {
        match handled {
            Ok(Ok(Handled::Recorded(NextStep::Complete))) => self.delivered += 1,
            Ok(Ok(Handled::Recorded(NextStep::Retry { .. }))) => self.retrying += 1,
            Ok(Ok(Handled::Recorded(NextStep::FailAndDisable))) => self.disabled += 1,
            Ok(Ok(Handled::Recorded(_))) => self.failed += 1,
            Ok(Ok(Handled::Skipped)) => self.skipped += 1,
            Ok(Ok(Handled::LeaseLost)) => self.lease_lost += 1,
            Ok(Ok(Handled::Released)) => self.released += 1,
            // A panicking task loses nothing either: its lease expires.
            Ok(Err(_)) | Err(_) => self.errors += 1,
        }
    }
}

/// How one claimed delivery ended.
enum Handled {
    /// An attempt was made and `next` applied to the queue.
    Recorded(NextStep),
    /// Not sent: the subscription does not take it now.
    Skipped,
    /// An attempt was logged, but another worker holds the delivery now.
    LeaseLost,
    /// Given back unsent (shutdown).
    Released,
}

impl Worker {
    /// Starts configuring a worker over `storage` that sends through `transport`.
    pub fn builder(storage: Arc<dyn Storage>, transport: Arc<dyn Transport>) -> WorkerBuilder {
        WorkerBuilder {
            storage,
            transport,
            clock: Arc::new(SystemClock),
            scheme: SignatureScheme::default(),
            policy: RetryPolicy::default(),
            jitter: Arc::new(OsJitter),
            lease: DEFAULT_LEASE,
            concurrency: DEFAULT_CONCURRENCY,
            batch_size: DEFAULT_BATCH_SIZE,
            poll_interval: DEFAULT_POLL_INTERVAL,
            transport_timeout: DEFAULT_TRANSPORT_TIMEOUT,
        }
    }

    /// Claims the deliveries due now (at most the smaller of batch size and
    /// concurrency), sends them concurrently, records every attempt, and
    /// reports what happened. For hosts that drive delivery themselves.
    ///
    /// Fails only if claiming fails; a failure to record one attempt is
    /// counted in [`RunReport::errors`] (that delivery is retried once its
    /// lease expires).
    pub async fn run_once(&self) -> Result<RunReport> {
        let inner = &self.inner;
        let limit = inner.batch_size.min(inner.concurrency);
        let claims = inner
            .storage
            .claim_deliveries(inner.clock.now(), inner.lease, limit)
            .await?;
        let mut report = RunReport {
            claimed: claims.len(),
            ..RunReport::default()
        };
        let never_stopping = Arc::new(AtomicBool::new(false));
        let mut tasks = JoinSet::new();
        for claim in claims {
            tasks.spawn(Arc::clone(inner).handle(claim, Arc::clone(&never_stopping)));
        }
        while let Some(handled) = tasks.join_next().await {
            report.count(handled);
        }
        Ok(report)
    }

    /// Delivers until `shutdown` completes, keeping up to `concurrency`
    /// deliveries in flight: a slot that frees up is refilled at once while
    /// the queue has due deliveries; when it has none, the worker looks again
    /// after the poll interval.
    ///
    /// On shutdown it stops claiming, lets attempts in flight finish (each
    /// bounded by the transport timeout) and records them, and releases any
    /// claimed delivery not yet sent, so nothing stays leased. Store failures
    /// never stop the loop; they are counted in the returned report.
    ///
    /// Dropping the future instead aborts the attempts in flight; nothing is
    /// lost then either, as their deliveries are claimed again once their
    /// leases expire.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> RunReport {
        let inner = self.inner;
        let mut shutdown = pin!(shutdown);
        let stopping = Arc::new(AtomicBool::new(false));
        let mut tasks = JoinSet::new();
        let mut report = RunReport::default();
        // Set while the queue had nothing more due: no claims until then.
        let mut idle_until: Option<Instant> = None;
        // Wait for a quarter of a batch of free slots before claiming again.
        let claim_threshold = (inner.concurrency.min(inner.batch_size) / 4).max(1);
        loop {
            if idle_until.is_some_and(|at| Instant::now() >= at) {
                idle_until = None;
            }
            // Count every finished task, not just one per turn, so claims
            // come in batches instead of one delivery per round trip.
            while let Some(handled) = tasks.try_join_next() {
                report.count(handled);
            }
            let free = inner.concurrency.saturating_sub(tasks.len());
            if idle_until.is_none() && free >= claim_threshold {
                let limit = free.min(inner.batch_size);
                let claimed = inner
                    .storage
                    .claim_deliveries(inner.clock.now(), inner.lease, limit)
                    .await;
                let got = match claimed {
                    Ok(claims) => {
                        let got = claims.len();
                        for claim in claims {
                            tasks.spawn(Arc::clone(&inner).handle(claim, Arc::clone(&stopping)));
                        }
                        got
                    }
                    Err(_) => {
                        report.errors += 1;
                        0
                    }
                };
                report.claimed += got;
                if got < limit {
                    idle_until = Some(Instant::now() + inner.poll_interval);
                }
            }
            let full = inner.concurrency.saturating_sub(tasks.len()) < claim_threshold;
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(handled) = tasks.join_next(), if !tasks.is_empty() => report.count(handled),
                () = sleep_until(idle_until), if idle_until.is_some() => {}
                () = std::future::ready(()), if idle_until.is_none() && !full => {}
            }
        }
        // Claimed deliveries whose task has not started yet see this and give
        // their claim back; those already sending finish and are recorded.
        stopping.store(true, Ordering::SeqCst);
        while let Some(handled) = tasks.join_next().await {
            report.count(handled);
        }
        report
    }

    /// Puts a failed delivery of `organization` back in the queue, due now
    /// (see [`redeliver`](super::redeliver)).
    pub async fn redeliver(
        &self,
        organization: OrganizationId,
        delivery: DeliveryId,
    ) -> Result<()> {
        super::redeliver(
            &*self.inner.storage,
            &*self.inner.clock,
            organization,
            delivery,
        )
        .await
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

impl Inner {
    /// Sends one claimed delivery and records the attempt.
    async fn handle(
        self: Arc<Self>,
        claim: ClaimedDelivery,
        stopping: Arc<AtomicBool>,
    ) -> Result<Handled> {
        if stopping.load(Ordering::SeqCst) {
            self.storage.release(&claim).await?;
            return Ok(Handled::Released);
        }
        let subscription = &claim.subscription;
        let event = &claim.delivery.event_name;
        if !subscription.wants(event) {
            let why = if subscription.enabled {
                format!("not sent: subscription is no longer subscribed to {event}")
            } else {
                "not sent: subscription is disabled".to_owned()
            };
            let detail = DeliveryDetail {
                delivery_timestamp: truncate_to_millis(self.clock.now()),
                success: false,
                response_code: 0,
                response_text: why,
            };
            self.storage
                .record_attempt(&claim, &detail, NextStep::Fail)
                .await?;
            return Ok(Handled::Skipped);
        }

        let at = self.clock.now();
        let result = self.attempt(&claim, at).await;
        let finished = self.clock.now();
        let outcome = Outcome::classify(&result, finished);
        let attempts_made = claim.delivery.attempts.saturating_add(1);
        let next = self
            .policy
            .next_step(attempts_made, &outcome, finished, &*self.jitter);
        let detail = delivery_detail(&result, at);
        match self.storage.record_attempt(&claim, &detail, next).await? {
            LeaseOutcome::Applied => Ok(Handled::Recorded(next)),
            _ => Ok(Handled::LeaseLost),
        }
    }

    async fn attempt(
        &self,
        claim: &ClaimedDelivery,
        at: chrono::DateTime<chrono::Utc>,
    ) -> AttemptResult {
        let request = build_request(&self.scheme, &claim.subscription, &claim.delivery, at)
            .map_err(|invalid| TransportError::Other(invalid.to_string()))?;
        tokio::time::timeout(self.transport_timeout, self.transport.send(request))
            .await
            .unwrap_or_else(|_| {
                Err(TransportError::Timeout(format!(
                    "no response within {:?}",
                    self.transport_timeout
                )))
            })
    }
}
