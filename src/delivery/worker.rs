//! The delivery worker (feature `runtime-tokio`): claims due deliveries,
//! sends them with bounded concurrency, and records every attempt.

use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinError, JoinSet};

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
use crate::webhooks::DEFAULT_TRANSPORT_TIMEOUT;

/// How much longer than the transport timeout a lease must last at least:
/// time to sign before sending and to record the outcome after it.
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);

const DEFAULT_LEASE: Duration = Duration::from_secs(60);
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

    /// The most attempts being sent at once (default 32).
    ///
    /// An attempt's slot frees up as soon as its response (or error) is in;
    /// recording the outcome in the store does not hold it, so a store's
    /// round trips do not throttle sending. [`Worker::run`] keeps at most
    /// twice this many deliveries claimed (sending or recording).
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
        if u32::try_from(self.concurrency).is_err() {
            return invalid(format!("concurrency must be at most {}", u32::MAX));
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
            tasks.spawn(Arc::clone(inner).handle(claim, None, Arc::clone(&never_stopping)));
        }
        while let Some(handled) = tasks.join_next().await {
            report.count(handled);
        }
        Ok(report)
    }

    /// Delivers until `shutdown` completes, keeping up to `concurrency`
    /// attempts being sent: as slots free up the worker claims again, in
    /// batches, while the queue has due deliveries; when it has none, it
    /// looks again after the poll interval.
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
        // One permit per attempt being sent; a task gives its permit back
        // once the response is in, before recording it.
        let slots = Arc::new(Semaphore::new(inner.concurrency));
        let mut tasks = JoinSet::new();
        let mut report = RunReport::default();
        let batch = inner.concurrency.min(inner.batch_size);
        // Claim once a quarter of a batch of slots is free, not per slot.
        let threshold = (batch / 4).max(1);
        // Tasks recording an outcome hold no slot; this bounds them too.
        let max_tasks = inner.concurrency.saturating_mul(2);
        loop {
            while let Some(handled) = tasks.try_join_next() {
                report.count(handled);
            }
            let room = tasks.len() < max_tasks;
            let free = if room {
                Arc::clone(&slots)
                    .try_acquire_many_owned(permits(threshold))
                    .ok()
            } else {
                None
            };
            let mut claiming = match free {
                Some(permits) => permits,
                None => tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    Some(handled) = tasks.join_next(), if !room => {
                        report.count(handled);
                        continue;
                    }
                    acquired = Arc::clone(&slots).acquire_many_owned(permits(threshold)), if room => {
                        match acquired {
                            Ok(permits) => permits,
                            // Never closed while the loop runs.
                            Err(_) => break,
                        }
                    }
                },
            };
            // Take every other free slot too, up to a batch.
            let more = slots.available_permits().min(batch - threshold);
            if let Ok(extra) = Arc::clone(&slots).try_acquire_many_owned(permits(more)) {
                claiming.merge(extra);
            }
            let limit = claiming.num_permits();
            let claimed = inner
                .storage
                .claim_deliveries(inner.clock.now(), inner.lease, limit)
                .await;
            let got = match claimed {
                Ok(claims) => {
                    let got = claims.len();
                    for claim in claims {
                        let slot = claiming.split(1);
                        let task = Arc::clone(&inner).handle(claim, slot, Arc::clone(&stopping));
                        tasks.spawn(task);
                    }
                    got
                }
                Err(_) => {
                    report.errors += 1;
                    0
                }
            };
            report.claimed += got;
            // Unused slots go back before waiting.
            drop(claiming);
            let idle = got < limit;
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = tokio::time::sleep(inner.poll_interval), if idle => {}
                () = std::future::ready(()), if !idle => {}
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

/// A permit count for the semaphore; `build` keeps `concurrency`, and so
/// every count taken from it, within `u32`.
fn permits(count: usize) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

impl Inner {
    /// Sends one claimed delivery and records the attempt; `slot` (the
    /// run loop's sending slot) is given back once the response is in.
    async fn handle(
        self: Arc<Self>,
        claim: ClaimedDelivery,
        slot: Option<OwnedSemaphorePermit>,
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
            drop(slot);
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
        drop(slot);
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
