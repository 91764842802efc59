//! The delivery worker (feature `runtime-tokio`): claims due deliveries,
//! sends them with bounded concurrency, and records every attempt.

use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinError, JoinSet};
use tracing::field::{self, Empty};
use tracing::{debug, debug_span, info, warn, Instrument, Span};

use super::breaker::CircuitBreaker;
use super::events::{DeliveryRef, DisableReason, FailureReason, StoreOperation, WorkerEvent};
use super::outcome::{delivery_detail, AttemptResult, Outcome};
use super::request::build_request;
use super::retry::{JitterSource, OsJitter, RetryPolicy};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::model::time::truncate_to_millis;
use crate::model::{DeliveryDetail, DeliveryId, OrganizationId, SubscriptionId, TEST_EVENT};
use crate::signature::SignatureScheme;
use crate::storage::{ClaimLimits, ClaimedDelivery, HealthChange, LeaseOutcome, NextStep};
use crate::storage::{DeliveryQueue, Error as StoreError, Storage};
use crate::transport::{Transport, TransportError};
use crate::webhooks::DEFAULT_TRANSPORT_TIMEOUT;

/// How much longer than the transport timeout a lease must last at least:
/// time to sign before sending and to record the outcome after it.
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);

const DEFAULT_LEASE: Duration = Duration::from_secs(60);
const DEFAULT_CONCURRENCY: usize = 32;
const DEFAULT_BATCH_SIZE: usize = 32;
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(200);
#[cfg(feature = "metrics")]
const DEFAULT_QUEUE_STATS_INTERVAL: Duration = Duration::from_secs(10);

type EventHook = Arc<dyn Fn(&WorkerEvent<'_>) + Send + Sync>;

/// The default of [`WorkerBuilder::retention`]: 30 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 60 * 60);
const DEFAULT_MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60 * 60);
/// The default of [`WorkerBuilder::max_in_flight_per_subscription`].
pub const DEFAULT_MAX_IN_FLIGHT_PER_SUBSCRIPTION: usize = 4;

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
/// A test event ([`TEST_EVENT`](crate::model::TEST_EVENT)) is sent to its
/// enabled subscription whatever events that subscribes to.
///
/// What it does is observable: each attempt runs in a `tracing` span with
/// its ids, failures are logged (never a secret or a header value), every
/// noteworthy step reaches the [`on_event`](WorkerBuilder::on_event) hook as
/// a [`WorkerEvent`], and with feature `metrics` attempts and the queue are
/// measured (see `webhook_subscriptions::delivery::metrics`).
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
    max_in_flight_per_subscription: usize,
    breaker: CircuitBreaker,
    retention: TimeDelta,
    maintenance_interval: Duration,
    poll_interval: Duration,
    transport_timeout: Duration,
    on_event: Option<EventHook>,
    #[cfg(feature = "metrics")]
    queue_stats_interval: Duration,
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
            .field(
                "max_in_flight_per_subscription",
                &inner.max_in_flight_per_subscription,
            )
            .field("breaker", &inner.breaker)
            .field("retention", &inner.retention)
            .field("maintenance_interval", &inner.maintenance_interval)
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
    max_in_flight_per_subscription: usize,
    breaker: CircuitBreaker,
    retention: Duration,
    maintenance_interval: Duration,
    poll_interval: Duration,
    transport_timeout: Duration,
    on_event: Option<EventHook>,
    #[cfg(feature = "metrics")]
    queue_stats_interval: Duration,
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
            .field(
                "max_in_flight_per_subscription",
                &self.max_in_flight_per_subscription,
            )
            .field("breaker", &self.breaker)
            .field("retention", &self.retention)
            .field("maintenance_interval", &self.maintenance_interval)
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
    /// An attempt holds its slot until its outcome is recorded in the store:
    /// until then the store counts it against its subscription's in-flight
    /// cap, and a slot freed earlier could only go to another subscription.
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

    /// The most attempts one subscription may have in flight at once,
    /// across every worker sharing the store (default
    /// [`DEFAULT_MAX_IN_FLIGHT_PER_SUBSCRIPTION`], 4).
    ///
    /// Claims skip a saturated subscription, so an endpoint that stalls
    /// until the transport timeout holds at most this many slots, and
    /// everyone else's deliveries keep flowing. Claims also take turns across
    /// organizations and their subscriptions (see
    /// [`DeliveryQueue::claim_deliveries_fairly`]).
    pub fn max_in_flight_per_subscription(mut self, max: usize) -> Self {
        self.max_in_flight_per_subscription = max;
        self
    }

    /// How long failed deliveries (with their payloads) and attempt log
    /// entries are kept (default [`DEFAULT_RETENTION`], 30 days): older ones
    /// are removed by [`Worker::prune`], which [`Worker::run`] calls every
    /// maintenance interval. Pending deliveries are never removed.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// How often [`Worker::run`] prunes (default 1 hour; see
    /// [`retention`](Self::retention)). Each worker sharing a store prunes;
    /// pruning twice removes nothing the second time.
    pub fn maintenance_interval(mut self, interval: Duration) -> Self {
        self.maintenance_interval = interval;
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

    /// When a failing endpoint is paused, probed and its subscription
    /// disabled (default: [`CircuitBreaker::default`], opening after 5
    /// failures in a row for 30 s doubling to 1 h, disabling after 5 days
    /// without a success). The state lives in the store, so every worker
    /// sharing it sees the same circuits; give them the same breaker.
    /// [`CircuitBreaker::never`] turns pausing and disabling off.
    pub fn circuit_breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.breaker = breaker;
        self
    }

    /// Calls `hook` with every [`WorkerEvent`]: attempts finished, deliveries
    /// failed for good, subscriptions disabled, store errors and lost
    /// leases; for operational webhooks and alerting. The hook runs on the
    /// worker's tasks as things happen: keep it quick and non-blocking.
    /// Without a hook, events cost nothing.
    pub fn on_event(mut self, hook: impl Fn(&WorkerEvent<'_>) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Arc::new(hook));
        self
    }

    /// How often [`Worker::run`] samples [`DeliveryQueue::queue_stats`] into the
    /// queue gauges, once it has sampled them on starting (default 10 s;
    /// feature `metrics`).
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn queue_stats_interval(mut self, interval: Duration) -> Self {
        self.queue_stats_interval = interval;
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
        if self.maintenance_interval.is_zero() {
            return invalid("maintenance interval must not be zero".to_owned());
        }
        let Ok(retention) = TimeDelta::from_std(self.retention) else {
            return invalid(format!("retention of {:?} is too long", self.retention));
        };
        if self.max_in_flight_per_subscription == 0 {
            return invalid("max in flight per subscription must be at least 1".to_owned());
        }
        if self.poll_interval.is_zero() {
            return invalid("poll interval must not be zero".to_owned());
        }
        if self.transport_timeout.is_zero() {
            return invalid("transport timeout must not be zero".to_owned());
        }
        #[cfg(feature = "metrics")]
        if self.queue_stats_interval.is_zero() {
            return invalid("queue stats interval must not be zero".to_owned());
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
                max_in_flight_per_subscription: self.max_in_flight_per_subscription,
                breaker: self.breaker,
                retention,
                maintenance_interval: self.maintenance_interval,
                poll_interval: self.poll_interval,
                transport_timeout: self.transport_timeout,
                on_event: self.on_event,
                #[cfg(feature = "metrics")]
                queue_stats_interval: self.queue_stats_interval,
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
    /// Failed deliveries and log entries removed by retention.
    pub pruned: u64,
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
            max_in_flight_per_subscription: DEFAULT_MAX_IN_FLIGHT_PER_SUBSCRIPTION,
            breaker: CircuitBreaker::default(),
            retention: DEFAULT_RETENTION,
            maintenance_interval: DEFAULT_MAINTENANCE_INTERVAL,
            poll_interval: DEFAULT_POLL_INTERVAL,
            transport_timeout: DEFAULT_TRANSPORT_TIMEOUT,
            on_event: None,
            #[cfg(feature = "metrics")]
            queue_stats_interval: DEFAULT_QUEUE_STATS_INTERVAL,
        }
    }

    /// Claims the deliveries due now (at most the smaller of batch size and
    /// concurrency), sends them concurrently, records every attempt, and
    /// reports what happened. For hosts that drive delivery themselves.
    ///
    /// Fails only if claiming fails; a failure to record one attempt is
    /// counted in [`RunReport::errors`] (that delivery is retried once its
    /// lease expires). Either store failure is also logged and passed to
    /// the [`on_event`](WorkerBuilder::on_event) hook.
    pub async fn run_once(&self) -> Result<RunReport> {
        let inner = &self.inner;
        let limit = inner.batch_size.min(inner.concurrency);
        let claims = inner
            .claim(limit)
            .await
            .map_err(|e| inner.store_error(StoreOperation::Claim, e))?;
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
    /// attempts in flight: as slots free up the worker claims again, in
    /// batches, while the queue has due deliveries; when it has none, it
    /// looks again after the poll interval.
    ///
    /// On shutdown it stops claiming, lets attempts in flight finish (each
    /// bounded by the transport timeout) and records them, and releases any
    /// claimed delivery not yet sent, so nothing stays leased. Store failures
    /// never stop the loop; they are logged, passed to the
    /// [`on_event`](WorkerBuilder::on_event) hook and counted in the
    /// returned report.
    ///
    /// Dropping the future instead aborts the attempts in flight; nothing is
    /// lost then either, as their deliveries are claimed again once their
    /// leases expire.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> RunReport {
        let inner = self.inner;
        let mut shutdown = pin!(shutdown);
        let stopping = Arc::new(AtomicBool::new(false));
        // One permit per attempt in flight; a task gives its permit back
        // once its attempt is recorded.
        let slots = Arc::new(Semaphore::new(inner.concurrency));
        let mut tasks = JoinSet::new();
        // The first sample is taken before anything is claimed; the
        // sampler, dropped (so stopped) with the loop, takes the others.
        #[cfg(feature = "metrics")]
        let mut sampler = JoinSet::new();
        #[cfg(feature = "metrics")]
        {
            inner.sample_queue().await;
            sampler.spawn(Arc::clone(&inner).sample_queue_periodically());
        }
        let mut report = RunReport::default();
        let batch = inner.concurrency.min(inner.batch_size);
        // Claim once a quarter of a batch of slots is free, not per slot,
        // or as soon as an attempt is recorded.
        let threshold = (batch / 4).max(1);
        // Tasks that ended but are not yet counted hold no slot; this bounds them.
        let max_tasks = inner.concurrency.saturating_mul(2);
        // Whether an attempt was recorded since the last claim.
        let mut recorded = false;
        // Checked between claims: the loop comes round at least once per
        // transport timeout.
        let mut next_maintenance = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= next_maintenance {
                next_maintenance += inner.maintenance_interval;
                match inner.prune().await {
                    Ok(pruned) => report.pruned += pruned,
                    Err(_) => report.errors += 1,
                }
            }
            while let Some(handled) = tasks.try_join_next() {
                report.count(handled);
                recorded = true;
            }
            let room = tasks.len() < max_tasks;
            // A task ends once its attempt is recorded, so the store already
            // counts its subscription's slot as free: claim for the few free
            // slots then rather than wait for more, or a subscription whose
            // receiver answers fast would wait behind slow ones.
            let wanted = if recorded {
                slots.available_permits().clamp(1, batch)
            } else {
                threshold
            };
            recorded = false;
            let free = if room {
                Arc::clone(&slots)
                    .try_acquire_many_owned(permits(wanted))
                    .ok()
            } else {
                None
            };
            let mut claiming = match free {
                Some(permits) => permits,
                None => tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    acquired = Arc::clone(&slots).acquire_many_owned(permits(threshold)), if room => {
                        match acquired {
                            Ok(permits) => permits,
                            // Never closed while the loop runs.
                            Err(_) => break,
                        }
                    }
                    // Looks again with the freed slot (this select's pending
                    // acquire may hold it until the select is over).
                    Some(handled) = tasks.join_next() => {
                        report.count(handled);
                        recorded = true;
                        continue;
                    }
                },
            };
            // Take every other free slot too, up to a batch.
            let more = slots
                .available_permits()
                .min(batch.saturating_sub(claiming.num_permits()));
            if let Ok(extra) = Arc::clone(&slots).try_acquire_many_owned(permits(more)) {
                claiming.merge(extra);
            }
            let limit = claiming.num_permits();
            let claimed = inner.claim(limit).await;
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
                Err(error) => {
                    inner.store_error(StoreOperation::Claim, error);
                    report.errors += 1;
                    0
                }
            };
            report.claimed += got;
            // Unused slots go back before waiting.
            drop(claiming);
            // Fewer than asked: nothing more is due, or the subscriptions
            // with due deliveries are at their in-flight cap. Look again
            // after the poll interval, or as soon as an attempt is recorded.
            let idle = got < limit;
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(handled) = tasks.join_next(), if idle => {
                    report.count(handled);
                    recorded = true;
                }
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

    /// Removes failed deliveries and attempt log entries older than the
    /// retention, and forgets event ids nothing needs any more (see
    /// [`DeliveryQueue::prune`]); returns how many deliveries and entries went.
    /// [`run`](Worker::run) calls it every maintenance interval; hosts that
    /// drive [`run_once`](Worker::run_once) call it themselves.
    pub async fn prune(&self) -> Result<u64> {
        self.inner.prune().await
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

/// The `outcome` of an attempt in logs and metrics.
fn outcome_label(success: bool) -> &'static str {
    if success {
        "success"
    } else {
        "failure"
    }
}

/// A permit count for the semaphore; `build` keeps `concurrency`, and so
/// every count taken from it, within `u32`.
fn permits(count: usize) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

impl Inner {
    async fn prune(&self) -> Result<u64> {
        let now = self.clock.now();
        let before = now
            .checked_sub_signed(self.retention)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        Ok(self.storage.prune(now, before).await?)
    }

    /// Claims up to `limit` due deliveries, fairly and within the
    /// per-subscription cap.
    async fn claim(&self, limit: usize) -> crate::storage::Result<Vec<ClaimedDelivery>> {
        let limits = ClaimLimits::new(limit, self.max_in_flight_per_subscription);
        self.storage
            .claim_deliveries_fairly(self.clock.now(), self.lease, limits)
            .await
    }

    /// Sends one claimed delivery and records the attempt, in a span with
    /// its ids; `slot` (the run loop's slot) is given back once the attempt
    /// is recorded, when the store no longer counts it against its
    /// subscription's in-flight cap.
    async fn handle(
        self: Arc<Self>,
        claim: ClaimedDelivery,
        slot: Option<OwnedSemaphorePermit>,
        stopping: Arc<AtomicBool>,
    ) -> Result<Handled> {
        if stopping.load(Ordering::SeqCst) {
            self.storage
                .release(&claim)
                .await
                .map_err(|e| self.store_error(StoreOperation::Release, e))?;
            return Ok(Handled::Released);
        }
        let delivery = DeliveryRef::of(&claim);
        let span = debug_span!(
            "webhook_attempt",
            subscription_id = %delivery.subscription_id,
            event_id = %delivery.event_id,
            event_name = delivery.event_name,
            attempt = delivery.attempt,
            status = Empty,
            duration_ms = Empty,
            outcome = Empty,
        );
        self.deliver(&claim, delivery, slot).instrument(span).await
    }

    async fn deliver(
        &self,
        claim: &ClaimedDelivery,
        delivery: DeliveryRef<'_>,
        // Held until this returns, after the attempt is recorded.
        _slot: Option<OwnedSemaphorePermit>,
    ) -> Result<Handled> {
        let subscription = &claim.subscription;
        let event = delivery.event_name;
        // A test event goes to its one subscription whatever it subscribes to.
        let wanted = subscription.wants(event) || (subscription.enabled && event == TEST_EVENT);
        if !wanted {
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
            let applied = self.record(claim, &detail, NextStep::Fail, None).await?;
            if applied == LeaseOutcome::Applied {
                self.delivery_failed(delivery, FailureReason::NotSent);
            }
            return Ok(Handled::Skipped);
        }

        let at = self.clock.now();
        let started = Instant::now();
        let result = self.attempt(claim, at).await;
        let latency = started.elapsed();
        let finished = self.clock.now();
        let outcome = Outcome::classify(&result, finished);
        let next = self
            .policy
            .next_step(delivery.attempt, &outcome, finished, &*self.jitter);
        self.attempt_finished(delivery, &result, outcome, latency, next);
        let detail = delivery_detail(&result, at);
        let breaker = Some(&self.breaker);
        if self.record(claim, &detail, next, breaker).await? != LeaseOutcome::Applied {
            return Ok(Handled::LeaseLost);
        }
        match next {
            NextStep::Fail => self.delivery_failed(delivery, FailureReason::RetriesExhausted),
            NextStep::FailAndDisable => {
                self.delivery_failed(delivery, FailureReason::Gone);
                self.subscription_disabled(
                    delivery.organization_id,
                    delivery.subscription_id,
                    DisableReason::Gone,
                );
            }
            _ => {}
        }
        Ok(Handled::Recorded(next))
    }

    /// Records an attempt (counting it towards its endpoint's health with
    /// `breaker`); reports a store error, a lost lease or a change of health.
    async fn record(
        &self,
        claim: &ClaimedDelivery,
        detail: &DeliveryDetail,
        next: NextStep,
        breaker: Option<&CircuitBreaker>,
    ) -> Result<LeaseOutcome> {
        let recorded = self
            .storage
            .record_attempt_with_breaker(claim, detail, next, breaker)
            .await
            .map_err(|e| self.store_error(StoreOperation::RecordAttempt, e))?;
        if let Some(change) = recorded.change {
            self.health_changed(&claim.delivery, change);
        }
        let applied = recorded.lease;
        if applied != LeaseOutcome::Applied {
            let delivery = DeliveryRef::of(claim);
            warn!(
                subscription_id = %delivery.subscription_id,
                delivery_id = %delivery.delivery_id,
                "webhook delivery lease lost before its attempt was recorded"
            );
            self.emit(&WorkerEvent::LeaseLost { delivery });
        }
        Ok(applied)
    }

    fn emit(&self, event: &WorkerEvent<'_>) {
        if let Some(hook) = &self.on_event {
            hook(event);
        }
    }

    /// Logs, counts and reports one attempt: a `warn` line for a failure
    /// (ids, status and error only, never headers or the secret), `debug`
    /// for a success.
    fn attempt_finished(
        &self,
        delivery: DeliveryRef<'_>,
        result: &AttemptResult,
        outcome: Outcome,
        latency: Duration,
        next: NextStep,
    ) {
        let status = result.as_ref().ok().map(|response| response.status);
        let code = status.map_or(0, |status| status.as_u16());
        let duration_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        let success = outcome == Outcome::Success;
        let label = outcome_label(success);
        let span = Span::current();
        span.record("status", code);
        span.record("duration_ms", duration_ms);
        span.record("outcome", label);
        if success {
            debug!(status = code, duration_ms, "webhook attempt delivered");
        } else {
            warn!(
                subscription_id = %delivery.subscription_id,
                event_id = %delivery.event_id,
                event_name = delivery.event_name,
                attempt = delivery.attempt,
                status = code,
                duration_ms,
                outcome = label,
                error = result.as_ref().err().map(field::display),
                next = ?next,
                "webhook attempt failed"
            );
        }
        #[cfg(feature = "metrics")]
        super::metrics::record_attempt(label, latency);
        self.emit(&WorkerEvent::AttemptFinished {
            delivery,
            outcome,
            status,
            latency,
            next,
        });
    }

    fn delivery_failed(&self, delivery: DeliveryRef<'_>, reason: FailureReason) {
        match reason {
            FailureReason::NotSent => info!(
                subscription_id = %delivery.subscription_id,
                delivery_id = %delivery.delivery_id,
                event_name = delivery.event_name,
                %reason,
                "webhook delivery failed"
            ),
            _ => warn!(
                subscription_id = %delivery.subscription_id,
                delivery_id = %delivery.delivery_id,
                event_name = delivery.event_name,
                attempts = delivery.attempt,
                %reason,
                "webhook delivery failed"
            ),
        }
        self.emit(&WorkerEvent::DeliveryFailed { delivery, reason });
    }

    /// Logs and reports a circuit that opened or closed, or a subscription
    /// the circuit breaker disabled.
    fn health_changed(&self, delivery: &crate::storage::Delivery, change: HealthChange) {
        let organization_id = delivery.organization_id;
        let subscription_id = delivery.subscription_id;
        match change {
            HealthChange::CircuitOpened {
                until,
                failure_streak,
            } => {
                info!(
                    %organization_id,
                    %subscription_id,
                    failure_streak,
                    paused_until = %until,
                    "webhook endpoint circuit opened"
                );
                self.emit(&WorkerEvent::CircuitOpened {
                    organization_id,
                    subscription_id,
                    until,
                    failure_streak,
                });
            }
            HealthChange::CircuitClosed => {
                info!(%organization_id, %subscription_id, "webhook endpoint circuit closed");
                self.emit(&WorkerEvent::CircuitClosed {
                    organization_id,
                    subscription_id,
                });
            }
            HealthChange::Disabled { failing_since } => self.subscription_disabled(
                organization_id,
                subscription_id,
                DisableReason::Failing {
                    since: failing_since,
                },
            ),
        }
    }

    /// The one place the worker reports a subscription it disabled.
    fn subscription_disabled(
        &self,
        organization_id: OrganizationId,
        subscription_id: SubscriptionId,
        reason: DisableReason,
    ) {
        info!(%organization_id, %subscription_id, %reason, "webhook subscription disabled");
        self.emit(&WorkerEvent::SubscriptionDisabled {
            organization_id,
            subscription_id,
            reason,
        });
    }

    /// Logs and reports a failed store call, handing its error back.
    fn store_error(&self, operation: StoreOperation, error: StoreError) -> Error {
        warn!(%operation, store = error.store(), error = %error, "webhook store call failed");
        self.emit(&WorkerEvent::StoreError {
            operation,
            error: &error,
        });
        error.into()
    }

    /// Sets the queue gauges from [`DeliveryQueue::queue_stats`].
    #[cfg(feature = "metrics")]
    async fn sample_queue(&self) {
        let now = self.clock.now();
        match self.storage.queue_stats(now).await {
            Ok(stats) => super::metrics::record_queue(stats.due, stats.lag(now)),
            Err(error) => {
                self.store_error(StoreOperation::QueueStats, error);
            }
        }
    }

    /// Samples the queue every `queue_stats_interval`, until dropped.
    #[cfg(feature = "metrics")]
    async fn sample_queue_periodically(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.queue_stats_interval).await;
            self.sample_queue().await;
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
