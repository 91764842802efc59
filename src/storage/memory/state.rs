//! The store's data and every operation on it, synchronous: the async
//! [`Storage`](crate::storage::Storage) impl only takes the lock and calls in.
//!
//! Secondary indexes keep each operation proportional to what it touches:
//! fan-out walks only the enabled subscribers of one event, claims pop the
//! earliest due keys, and deleting a subscription visits only its deliveries.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::delivery::{wants, CircuitBreaker};
use crate::model::{
    DeliveryDetail, DeliveryId, EventId, OrganizationId, SubscriptionChange, SubscriptionId,
    WebhookSubscription,
};
use crate::storage::{
    AttemptLog, ClaimLimits, ClaimedDelivery, Delivery, DeliveryState, EndpointHealth,
    HealthChange, Lease, LeaseOutcome, NewEvent, NextStep, Recorded,
};

use super::MemoryStoreStats;
use crate::storage::{
    Error, ErrorKind, FailedSelection, QueueStats, Result, QUEUE_STATS_COUNT_LIMIT,
};

/// Position in the queue's ordered indexes: a time, then the delivery's
/// creation sequence so equal times stay distinct and first-come first.
type QueueKey = (DateTime<Utc>, u64);

#[derive(Debug, Default)]
pub(super) struct State {
    /// Keyed by organization first, so another organization's id is simply
    /// absent and one organization's subscriptions are a contiguous range.
    subscriptions: BTreeMap<(OrganizationId, SubscriptionId), Entry>,
    subscribers: Subscribers,
    queue: Queue,
    /// Event ids already enqueued, with the instant they are forgotten.
    seen: HashMap<(OrganizationId, EventId), DateTime<Utc>>,
    seen_by_expiry: BTreeSet<(DateTime<Utc>, OrganizationId, EventId)>,
    next_seq: u64,
    /// Lease tokens only need to be unique within this store: a counter
    /// gives that without reading OS randomness on every claim.
    next_token: u64,
    log_entries: usize,
}

/// One stored subscription.
#[derive(Debug)]
struct Entry {
    /// Shared so readers clone it after the lock is released.
    subscription: Arc<WebhookSubscription>,
    /// Insertion order, the tie-break of `list_subscriptions`.
    seq: u64,
    /// Absent until the first delivery, to keep idle subscriptions small.
    activity: Option<Box<Activity>>,
}

#[derive(Debug, Default)]
struct Activity {
    /// Every queued delivery (pending, leased or failed), for delete.
    deliveries: HashSet<DeliveryId>,
    /// Failed deliveries by due time.
    failed: BTreeSet<(DateTime<Utc>, u64, DeliveryId)>,
    /// Attempts per event name, newest first.
    logs: BTreeMap<Arc<str>, VecDeque<AttemptLog>>,
}

impl Entry {
    fn activity(&mut self) -> &mut Activity {
        self.activity.get_or_insert_with(Box::default)
    }
}

/// Which enabled subscriptions want which event, per organization.
#[derive(Debug, Default)]
struct Subscribers {
    /// Interned names of subscribed and attempted events. Never shrinks:
    /// names come from the host's catalogue, so it stays as small.
    names: HashSet<Arc<str>>,
    by_event: BTreeSet<(OrganizationId, Arc<str>, SubscriptionId)>,
}

impl Subscribers {
    fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(interned) = self.names.get(name) {
            return interned.clone();
        }
        let interned: Arc<str> = Arc::from(name);
        self.names.insert(interned.clone());
        interned
    }

    fn add(&mut self, organization: OrganizationId, subscription: &WebhookSubscription) {
        if !subscription.enabled {
            return;
        }
        for event in &subscription.subscribed_events {
            let name = self.intern(event);
            self.by_event.insert((organization, name, subscription.id));
        }
    }

    fn remove(&mut self, organization: OrganizationId, subscription: &WebhookSubscription) {
        for event in &subscription.subscribed_events {
            if let Some(name) = self.names.get(event.as_str()) {
                self.by_event
                    .remove(&(organization, name.clone(), subscription.id));
            }
        }
    }

    /// Disables the subscription of `entry`: it receives nothing more.
    fn disable(&mut self, organization: OrganizationId, entry: &mut Entry) {
        if entry.subscription.enabled {
            self.remove(organization, &entry.subscription);
            Arc::make_mut(&mut entry.subscription).enabled = false;
        }
    }

    fn of(&self, organization: OrganizationId, event: &Arc<str>) -> Vec<SubscriptionId> {
        let first = (organization, event.clone(), SubscriptionId(Uuid::nil()));
        let last = (organization, event.clone(), SubscriptionId(Uuid::max()));
        self.by_event
            .range(first..=last)
            .map(|(_, _, id)| *id)
            .collect()
    }
}

/// Which lane a delivery waits in: one per subscription.
type LaneId = (OrganizationId, SubscriptionId);

/// Every delivery that is pending, leased or failed.
#[derive(Debug, Default)]
struct Queue {
    records: HashMap<DeliveryId, Record>,
    /// Pending and leased deliveries, per subscription.
    lanes: HashMap<LaneId, Lane>,
    /// Every lane by the instant its earliest delivery becomes claimable
    /// (see [`Lane::head`]), so claims visit lanes, never the backlog.
    ready: BTreeSet<(QueueKey, OrganizationId, SubscriptionId)>,
    /// Leased deliveries per organization (expired leases included): an
    /// organization with fewer in flight takes its turn first.
    leased_by_organization: HashMap<OrganizationId, usize>,
    /// The failing endpoints' health. A paused lane's key in `ready` is no
    /// earlier than its `paused_until`, so claims do not even visit it.
    circuits: HashMap<LaneId, EndpointHealth>,
    pending: usize,
    leased: usize,
}

/// The queued deliveries of one subscription.
#[derive(Debug, Default)]
struct Lane {
    /// Pending deliveries by due time.
    pending: BTreeMap<QueueKey, DeliveryId>,
    /// Leased deliveries by lease expiry.
    leases: BTreeMap<QueueKey, DeliveryId>,
    /// This lane's key in [`Queue::ready`].
    head: Option<QueueKey>,
}

impl Lane {
    /// When the lane's earliest delivery becomes claimable: the earliest due
    /// pending delivery or the earliest lease expiry.
    fn head(&self) -> Option<QueueKey> {
        let pending = self.pending.first_key_value().map(|(key, _)| *key);
        let leased = self.leases.first_key_value().map(|(key, _)| *key);
        pending.into_iter().chain(leased).min()
    }

    /// Leases still held at `now`, counting no further than `cap`.
    fn live_leases(&self, now: DateTime<Utc>, cap: usize) -> usize {
        use std::ops::Bound::{Excluded, Unbounded};
        self.leases
            .range((Excluded((now, u64::MAX)), Unbounded))
            .take(cap)
            .count()
    }

    /// Up to `limit` deliveries claimable at `now`, earliest first: pending
    /// and due, or leased with an expired lease.
    fn due(&self, now: DateTime<Utc>, limit: usize) -> Vec<(QueueKey, DeliveryId)> {
        let last = (now, u64::MAX);
        let pending = self.pending.range(..=last).take(limit);
        let expired = self.leases.range(..=last).take(limit);
        let mut due: Vec<_> = pending
            .chain(expired)
            .map(|(key, id)| (*key, *id))
            .collect();
        due.sort_unstable_by_key(|(key, _)| *key);
        due.truncate(limit);
        due
    }
}

/// A delivery a claim may hand out, with its place in the round-robin.
struct Candidate {
    key: QueueKey,
    id: DeliveryId,
    organization: OrganizationId,
    /// Its turn within its subscription (deliveries in flight count as turns taken).
    lane_turn: usize,
    /// Its turn within its organization.
    turn: usize,
}

impl Queue {
    fn lane_of(record: &Record) -> LaneId {
        (record.organization_id, record.subscription_id)
    }

    /// Queues `id` as pending at `key`.
    fn push_pending(&mut self, lane: LaneId, key: QueueKey, id: DeliveryId) {
        self.lanes.entry(lane).or_default().pending.insert(key, id);
        self.pending += 1;
        self.refresh(lane);
    }

    /// Queues `id` as leased until `key`.
    fn push_lease(&mut self, lane: LaneId, key: QueueKey, id: DeliveryId) {
        self.lanes.entry(lane).or_default().leases.insert(key, id);
        self.leased += 1;
        *self.leased_by_organization.entry(lane.0).or_default() += 1;
        self.refresh(lane);
    }

    /// Makes a failed record pending again, due at `now` with a fresh attempt count.
    fn requeue(&mut self, id: DeliveryId, now: DateTime<Utc>) {
        let Some(record) = self.records.get_mut(&id) else {
            return;
        };
        record.attempts = 0;
        record.due_at = now;
        record.slot = Slot::Pending;
        let lane = (record.organization_id, record.subscription_id);
        let key = (now, record.seq);
        self.push_pending(lane, key, id);
    }

    /// Removes a record's key from its lane's pending or lease index.
    fn unqueue(&mut self, record: &Record) {
        let lane_id = Self::lane_of(record);
        let Some(lane) = self.lanes.get_mut(&lane_id) else {
            return;
        };
        match record.slot {
            Slot::Pending => {
                if lane.pending.remove(&(record.due_at, record.seq)).is_some() {
                    self.pending -= 1;
                }
            }
            Slot::Leased { expires_at, .. } => {
                if lane.leases.remove(&(expires_at, record.seq)).is_some() {
                    self.leased -= 1;
                    let organization = record.organization_id;
                    if let Some(count) = self.leased_by_organization.get_mut(&organization) {
                        *count -= 1;
                        if *count == 0 {
                            self.leased_by_organization.remove(&organization);
                        }
                    }
                }
            }
            Slot::Failed => {}
        }
        self.refresh(lane_id);
    }

    /// Brings the lane's key in `ready` up to date: its head, but not before
    /// its circuit's cool-down ends. Drops an empty lane.
    fn refresh(&mut self, lane_id: LaneId) {
        let Some(lane) = self.lanes.get_mut(&lane_id) else {
            return;
        };
        let paused_until = self.circuits.get(&lane_id).and_then(|h| h.paused_until);
        let head = lane
            .head()
            .map(|head| paused_until.map_or(head, |until| head.max((until, 0))));
        if head == lane.head {
            return;
        }
        if let Some(old) = lane.head {
            self.ready.remove(&(old, lane_id.0, lane_id.1));
        }
        lane.head = head;
        match head {
            Some(new) => {
                self.ready.insert((new, lane_id.0, lane_id.1));
            }
            None => {
                self.lanes.remove(&lane_id);
            }
        }
    }

    /// Up to `limit` deliveries claimable at `now`, in the order they take
    /// their turns, leaving each subscription at most `cap` live leases.
    fn due(&self, now: DateTime<Utc>, limit: usize, cap: usize) -> Vec<Candidate> {
        let mut candidates = Vec::new();
        let last = (now, u64::MAX);
        for &(head, organization, subscription) in &self.ready {
            if head > last {
                break;
            }
            let Some(lane) = self.lanes.get(&(organization, subscription)) else {
                continue;
            };
            // A circuit that opened lets one probe through at a time.
            let cap = match self.circuits.get(&(organization, subscription)) {
                Some(EndpointHealth {
                    paused_until: Some(_),
                    ..
                }) => cap.min(1),
                _ => cap,
            };
            let live = lane.live_leases(now, cap);
            let room = cap.saturating_sub(live).min(limit);
            for (turn, (key, id)) in lane.due(now, room).into_iter().enumerate() {
                candidates.push(Candidate {
                    key,
                    id,
                    organization,
                    lane_turn: live + turn,
                    turn: 0,
                });
            }
        }
        // Turns within an organization: its deliveries in flight count as
        // turns already taken.
        candidates.sort_unstable_by_key(|c| (c.organization, c.lane_turn, c.key));
        let mut previous = None;
        let mut turn = 0;
        for candidate in &mut candidates {
            if previous != Some(candidate.organization) {
                previous = Some(candidate.organization);
                turn = self
                    .leased_by_organization
                    .get(&candidate.organization)
                    .copied()
                    .unwrap_or(0);
            }
            candidate.turn = turn;
            turn += 1;
        }
        candidates.sort_unstable_by_key(|c| (c.turn, c.lane_turn, c.key));
        candidates.truncate(limit);
        candidates
    }
}

/// One event's delivery to one subscription.
#[derive(Debug)]
struct Record {
    organization_id: OrganizationId,
    subscription_id: SubscriptionId,
    event: Arc<EventData>,
    seq: u64,
    attempts: u32,
    due_at: DateTime<Utc>,
    slot: Slot,
}

/// What every delivery of one event shares.
#[derive(Debug)]
struct EventData {
    organization_id: OrganizationId,
    event_id: EventId,
    name: Arc<str>,
    payload: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Pending,
    Leased {
        token: Uuid,
        expires_at: DateTime<Utc>,
    },
    Failed,
}

impl Record {
    fn to_delivery(&self, id: DeliveryId) -> Delivery {
        Delivery {
            id,
            organization_id: self.organization_id,
            subscription_id: self.subscription_id,
            event_id: self.event.event_id,
            event_name: self.event.name.to_string(),
            payload: self.event.payload.clone(),
            attempts: self.attempts,
            due_at: self.due_at,
            state: match self.slot {
                Slot::Pending => DeliveryState::Pending,
                Slot::Leased { .. } => DeliveryState::Leased,
                Slot::Failed => DeliveryState::Failed,
            },
        }
    }

    fn holds(&self, lease: &Lease) -> bool {
        matches!(self.slot, Slot::Leased { token, .. } if token == lease.token)
    }
}

/// A failure of this store.
fn memory_error(kind: ErrorKind, message: impl Into<String>) -> Error {
    Error::new("memory", kind, message.into())
}

/// `count` fresh v4 UUIDs from a single read of the OS randomness (one
/// system call under the lock rather than one per id).
fn random_uuids(count: usize) -> Result<Vec<Uuid>> {
    let mut bytes = vec![0u8; count * 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| memory_error(ErrorKind::Other, format!("os randomness: {e}")))?;
    Ok(bytes
        .chunks_exact(16)
        .map(|chunk| {
            let mut random = [0u8; 16];
            random.copy_from_slice(chunk);
            uuid::Builder::from_random_bytes(random).into_uuid()
        })
        .collect())
}

/// Whether a change gives a failing endpoint a fresh start (its circuit
/// closes): a new URL, or the subscription enabled again.
fn heals(old: &WebhookSubscription, new: &WebhookSubscription) -> bool {
    old.url != new.url || (!old.enabled && new.enabled)
}

fn later(at: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    at.checked_add_signed(by)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl State {
    fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Visits only the lanes whose head is claimable, and in each the due
    /// ends of its two ordered indexes, counting at most
    /// [`QUEUE_STATS_COUNT_LIMIT`] deliveries.
    pub(super) fn queue_stats(&self, now: DateTime<Utc>) -> QueueStats {
        let last = (now, u64::MAX);
        let limit = usize::try_from(QUEUE_STATS_COUNT_LIMIT).unwrap_or(usize::MAX);
        let ready = self
            .queue
            .ready
            .iter()
            .take_while(|(head, _, _)| *head <= last);
        let oldest_due_at = ready.clone().next().map(|((at, _), _, _)| *at);
        let mut due = 0;
        for (_, organization, subscription) in ready {
            if due >= limit {
                break;
            }
            if let Some(lane) = self.queue.lanes.get(&(*organization, *subscription)) {
                due += lane.pending.range(..=last).take(limit - due).count();
                due += lane
                    .leases
                    .range(..=last)
                    .take(limit.saturating_sub(due))
                    .count();
            }
        }
        QueueStats {
            due: u64::try_from(due)
                .unwrap_or(u64::MAX)
                .min(QUEUE_STATS_COUNT_LIMIT),
            oldest_due_at,
        }
    }

    pub(super) fn stats(&self) -> MemoryStoreStats {
        let pending = self.queue.pending;
        let leased = self.queue.leased;
        MemoryStoreStats {
            subscriptions: self.subscriptions.len(),
            pending_deliveries: pending,
            leased_deliveries: leased,
            failed_deliveries: self.queue.records.len() - pending - leased,
            event_ids: self.seen.len(),
            log_entries: self.log_entries,
        }
    }

    pub(super) fn insert(
        &mut self,
        organization: OrganizationId,
        subscription: &WebhookSubscription,
    ) -> Result<()> {
        let key = (organization, subscription.id);
        if self.subscriptions.contains_key(&key) {
            return Err(memory_error(
                ErrorKind::Conflict,
                "subscription id already exists",
            ));
        }
        let seq = self.next_seq();
        self.subscribers.add(organization, subscription);
        self.subscriptions.insert(
            key,
            Entry {
                subscription: Arc::new(subscription.clone()),
                seq,
                activity: None,
            },
        );
        Ok(())
    }

    pub(super) fn get(
        &self,
        organization: OrganizationId,
        id: SubscriptionId,
    ) -> Option<Arc<WebhookSubscription>> {
        self.subscriptions
            .get(&(organization, id))
            .map(|entry| entry.subscription.clone())
    }

    pub(super) fn list(&self, organization: OrganizationId) -> Vec<Arc<WebhookSubscription>> {
        let first = (organization, SubscriptionId(Uuid::nil()));
        let last = (organization, SubscriptionId(Uuid::max()));
        let mut found: Vec<(DateTime<Utc>, u64, Arc<WebhookSubscription>)> = self
            .subscriptions
            .range(first..=last)
            .map(|(_, entry)| {
                let sub = &entry.subscription;
                (sub.created_at, entry.seq, sub.clone())
            })
            .collect();
        found.sort_unstable_by_key(|(created_at, seq, _)| (*created_at, *seq));
        found.into_iter().map(|(_, _, sub)| sub).collect()
    }

    pub(super) fn update(
        &mut self,
        organization: OrganizationId,
        id: SubscriptionId,
        change: &SubscriptionChange,
    ) -> Option<Arc<WebhookSubscription>> {
        let entry = self.subscriptions.get_mut(&(organization, id))?;
        let mut updated = WebhookSubscription::clone(&entry.subscription);
        updated.apply(change);
        let old = &entry.subscription;
        if old.enabled != updated.enabled || old.subscribed_events != updated.subscribed_events {
            self.subscribers.remove(organization, old);
            self.subscribers.add(organization, &updated);
        }
        if heals(old, &updated) && self.queue.circuits.remove(&(organization, id)).is_some() {
            self.queue.refresh((organization, id));
        }
        entry.subscription = Arc::new(updated);
        Some(entry.subscription.clone())
    }

    pub(super) fn delete(&mut self, organization: OrganizationId, id: SubscriptionId) -> bool {
        let Some(entry) = self.subscriptions.remove(&(organization, id)) else {
            return false;
        };
        self.queue.circuits.remove(&(organization, id));
        self.subscribers.remove(organization, &entry.subscription);
        if let Some(activity) = entry.activity {
            for delivery in &activity.deliveries {
                if let Some(record) = self.queue.records.remove(delivery) {
                    self.queue.unqueue(&record);
                }
            }
            let logged: usize = activity.logs.values().map(VecDeque::len).sum();
            self.log_entries -= logged;
        }
        true
    }

    /// Fan-out through the index of enabled subscribers by event name (the
    /// fast path), with [`wants`] deciding for each of them.
    pub(super) fn enqueue(&mut self, event: &NewEvent, dedup_window: Duration) -> Result<usize> {
        // A name never interned has no subscribers; publishing alone does not intern.
        let targets = match self.subscribers.names.get(event.event_name.as_str()) {
            Some(name) => self.subscribers.of(event.organization_id, name),
            None => Vec::new(),
        };
        let queued = self.enqueue_to(event, &targets, dedup_window, |s| wants(s, event))?;
        Ok(queued.len())
    }

    /// Persists a chosen fan-out: unless the event id was seen, remembers it
    /// and queues one delivery per target of the event's organization that
    /// `accept` takes (due at `published_at`).
    pub(super) fn enqueue_to(
        &mut self,
        event: &NewEvent,
        targets: &[SubscriptionId],
        dedup_window: Duration,
        accept: impl Fn(&WebhookSubscription) -> bool,
    ) -> Result<Vec<DeliveryId>> {
        let now = event.published_at;
        self.forget_seen_until(now);
        let key = (event.organization_id, event.event_id);
        if self.seen.contains_key(&key) {
            return Ok(Vec::new());
        }
        let ids = random_uuids(targets.len())?;
        let forget_at = later(now, dedup_window);
        self.seen.insert(key, forget_at);
        self.seen_by_expiry
            .insert((forget_at, event.organization_id, event.event_id));
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let data = Arc::new(EventData {
            organization_id: event.organization_id,
            event_id: event.event_id,
            name: self.subscribers.intern(&event.event_name),
            payload: event.payload.clone(),
        });
        let mut queued = Vec::with_capacity(targets.len());
        for (&subscription, id) in targets.iter().zip(ids) {
            let id = DeliveryId(id);
            if self.push_delivery(subscription, &data, id, now, &accept) {
                queued.push(id);
            }
        }
        Ok(queued)
    }

    /// Queues one delivery of `event` to `subscription` of its organization,
    /// due at `now`; false if the subscription is not there or `accept`
    /// refuses it.
    fn push_delivery(
        &mut self,
        subscription: SubscriptionId,
        event: &Arc<EventData>,
        id: DeliveryId,
        now: DateTime<Utc>,
        accept: impl Fn(&WebhookSubscription) -> bool,
    ) -> bool {
        let Some(entry) = self
            .subscriptions
            .get_mut(&(event.organization_id, subscription))
        else {
            return false;
        };
        if !accept(&entry.subscription) {
            return false;
        }
        entry.activity().deliveries.insert(id);
        let seq = self.next_seq();
        self.queue
            .push_pending((event.organization_id, subscription), (now, seq), id);
        self.queue.records.insert(
            id,
            Record {
                organization_id: event.organization_id,
                subscription_id: subscription,
                event: event.clone(),
                seq,
                attempts: 0,
                due_at: now,
                slot: Slot::Pending,
            },
        );
        true
    }

    fn forget_seen_until(&mut self, now: DateTime<Utc>) {
        while let Some(&(forget_at, organization, event)) = self.seen_by_expiry.first() {
            if forget_at > now {
                break;
            }
            self.seen_by_expiry.pop_first();
            self.seen.remove(&(organization, event));
        }
    }

    pub(super) fn claim(
        &mut self,
        now: DateTime<Utc>,
        lease_for: Duration,
        limits: ClaimLimits,
    ) -> Vec<ClaimedDelivery> {
        let expires_at = later(now, lease_for);
        let due = self.queue.due(now, limits.batch, limits.per_subscription);
        let mut claimed = Vec::with_capacity(due.len());
        for candidate in due {
            let id = candidate.id;
            let Some(mut record) = self.queue.records.remove(&id) else {
                continue;
            };
            self.queue.unqueue(&record);
            let lane = Queue::lane_of(&record);
            let Some(entry) = self.subscriptions.get(&lane) else {
                // Unreachable while the indexes agree (deleting a subscription
                // removes its records); dropping an orphan keeps claims moving.
                continue;
            };
            self.next_token += 1;
            let token = Uuid::from_u64_pair(0, self.next_token);
            self.queue.push_lease(lane, (expires_at, record.seq), id);
            record.slot = Slot::Leased { token, expires_at };
            claimed.push(ClaimedDelivery {
                delivery: record.to_delivery(id),
                subscription: entry.subscription.clone(),
                lease: Lease {
                    delivery_id: id,
                    token,
                    expires_at,
                },
            });
            self.queue.records.insert(id, record);
        }
        claimed
    }

    pub(super) fn record_attempt(
        &mut self,
        claim: &ClaimedDelivery,
        detail: &DeliveryDetail,
        next: NextStep,
        breaker: Option<&CircuitBreaker>,
        log_cap: usize,
    ) -> Recorded {
        let delivery = &claim.delivery;
        let key = (delivery.organization_id, delivery.subscription_id);
        let Some(entry) = self.subscriptions.get_mut(&key) else {
            return Recorded::new(LeaseOutcome::LeaseLost, None);
        };
        let name = self.subscribers.intern(&delivery.event_name);
        let log = entry.activity().logs.entry(name).or_default();
        log.push_front(AttemptLog {
            delivery_id: delivery.id,
            event_id: delivery.event_id,
            detail: detail.clone(),
            payload: delivery.payload.clone(),
        });
        self.log_entries += 1;
        if log.len() > log_cap {
            let dropped = log.len() - log_cap;
            log.truncate(log_cap);
            self.log_entries -= dropped;
        }

        let change = breaker.and_then(|breaker| {
            let before = self.queue.circuits.get(&key);
            let paused_before = before.and_then(|h| h.paused_until);
            let update = breaker.after_attempt(before, detail.success, detail.delivery_timestamp);
            match update.health {
                Some(health) => self.queue.circuits.insert(key, health),
                None => self.queue.circuits.remove(&key),
            };
            // The lane's place in the queue moves only with its pause.
            if update.health.and_then(|h| h.paused_until) != paused_before {
                self.queue.refresh(key);
            }
            update.change
        });
        if matches!(change, Some(HealthChange::Disabled { .. })) {
            self.subscribers.disable(key.0, entry);
        }
        let lease = self.apply_next_step(claim, next);
        Recorded::new(lease, change)
    }

    /// Applies `next` to the claimed delivery if the claim's lease still holds.
    fn apply_next_step(&mut self, claim: &ClaimedDelivery, next: NextStep) -> LeaseOutcome {
        let delivery = &claim.delivery;
        let key = (delivery.organization_id, delivery.subscription_id);
        let held = self
            .queue
            .records
            .get(&delivery.id)
            .is_some_and(|record| record.holds(&claim.lease));
        let Some(entry) = self.subscriptions.get_mut(&key).filter(|_| held) else {
            return LeaseOutcome::LeaseLost;
        };
        let Some(mut record) = self.queue.records.remove(&delivery.id) else {
            return LeaseOutcome::LeaseLost;
        };
        self.queue.unqueue(&record);
        record.attempts = record.attempts.saturating_add(1);
        let activity = entry.activity();
        match next {
            NextStep::Complete => {
                activity.deliveries.remove(&delivery.id);
                return LeaseOutcome::Applied;
            }
            NextStep::Retry { at } => {
                record.due_at = at;
                record.slot = Slot::Pending;
                self.queue.push_pending(key, (at, record.seq), delivery.id);
            }
            NextStep::Fail | NextStep::FailAndDisable => {
                record.slot = Slot::Failed;
                activity
                    .failed
                    .insert((record.due_at, record.seq, delivery.id));
                if next == NextStep::FailAndDisable {
                    self.subscribers.disable(key.0, entry);
                }
            }
        }
        self.queue.records.insert(delivery.id, record);
        LeaseOutcome::Applied
    }

    /// The failure streak of a subscription's endpoint, if it is failing.
    pub(super) fn health(
        &self,
        organization: OrganizationId,
        subscription: SubscriptionId,
    ) -> Option<EndpointHealth> {
        self.subscriptions.get(&(organization, subscription))?;
        self.queue
            .circuits
            .get(&(organization, subscription))
            .copied()
    }

    pub(super) fn release(&mut self, claim: &ClaimedDelivery) -> LeaseOutcome {
        let id = claim.delivery.id;
        let Some(record) = self.queue.records.get(&id) else {
            return LeaseOutcome::LeaseLost;
        };
        if !record.holds(&claim.lease) {
            return LeaseOutcome::LeaseLost;
        }
        let Some(mut record) = self.queue.records.remove(&id) else {
            return LeaseOutcome::LeaseLost;
        };
        self.queue.unqueue(&record);
        // `due_at` is no later than the claim, so it is claimable again at once.
        record.slot = Slot::Pending;
        let lane = Queue::lane_of(&record);
        self.queue
            .push_pending(lane, (record.due_at, record.seq), id);
        self.queue.records.insert(id, record);
        LeaseOutcome::Applied
    }

    pub(super) fn failed(
        &self,
        organization: OrganizationId,
        subscription: SubscriptionId,
        limit: usize,
    ) -> Vec<Delivery> {
        let Some(activity) = self.activity(organization, subscription) else {
            return Vec::new();
        };
        activity
            .failed
            .iter()
            .rev()
            .filter_map(|&(_, _, id)| self.queue.records.get(&id).map(|r| r.to_delivery(id)))
            .take(limit)
            .collect()
    }

    pub(super) fn redeliver(
        &mut self,
        organization: OrganizationId,
        id: DeliveryId,
        now: DateTime<Utc>,
    ) -> bool {
        let Some(record) = self.queue.records.get_mut(&id) else {
            return false;
        };
        if record.organization_id != organization || record.slot != Slot::Failed {
            return false;
        }
        let key = (organization, record.subscription_id);
        if let Some(activity) = self
            .subscriptions
            .get_mut(&key)
            .and_then(|entry| entry.activity.as_deref_mut())
        {
            activity.failed.remove(&(record.due_at, record.seq, id));
        }
        self.queue.requeue(id, now);
        true
    }

    pub(super) fn redeliver_failed(
        &mut self,
        organization: OrganizationId,
        subscription: SubscriptionId,
        which: FailedSelection,
        now: DateTime<Utc>,
        limit: usize,
    ) -> usize {
        let Some(activity) = self
            .subscriptions
            .get_mut(&(organization, subscription))
            .and_then(|entry| entry.activity.as_deref_mut())
        else {
            return 0;
        };
        let picked: Vec<(DateTime<Utc>, u64, DeliveryId)> = match which {
            // The subscription's failed index holds the key only if the
            // record is its own and failed.
            FailedSelection::One(id) => self
                .queue
                .records
                .get(&id)
                .map(|record| (record.due_at, record.seq, id))
                .filter(|key| activity.failed.contains(key))
                .into_iter()
                .take(limit)
                .collect(),
            FailedSelection::Since(since) => activity
                .failed
                .range((since, 0, DeliveryId(Uuid::nil()))..)
                .rev()
                .copied()
                .take(limit)
                .collect(),
        };
        for key @ (_, _, id) in &picked {
            activity.failed.remove(key);
            self.queue.requeue(*id, now);
        }
        picked.len()
    }

    pub(super) fn attempts(
        &self,
        organization: OrganizationId,
        subscription: SubscriptionId,
        event: &str,
    ) -> Vec<AttemptLog> {
        self.activity(organization, subscription)
            .and_then(|activity| activity.logs.get(event))
            .map(|log| log.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub(super) fn latest(
        &self,
        organization: OrganizationId,
        subscription: SubscriptionId,
    ) -> Vec<(String, DeliveryDetail)> {
        let Some(activity) = self.activity(organization, subscription) else {
            return Vec::new();
        };
        activity
            .logs
            .iter()
            .filter_map(|(event, log)| log.front().map(|a| (event.to_string(), a.detail.clone())))
            .collect()
    }

    pub(super) fn prune(&mut self, now: DateTime<Utc>, before: DateTime<Utc>) -> u64 {
        self.forget_seen_until(now);
        let mut removed = 0u64;
        for entry in self.subscriptions.values_mut() {
            let Some(activity) = entry.activity.as_deref_mut() else {
                continue;
            };
            while let Some(&(due_at, _, id)) = activity.failed.first() {
                if due_at >= before {
                    break;
                }
                activity.failed.pop_first();
                activity.deliveries.remove(&id);
                self.queue.records.remove(&id);
                removed += 1;
            }
            for log in activity.logs.values_mut() {
                while log
                    .back()
                    .is_some_and(|a| a.detail.delivery_timestamp < before)
                {
                    log.pop_back();
                    self.log_entries -= 1;
                    removed += 1;
                }
            }
            activity.logs.retain(|_, log| !log.is_empty());
        }
        removed
    }

    fn activity(
        &self,
        organization: OrganizationId,
        subscription: SubscriptionId,
    ) -> Option<&Activity> {
        self.subscriptions
            .get(&(organization, subscription))?
            .activity
            .as_deref()
    }
}
