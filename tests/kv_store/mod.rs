//! `KvStore`: the `Storage` contract on a Redis-shaped toy engine, to show
//! how a Redis (or similarly shaped) backend meets it.
//!
//! # The engine
//!
//! [`kv::Kv`] holds keys of Redis's types and offers only Redis commands:
//! strings (GET/SET/DEL/EXISTS/INCRBY), hashes (HGET/HSET/HDEL/HGETALL),
//! sorted sets (ZADD/ZREM/ZSCORE/ZCOUNT, ZRANGEBYSCORE and ZREVRANGEBYSCORE
//! with LIMIT), sets (SADD/SREM/SMEMBERS) and lists (LPUSH/LTRIM/LRANGE),
//! plus KEYS for the tests. Values are bytes, records are serde_json, and an
//! emptied collection vanishes as in Redis. Scores are integers (milliseconds,
//! exact in Redis's doubles up to 2^53) and score ranges inclusive: Redis's
//! exclusive `(x` is `x + 1`.
//!
//! Every `Storage` method is one script, like a Lua script under EVAL, which
//! Redis runs atomically: a closure over the engine under one global mutex
//! ([`kv::Engine::script`]), using the commands above and nothing kept beside
//! the engine. As in Redis, a script that fails half-way is not rolled back.
//! Only `prune` runs as several scripts (see below).
//!
//! # Keys
//!
//! | key | type | holds |
//! |---|---|---|
//! | `seq`, `tokens` | string | INCR counters: insertion order and delivery ids; lease tokens |
//! | `sub:{org}:{sub}` | hash | `json` (the subscription), `seq`, `prev_key`/`prev_until` (the rotated-out secret, which the JSON skips) |
//! | `subs:{org}` | zset | `{seq}:{sub}` by `created_at` |
//! | `dlv:{org}:{id}` | hash | `rec` (JSON: subscription, event, attempts, due, state, lease) and `payload` (raw bytes) |
//! | `dlvs:{org}:{sub}` | set | every queued delivery of the subscription (for delete) |
//! | `lane:{org}:{sub}` | zset | pending `{seq}:{id}` by due time |
//! | `inflight:{org}:{sub}` | zset | leased `{seq}:{id}` by lease expiry |
//! | `failed:{org}:{sub}` | zset | failed `{seq}:{id}` by due time |
//! | `ready` | zset | lanes `{org}:{sub}` by when their first delivery is claimable, not before the circuit's pause ends |
//! | `leased:{org}` | string | leases of the organization, expired ones included (its turns taken) |
//! | `health:{org}:{sub}` | hash | the circuit breaker's `streak`, `since`, `paused`, `opened` |
//! | `log:{org}:{sub}:{event}` | list | attempts, newest first, capped |
//! | `logs:{org}:{sub}` | set | events with a log |
//! | `seen:{org}:{event_id}` | string | when the event id is forgotten |
//! | `failed_all`, `log_tails`, `seen_expiry` | zset | retention indexes: failed `{org}:{id}` by due time, log keys by their oldest entry, seen ids by expiry |
//!
//! # What was awkward
//!
//! - **`claim_deliveries_fairly`**: the turns (round-robin over
//!   organizations, then subscriptions, in-flight deliveries counting as
//!   turns taken) need every claimable lane at once: one script does
//!   ZRANGEBYSCORE `ready` with no LIMIT, then per lane an HGETALL of its
//!   health, a ZCOUNT of its live leases and two ZRANGEBYSCOREs, and sorts
//!   the candidates (a Lua `table.sort`). Work follows the number of ready
//!   lanes, as the contract allows, but Redis is blocked for all of it, and
//!   `ready` and `leased:{org}` are keys of every organization, so in Redis
//!   Cluster all keys would need one hash tag: one shard for the whole queue.
//! - **Fan-out**: `enqueue_event` is the trait's provided one: it lists the
//!   organization's subscriptions, lets `delivery::select_targets` pick, and
//!   hands the targets to `enqueue_deliveries`, one script of an HSET, SADD
//!   and two ZADDs per target. The script's keys are then known before it
//!   runs (declarable in KEYS, as Cluster requires), and no
//!   `subscribers:{org}:{event}` index has to be kept in step by every
//!   write. Still awkward: the script is unbounded in the number of
//!   targets, ids come from INCR (scripts should be deterministic), and the
//!   payload is copied into every delivery and log entry: sharing it would
//!   take a refcounted `event:{org}:{id}` kept up to date by every script
//!   that completes, prunes or deletes.
//! - **De-duplication window**: Redis's own expiry (SET … PXAT) runs on the
//!   server's clock, but the contract counts the window from `published_at`
//!   and `prune`'s `now`; so `seen:` keeps its expiry as its value, compared
//!   on read, and a `seen_expiry` zset lets `prune` forget old ids.
//! - **Order of ties**: a zset orders equal scores by member bytes, not by
//!   insertion; `list_subscriptions` (ties in insertion order), FIFO claims
//!   at equal due times and `failed_deliveries` need the INCR sequence,
//!   zero-padded, in front of every member, so a record must keep its `seq`
//!   to find its own member again (`redeliver`, `release`, delete).
//! - **Circuit breaker**: `CircuitBreaker::after_attempt` has to run inside
//!   `record_attempt_with_breaker`'s script: in Redis, a Lua port of a Rust
//!   function, kept in step by hand (or WATCH on `health:` and the delivery,
//!   the policy in Rust, MULTI/EXEC and a retry loop on conflicts, which
//!   loses the single round trip). A paused lane must also be rescored in
//!   `ready` (no earlier than `paused_until`) by every script that changes
//!   health: record, update (a new URL or enabling heals) and delete.
//! - **`prune`**: retention across all organizations needs the global
//!   indexes `failed_all`, `log_tails` and `seen_expiry`, maintained by every
//!   write; without them it would be SCAN outside any script. Even with them
//!   one script would block Redis for the whole clean-up, so `prune` runs
//!   batches of bounded scripts (not atomic, which retention never needed).
//! - **Log trimming**: the count cap is LPUSH + LTRIM, eager and O(1) (no
//!   lazy trimming needed); trimming by time is the awkward part: lists are
//!   not indexed by time and LTRIM cuts by index, so `prune` LRANGEs a whole
//!   log (at most the cap) to find the cut, and every push rescores the
//!   log's oldest entry in `log_tails`.
//! - **`delete_subscription`**: one script proportional to the
//!   subscription's backlog and logs (SMEMBERS `dlvs:` and a DEL each, plus
//!   removals from the global indexes); a large backlog would rather be
//!   renamed away and UNLINKed in the background.
//! - **`queue_stats`**: ZCOUNT per ready lane, so a sample walks the ready
//!   lanes like a claim (stopping at the count limit); "never blocked by
//!   claimers" cannot hold, as Redis runs one script at a time.
//! - **`redeliver_failed`**: fine with a zset per subscription
//!   (ZREVRANGEBYSCORE `failed:` +inf [since LIMIT), but `One(id)` must read
//!   the record to rebuild its member; the organization in `dlv:{org}:{id}`
//!   makes scoping free.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use base64::prelude::{Engine as _, BASE64_STANDARD};
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use webhook_subscriptions::delivery::CircuitBreaker;
use webhook_subscriptions::model::{
    DeliveryDetail, DeliveryId, EventId, OrganizationId, PreviousSecret, SecretKey,
    SubscriptionChange, SubscriptionId, WebhookSubscription,
};
use webhook_subscriptions::storage::prelude::*;
use webhook_subscriptions::storage::{
    AttemptLog, ClaimLimits, ClaimedDelivery, Delivery, DeliveryState, EndpointHealth,
    HealthChange, Lease, LeaseOutcome, NewEvent, NextStep, Recorded,
};
use webhook_subscriptions::storage::{Error, ErrorKind, Result};
use webhook_subscriptions::storage::{
    FailedSelection, QueueStats, DEFAULT_DEDUP_WINDOW, DEFAULT_LOG_CAP, QUEUE_STATS_COUNT_LIMIT,
};

use kv::Kv;

/// The ids every key is made of.
type Org = OrganizationId;
type Sub = SubscriptionId;

/// The engine: Redis's data types and commands, nothing more.
pub mod kv {
    use std::collections::{BTreeSet, HashMap, VecDeque};
    use std::ops::RangeInclusive;
    use std::sync::{Mutex, PoisonError};

    use super::internal;
    use webhook_subscriptions::storage::{Error, Result};

    #[derive(Debug)]
    enum Value {
        Str(Vec<u8>),
        Hash(HashMap<String, Vec<u8>>),
        ZSet(ZSet),
        Set(BTreeSet<String>),
        List(VecDeque<Vec<u8>>),
    }

    /// Members by score, equal scores by member bytes (as in Redis).
    #[derive(Debug, Default)]
    struct ZSet {
        scores: HashMap<String, i64>,
        order: BTreeSet<(i64, String)>,
    }

    /// The keyspace.
    #[derive(Debug, Default)]
    pub struct Kv {
        keys: HashMap<String, Value>,
    }

    /// Runs scripts one at a time, like Redis.
    #[derive(Debug, Default)]
    pub struct Engine(Mutex<Kv>);

    impl Engine {
        /// Runs `script` atomically, like EVAL: no other script runs
        /// meanwhile. A failing script is not rolled back (nor is Lua's).
        pub fn script<T>(&self, script: impl FnOnce(&mut Kv) -> Result<T>) -> Result<T> {
            script(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
        }
    }

    fn wrong_type(key: &str) -> Error {
        internal(format!("WRONGTYPE {key}"))
    }

    macro_rules! typed {
        ($($read:ident $write:ident $variant:ident $ty:ty;)*) => {$(
            fn $read(&self, key: &str) -> Result<Option<&$ty>> {
                match self.keys.get(key) {
                    None => Ok(None),
                    Some(Value::$variant(value)) => Ok(Some(value)),
                    Some(_) => Err(wrong_type(key)),
                }
            }

            fn $write(&mut self, key: &str) -> Result<&mut $ty> {
                let value = self
                    .keys
                    .entry(key.to_owned())
                    .or_insert_with(|| Value::$variant(Default::default()));
                match value {
                    Value::$variant(value) => Ok(value),
                    _ => Err(wrong_type(key)),
                }
            }
        )*};
    }

    /// A list's `start..=stop`, negative indexes counting from the end.
    fn span(len: usize, start: i64, stop: i64) -> Option<(usize, usize)> {
        let len = i64::try_from(len).ok()?;
        let at = |i: i64| if i < 0 { len + i } else { i };
        let (start, stop) = (at(start).max(0), at(stop).min(len - 1));
        (start <= stop).then_some((start as usize, stop as usize))
    }

    impl Kv {
        typed! {
            read_hash write_hash Hash HashMap<String, Vec<u8>>;
            read_zset write_zset ZSet ZSet;
            read_set write_set Set BTreeSet<String>;
            read_list write_list List VecDeque<Vec<u8>>;
        }

        /// Redis deletes a collection when its last element goes.
        fn drop_if_empty(&mut self, key: &str) {
            let empty = match self.keys.get(key) {
                Some(Value::Hash(h)) => h.is_empty(),
                Some(Value::ZSet(z)) => z.scores.is_empty(),
                Some(Value::Set(s)) => s.is_empty(),
                Some(Value::List(l)) => l.is_empty(),
                _ => false,
            };
            if empty {
                self.keys.remove(key);
            }
        }

        pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
            match self.keys.get(key) {
                None => Ok(None),
                Some(Value::Str(value)) => Ok(Some(value.clone())),
                Some(_) => Err(wrong_type(key)),
            }
        }

        pub fn set(&mut self, key: &str, value: impl Into<Vec<u8>>) {
            self.keys.insert(key.to_owned(), Value::Str(value.into()));
        }

        pub fn del(&mut self, key: &str) -> bool {
            self.keys.remove(key).is_some()
        }

        /// KEYS *, sorted (for tests).
        pub fn keys(&self) -> Vec<String> {
            let mut keys: Vec<String> = self.keys.keys().cloned().collect();
            keys.sort_unstable();
            keys
        }

        pub fn exists(&self, key: &str) -> bool {
            self.keys.contains_key(key)
        }

        pub fn incr_by(&mut self, key: &str, delta: i64) -> Result<i64> {
            let current = match self.get(key)? {
                Some(bytes) => super::int(&bytes)?,
                None => 0,
            };
            let next = current
                .checked_add(delta)
                .ok_or_else(|| internal("ERR increment would overflow"))?;
            self.set(key, next.to_string());
            Ok(next)
        }

        pub fn hget(&self, key: &str, field: &str) -> Result<Option<Vec<u8>>> {
            Ok(self.read_hash(key)?.and_then(|h| h.get(field)).cloned())
        }

        pub fn hset(&mut self, key: &str, field: &str, value: impl Into<Vec<u8>>) -> Result<()> {
            self.write_hash(key)?.insert(field.to_owned(), value.into());
            Ok(())
        }

        pub fn hdel(&mut self, key: &str, field: &str) -> Result<bool> {
            let removed = self.write_hash(key)?.remove(field).is_some();
            self.drop_if_empty(key);
            Ok(removed)
        }

        pub fn hgetall(&self, key: &str) -> Result<HashMap<String, Vec<u8>>> {
            Ok(self.read_hash(key)?.cloned().unwrap_or_default())
        }

        pub fn zadd(&mut self, key: &str, score: i64, member: &str) -> Result<()> {
            let zset = self.write_zset(key)?;
            if let Some(old) = zset.scores.insert(member.to_owned(), score) {
                zset.order.remove(&(old, member.to_owned()));
            }
            zset.order.insert((score, member.to_owned()));
            Ok(())
        }

        pub fn zrem(&mut self, key: &str, member: &str) -> Result<bool> {
            let zset = self.write_zset(key)?;
            let removed = zset.scores.remove(member);
            if let Some(score) = removed {
                zset.order.remove(&(score, member.to_owned()));
            }
            self.drop_if_empty(key);
            Ok(removed.is_some())
        }

        pub fn zscore(&self, key: &str, member: &str) -> Result<Option<i64>> {
            Ok(self
                .read_zset(key)?
                .and_then(|z| z.scores.get(member))
                .copied())
        }

        pub fn zcount(&self, key: &str, scores: RangeInclusive<i64>) -> Result<usize> {
            Ok(self.zrangebyscore(key, scores, usize::MAX)?.len())
        }

        /// ZRANGEBYSCORE key min max WITHSCORES LIMIT 0 limit.
        pub fn zrangebyscore(
            &self,
            key: &str,
            scores: RangeInclusive<i64>,
            limit: usize,
        ) -> Result<Vec<(String, i64)>> {
            let Some(zset) = self.read_zset(key)? else {
                return Ok(Vec::new());
            };
            Ok(zset
                .order
                .range((*scores.start(), String::new())..)
                .take_while(|(score, _)| score <= scores.end())
                .take(limit)
                .map(|(score, member)| (member.clone(), *score))
                .collect())
        }

        /// ZREVRANGEBYSCORE key max min WITHSCORES LIMIT 0 limit.
        pub fn zrevrangebyscore(
            &self,
            key: &str,
            scores: RangeInclusive<i64>,
            limit: usize,
        ) -> Result<Vec<(String, i64)>> {
            let Some(zset) = self.read_zset(key)? else {
                return Ok(Vec::new());
            };
            Ok(zset
                .order
                .iter()
                .rev()
                .skip_while(|(score, _)| score > scores.end())
                .take_while(|(score, _)| score >= scores.start())
                .take(limit)
                .map(|(score, member)| (member.clone(), *score))
                .collect())
        }

        pub fn sadd(&mut self, key: &str, member: &str) -> Result<bool> {
            Ok(self.write_set(key)?.insert(member.to_owned()))
        }

        pub fn srem(&mut self, key: &str, member: &str) -> Result<bool> {
            let removed = self.write_set(key)?.remove(member);
            self.drop_if_empty(key);
            Ok(removed)
        }

        pub fn smembers(&self, key: &str) -> Result<Vec<String>> {
            Ok(self.read_set(key)?.into_iter().flatten().cloned().collect())
        }

        pub fn lpush(&mut self, key: &str, value: impl Into<Vec<u8>>) -> Result<usize> {
            let list = self.write_list(key)?;
            list.push_front(value.into());
            Ok(list.len())
        }

        pub fn ltrim(&mut self, key: &str, start: i64, stop: i64) -> Result<()> {
            let list = self.write_list(key)?;
            match span(list.len(), start, stop) {
                Some((start, stop)) => {
                    list.truncate(stop + 1);
                    list.drain(..start);
                }
                None => list.clear(),
            }
            self.drop_if_empty(key);
            Ok(())
        }

        pub fn lrange(&self, key: &str, start: i64, stop: i64) -> Result<Vec<Vec<u8>>> {
            let Some(list) = self.read_list(key)? else {
                return Ok(Vec::new());
            };
            Ok(span(list.len(), start, stop)
                .map(|(start, stop)| list.range(start..=stop).cloned().collect())
                .unwrap_or_default())
        }
    }
}

/// Storage as a Redis backend would keep it (see the module docs).
#[derive(Debug)]
pub struct KvStore {
    engine: kv::Engine,
    /// The high half of every delivery id (the low half comes from INCR `seq`).
    id_prefix: u64,
    log_cap: usize,
    dedup_window: Duration,
}

impl Default for KvStore {
    fn default() -> Self {
        Self {
            engine: kv::Engine::default(),
            id_prefix: Uuid::new_v4().as_u64_pair().0,
            log_cap: DEFAULT_LOG_CAP,
            dedup_window: DEFAULT_DEDUP_WINDOW,
        }
    }
}

impl KvStore {
    /// Every key of the engine, sorted (KEYS *).
    pub fn keys(&self) -> Vec<String> {
        self.engine.script(|kv| Ok(kv.keys())).unwrap_or_default()
    }
}

/// Every score: `-inf +inf`.
const ALL: std::ops::RangeInclusive<i64> = i64::MIN..=i64::MAX;

/// The most items of each retention index one `prune` script handles.
const PRUNE_BATCH: usize = 100;

/// A queued delivery's `rec` field (its payload is a field of its own).
#[derive(Debug, Serialize, Deserialize)]
struct Rec {
    sub: Sub,
    event_id: EventId,
    event: String,
    seq: u64,
    attempts: u32,
    due: i64,
    state: Slot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Slot {
    Pending,
    Leased { token: Uuid, until: i64 },
    Failed,
}

/// One entry of a `log:` list.
#[derive(Debug, Serialize, Deserialize)]
struct LogEntry {
    delivery_id: DeliveryId,
    event_id: EventId,
    detail: DeliveryDetail,
    /// Base64.
    payload: String,
}

/// A delivery a claim may hand out, with its place in the turns.
struct Candidate {
    org: Org,
    sub: Sub,
    member: String,
    score: i64,
    lane_turn: usize,
    turn: usize,
}

impl Candidate {
    fn order(&self) -> (usize, usize, i64, &str) {
        (self.turn, self.lane_turn, self.score, &self.member)
    }
}

fn int(bytes: &[u8]) -> Result<i64> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| internal("ERR value is not an integer"))
}

fn parse<T: FromStr>(text: &str) -> Result<T> {
    text.parse()
        .map_err(|_| internal(format!("unreadable key part {text:?}")))
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(internal)
}

fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(internal)
}

fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn time(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| internal("time out of range"))
}

fn later(at: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    at.checked_add_signed(by)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn key(kind: &str, org: Org, sub: Sub) -> String {
    format!("{kind}:{org}:{sub}")
}

fn dlv_key(org: Org, id: DeliveryId) -> String {
    format!("dlv:{org}:{id}")
}

fn log_key(org: Org, sub: Sub, event: &str) -> String {
    format!("log:{org}:{sub}:{event}")
}

fn leased_key(org: Org) -> String {
    format!("leased:{org}")
}

/// A zset member ordered by `seq` among equal scores.
fn member(seq: u64, id: impl std::fmt::Display) -> String {
    format!("{seq:020}:{id}")
}

/// The id after a member's or pair's first `:`.
fn after_colon<T: FromStr>(text: &str) -> Result<T> {
    parse(text.split_once(':').map_or(text, |(_, id)| id))
}

/// `{org}:{x}` back into its parts.
fn pair<T: FromStr>(text: &str) -> Result<(Org, T)> {
    let (org, rest) = text.split_once(':').unwrap_or((text, ""));
    Ok((parse(org)?, parse(rest)?))
}

fn next_seq(kv: &mut Kv) -> Result<u64> {
    u64::try_from(kv.incr_by("seq", 1)?).map_err(internal)
}

fn load_sub(kv: &Kv, org: Org, id: Sub) -> Result<Option<WebhookSubscription>> {
    let fields = kv.hgetall(&key("sub", org, id))?;
    let Some(json) = fields.get("json") else {
        return Ok(None);
    };
    let mut sub: WebhookSubscription = from_json(json)?;
    if let (Some(secret), Some(until)) = (fields.get("prev_key"), fields.get("prev_until")) {
        let secret = std::str::from_utf8(secret).ok().map(SecretKey::from_hex);
        let secret = secret
            .and_then(|s| s.ok())
            .ok_or_else(|| internal("unreadable previous secret"))?;
        sub.previous_secret = Some(PreviousSecret::new(secret, time(int(until)?)?));
    }
    Ok(Some(sub))
}

fn save_sub(kv: &mut Kv, org: Org, sub: &WebhookSubscription) -> Result<()> {
    let k = key("sub", org, sub.id);
    kv.hset(&k, "json", to_json(sub)?)?;
    match &sub.previous_secret {
        Some(previous) => {
            kv.hset(&k, "prev_key", previous.key.to_hex())?;
            kv.hset(&k, "prev_until", ms(previous.expires_at).to_string())?;
        }
        None => {
            kv.hdel(&k, "prev_key")?;
            kv.hdel(&k, "prev_until")?;
        }
    }
    Ok(())
}

fn disable(kv: &mut Kv, org: Org, id: Sub) -> Result<()> {
    if let Some(mut sub) = load_sub(kv, org, id)? {
        if sub.enabled {
            sub.enabled = false;
            save_sub(kv, org, &sub)?;
        }
    }
    Ok(())
}

fn load_health(kv: &Kv, org: Org, sub: Sub) -> Result<Option<EndpointHealth>> {
    let fields = kv.hgetall(&key("health", org, sub))?;
    let field = |name: &str| fields.get(name).map(|bytes| int(bytes)).transpose();
    let (Some(streak), Some(since), Some(opened)) =
        (field("streak")?, field("since")?, field("opened")?)
    else {
        return Ok(None);
    };
    let count = |n: i64| u32::try_from(n).map_err(internal);
    let paused = field("paused")?.map(time).transpose()?;
    let health = EndpointHealth::new(count(streak)?, time(since)?, paused, count(opened)?);
    Ok(Some(health))
}

fn save_health(kv: &mut Kv, org: Org, sub: Sub, health: Option<&EndpointHealth>) -> Result<()> {
    let k = key("health", org, sub);
    kv.del(&k);
    if let Some(health) = health {
        kv.hset(&k, "streak", health.failure_streak.to_string())?;
        kv.hset(&k, "since", ms(health.failing_since).to_string())?;
        kv.hset(&k, "opened", health.times_opened.to_string())?;
        if let Some(until) = health.paused_until {
            kv.hset(&k, "paused", ms(until).to_string())?;
        }
    }
    Ok(())
}

/// Rescores the lane in `ready`: when its first delivery becomes claimable
/// (the earliest due or lease expiry), not before its circuit's pause ends;
/// an empty lane leaves `ready`.
fn refresh(kv: &mut Kv, org: Org, sub: Sub) -> Result<()> {
    let first = |kind: &str| -> Result<Option<i64>> {
        let head = kv.zrangebyscore(&key(kind, org, sub), ALL, 1)?;
        Ok(head.first().map(|(_, score)| *score))
    };
    let head = match (first("lane")?, first("inflight")?) {
        (Some(due), Some(expiry)) => Some(due.min(expiry)),
        (due, expiry) => due.or(expiry),
    };
    let paused = load_health(kv, org, sub)?.and_then(|h| h.paused_until);
    let lane = format!("{org}:{sub}");
    match head {
        Some(head) => kv.zadd("ready", head.max(paused.map_or(i64::MIN, ms)), &lane),
        None => kv.zrem("ready", &lane).map(drop),
    }
}

/// Takes `count` leases off the organization's turns.
fn unlease(kv: &mut Kv, org: Org, count: usize) -> Result<()> {
    if count > 0 && kv.incr_by(&leased_key(org), -(count as i64))? <= 0 {
        kv.del(&leased_key(org));
    }
    Ok(())
}

fn load_rec(kv: &Kv, org: Org, id: DeliveryId) -> Result<Option<Rec>> {
    kv.hget(&dlv_key(org, id), "rec")?
        .map(|bytes| from_json(&bytes))
        .transpose()
}

fn save_rec(kv: &mut Kv, org: Org, id: DeliveryId, rec: &Rec) -> Result<()> {
    kv.hset(&dlv_key(org, id), "rec", to_json(rec)?)
}

fn to_delivery(kv: &Kv, org: Org, id: DeliveryId, rec: &Rec) -> Result<Delivery> {
    let payload = kv.hget(&dlv_key(org, id), "payload")?.unwrap_or_default();
    Ok(Delivery {
        id,
        organization_id: org,
        subscription_id: rec.sub,
        event_id: rec.event_id,
        event_name: rec.event.clone(),
        payload: Bytes::from(payload),
        attempts: rec.attempts,
        due_at: time(rec.due)?,
        state: match rec.state {
            Slot::Pending => DeliveryState::Pending,
            Slot::Leased { .. } => DeliveryState::Leased,
            Slot::Failed => DeliveryState::Failed,
        },
    })
}

/// Ends `claim`'s lease and returns its delivery's record, if the lease
/// still holds it.
fn take_lease(kv: &mut Kv, claim: &ClaimedDelivery) -> Result<Option<Rec>> {
    let (org, id) = (claim.delivery.organization_id, claim.delivery.id);
    let rec = load_rec(kv, org, id)?.filter(|rec| {
        rec.sub == claim.delivery.subscription_id
            && matches!(rec.state, Slot::Leased { token, .. } if token == claim.lease.token)
    });
    if let Some(rec) = &rec {
        kv.zrem(&key("inflight", org, rec.sub), &member(rec.seq, id))?;
        unlease(kv, org, 1)?;
    }
    Ok(rec)
}

/// Remembers `event`'s id in its organization; false if it already was.
fn first_time(kv: &mut Kv, event: &NewEvent, window: Duration) -> Result<bool> {
    let id = format!("{}:{}", event.organization_id, event.event_id);
    let forget_at = kv
        .get(&format!("seen:{id}"))?
        .map(|b| int(&b))
        .transpose()?;
    if forget_at.is_some_and(|at| at > ms(event.published_at)) {
        return Ok(false);
    }
    let forget_at = ms(later(event.published_at, window));
    kv.set(&format!("seen:{id}"), forget_at.to_string());
    kv.zadd("seen_expiry", forget_at, &id)?;
    Ok(true)
}

/// Queues `event` for `sub`, due at `published_at`.
fn push_delivery(kv: &mut Kv, id_prefix: u64, event: &NewEvent, sub: Sub) -> Result<DeliveryId> {
    let org = event.organization_id;
    let seq = next_seq(kv)?;
    let id = DeliveryId(Uuid::from_u64_pair(id_prefix, seq));
    let rec = Rec {
        sub,
        event_id: event.event_id,
        event: event.event_name.clone(),
        seq,
        attempts: 0,
        due: ms(event.published_at),
        state: Slot::Pending,
    };
    save_rec(kv, org, id, &rec)?;
    kv.hset(&dlv_key(org, id), "payload", event.payload.to_vec())?;
    kv.sadd(&key("dlvs", org, sub), &id.to_string())?;
    kv.zadd(&key("lane", org, sub), rec.due, &member(seq, id))?;
    refresh(kv, org, sub)?;
    Ok(id)
}

/// Makes a failed delivery pending again, due at `now`, with no attempts.
fn requeue(kv: &mut Kv, org: Org, id: DeliveryId, mut rec: Rec, now: DateTime<Utc>) -> Result<()> {
    let m = member(rec.seq, id);
    kv.zrem(&key("failed", org, rec.sub), &m)?;
    kv.zrem("failed_all", &format!("{org}:{id}"))?;
    rec.attempts = 0;
    rec.due = ms(now);
    rec.state = Slot::Pending;
    save_rec(kv, org, id, &rec)?;
    kv.zadd(&key("lane", org, rec.sub), rec.due, &m)?;
    refresh(kv, org, rec.sub)
}

/// Scores `log_tails` with the oldest entry of the log at `k`.
fn index_log_tail(kv: &mut Kv, k: &str) -> Result<()> {
    match kv.lrange(k, -1, -1)?.first() {
        Some(tail) => {
            let tail: LogEntry = from_json(tail)?;
            kv.zadd("log_tails", ms(tail.detail.delivery_timestamp), k)
        }
        None => kv.zrem("log_tails", k).map(drop),
    }
}

fn claim(
    kv: &mut Kv,
    now: DateTime<Utc>,
    lease_for: Duration,
    limits: ClaimLimits,
) -> Result<Vec<ClaimedDelivery>> {
    let now_ms = ms(now);
    let expires_at = later(now, lease_for);
    // Every lane with something claimable, unbounded (see "What was awkward").
    let ready = kv.zrangebyscore("ready", i64::MIN..=now_ms, usize::MAX)?;
    let mut candidates = Vec::new();
    for (lane, _) in &ready {
        let (org, sub) = pair::<Sub>(lane)?;
        let cap = match load_health(kv, org, sub)?.and_then(|h| h.paused_until) {
            Some(until) if until > now => continue,
            Some(_) => limits.per_subscription.min(1),
            None => limits.per_subscription,
        };
        let live = kv.zcount(&key("inflight", org, sub), now_ms + 1..=i64::MAX)?;
        let room = cap.saturating_sub(live).min(limits.batch);
        let mut due = kv.zrangebyscore(&key("lane", org, sub), i64::MIN..=now_ms, room)?;
        let expired = key("inflight", org, sub);
        due.extend(kv.zrangebyscore(&expired, i64::MIN..=now_ms, room)?);
        due.sort_unstable_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        due.truncate(room);
        for (turn, (member, score)) in due.into_iter().enumerate() {
            let lane_turn = live + turn;
            candidates.push(Candidate {
                org,
                sub,
                member,
                score,
                lane_turn,
                turn: 0,
            });
        }
    }
    // Turns within an organization (its leases count as turns taken), then
    // round-robin across organizations.
    candidates.sort_unstable_by(|a, b| (a.org, a.order()).cmp(&(b.org, b.order())));
    let mut previous = None;
    let mut turn = 0;
    for candidate in &mut candidates {
        if previous != Some(candidate.org) {
            previous = Some(candidate.org);
            let leased = kv.get(&leased_key(candidate.org))?;
            turn = leased.map_or(Ok(0), |n| int(&n))? as usize;
        }
        candidate.turn = turn;
        turn += 1;
    }
    candidates.sort_unstable_by(|a, b| a.order().cmp(&b.order()));
    candidates.truncate(limits.batch);

    let mut touched = BTreeSet::new();
    let mut claimed = Vec::with_capacity(candidates.len());
    for Candidate {
        org, sub, member, ..
    } in candidates
    {
        let id: DeliveryId = after_colon(&member)?;
        let Some(mut rec) = load_rec(kv, org, id)? else {
            continue;
        };
        match rec.state {
            Slot::Pending => {
                kv.zrem(&key("lane", org, sub), &member)?;
                kv.incr_by(&leased_key(org), 1)?;
            }
            Slot::Leased { .. } => {
                kv.zrem(&key("inflight", org, sub), &member)?;
            }
            Slot::Failed => continue,
        }
        let token = u64::try_from(kv.incr_by("tokens", 1)?).map_err(internal)?;
        let token = Uuid::from_u64_pair(0, token);
        rec.state = Slot::Leased {
            token,
            until: ms(expires_at),
        };
        save_rec(kv, org, id, &rec)?;
        kv.zadd(&key("inflight", org, sub), ms(expires_at), &member)?;
        touched.insert((org, sub));
        let subscription = load_sub(kv, org, sub)?
            .ok_or_else(|| internal("a delivery without its subscription"))?;
        claimed.push(ClaimedDelivery {
            delivery: to_delivery(kv, org, id, &rec)?,
            subscription: Arc::new(subscription),
            lease: Lease {
                delivery_id: id,
                token,
                expires_at,
            },
        });
    }
    for (org, sub) in touched {
        refresh(kv, org, sub)?;
    }
    Ok(claimed)
}

fn record(
    kv: &mut Kv,
    claim: &ClaimedDelivery,
    detail: &DeliveryDetail,
    next: NextStep,
    breaker: Option<&CircuitBreaker>,
    log_cap: usize,
) -> Result<Recorded> {
    let delivery = &claim.delivery;
    let (org, sub) = (delivery.organization_id, delivery.subscription_id);
    if !kv.exists(&key("sub", org, sub)) {
        return Ok(Recorded::new(LeaseOutcome::LeaseLost, None));
    }
    let entry = LogEntry {
        delivery_id: delivery.id,
        event_id: delivery.event_id,
        detail: detail.clone(),
        payload: BASE64_STANDARD.encode(&delivery.payload),
    };
    let log = log_key(org, sub, &delivery.event_name);
    kv.lpush(&log, to_json(&entry)?)?;
    kv.ltrim(&log, 0, log_cap as i64 - 1)?;
    kv.sadd(&key("logs", org, sub), &delivery.event_name)?;
    index_log_tail(kv, &log)?;

    let mut change = None;
    if let Some(breaker) = breaker {
        let before = load_health(kv, org, sub)?;
        let update =
            breaker.after_attempt(before.as_ref(), detail.success, detail.delivery_timestamp);
        save_health(kv, org, sub, update.health.as_ref())?;
        if matches!(update.change, Some(HealthChange::Disabled { .. })) {
            disable(kv, org, sub)?;
        }
        refresh(kv, org, sub)?;
        change = update.change;
    }

    let Some(mut rec) = take_lease(kv, claim)? else {
        return Ok(Recorded::new(LeaseOutcome::LeaseLost, change));
    };
    let (id, m) = (delivery.id, member(rec.seq, delivery.id));
    rec.attempts = rec.attempts.saturating_add(1);
    match next {
        NextStep::Complete => {
            kv.del(&dlv_key(org, id));
            kv.srem(&key("dlvs", org, sub), &id.to_string())?;
        }
        NextStep::Retry { at } => {
            rec.due = ms(at);
            rec.state = Slot::Pending;
            save_rec(kv, org, id, &rec)?;
            kv.zadd(&key("lane", org, sub), rec.due, &m)?;
        }
        NextStep::Fail | NextStep::FailAndDisable => {
            rec.state = Slot::Failed;
            save_rec(kv, org, id, &rec)?;
            kv.zadd(&key("failed", org, sub), rec.due, &m)?;
            kv.zadd("failed_all", rec.due, &format!("{org}:{id}"))?;
            if next == NextStep::FailAndDisable {
                disable(kv, org, sub)?;
            }
        }
        _ => return Err(internal("a next step this store does not know")),
    }
    refresh(kv, org, sub)?;
    Ok(Recorded::new(LeaseOutcome::Applied, change))
}

fn delete(kv: &mut Kv, org: Org, id: Sub) -> Result<bool> {
    if !kv.exists(&key("sub", org, id)) {
        return Ok(false);
    }
    let seq = int(&kv.hget(&key("sub", org, id), "seq")?.unwrap_or_default())?;
    kv.zrem(&format!("subs:{org}"), &member(seq as u64, id))?;
    kv.del(&key("sub", org, id));
    kv.del(&key("health", org, id));
    // Proportional to the subscription's backlog and logs (see the docs).
    for delivery in kv.smembers(&key("dlvs", org, id))? {
        kv.del(&format!("dlv:{org}:{delivery}"));
        kv.zrem("failed_all", &format!("{org}:{delivery}"))?;
    }
    let in_flight = kv.zcount(&key("inflight", org, id), ALL)?;
    unlease(kv, org, in_flight)?;
    for kind in ["dlvs", "lane", "inflight", "failed"] {
        kv.del(&key(kind, org, id));
    }
    kv.zrem("ready", &format!("{org}:{id}"))?;
    for event in kv.smembers(&key("logs", org, id))? {
        let log = log_key(org, id, &event);
        kv.del(&log);
        kv.zrem("log_tails", &log)?;
    }
    kv.del(&key("logs", org, id));
    Ok(true)
}

fn update(
    kv: &mut Kv,
    org: Org,
    id: Sub,
    change: &SubscriptionChange,
) -> Result<Option<WebhookSubscription>> {
    let Some(old) = load_sub(kv, org, id)? else {
        return Ok(None);
    };
    let mut new = old.clone();
    new.apply(change);
    // A new URL, or enabling again, closes the circuit.
    let heals = old.url != new.url || (!old.enabled && new.enabled);
    if heals && kv.del(&key("health", org, id)) {
        refresh(kv, org, id)?;
    }
    save_sub(kv, org, &new)?;
    Ok(Some(new))
}

/// One bounded step of retention: forgets expired event ids, drops old
/// failed deliveries and log entries, at most [`PRUNE_BATCH`] of each
/// index. Returns what it removed and whether an index may hold more.
fn prune_batch(kv: &mut Kv, now: DateTime<Utc>, before: DateTime<Utc>) -> Result<(u64, bool)> {
    let before_ms = ms(before);
    let expired = kv.zrangebyscore("seen_expiry", i64::MIN..=ms(now), PRUNE_BATCH)?;
    for (id, _) in &expired {
        kv.del(&format!("seen:{id}"));
        kv.zrem("seen_expiry", id)?;
    }
    let mut removed = 0;
    let failed = kv.zrangebyscore("failed_all", i64::MIN..=before_ms - 1, PRUNE_BATCH)?;
    for (pair_id, _) in &failed {
        kv.zrem("failed_all", pair_id)?;
        let (org, id) = pair::<DeliveryId>(pair_id)?;
        if let Some(rec) = load_rec(kv, org, id)? {
            kv.del(&dlv_key(org, id));
            kv.zrem(&key("failed", org, rec.sub), &member(rec.seq, id))?;
            kv.srem(&key("dlvs", org, rec.sub), &id.to_string())?;
            removed += 1;
        }
    }
    let logs = kv.zrangebyscore("log_tails", i64::MIN..=before_ms - 1, PRUNE_BATCH)?;
    for (log, _) in &logs {
        let entries = kv.lrange(log, 0, -1)?;
        let mut keep = entries.len();
        while keep > 0 {
            let entry: LogEntry = from_json(&entries[keep - 1])?;
            if ms(entry.detail.delivery_timestamp) >= before_ms {
                break;
            }
            keep -= 1;
        }
        removed += (entries.len() - keep) as u64;
        if keep > 0 {
            kv.ltrim(log, 0, keep as i64 - 1)?;
        } else {
            kv.del(log);
            let parts: Vec<&str> = log.splitn(4, ':').collect();
            if let [_, org, sub, event] = parts[..] {
                kv.srem(&key("logs", parse(org)?, parse(sub)?), event)?;
            }
        }
        index_log_tail(kv, log)?;
    }
    let more = [expired.len(), failed.len(), logs.len()].contains(&PRUNE_BATCH);
    Ok((removed, more))
}

// Each method is one script (`prune` several, see its comment).
#[async_trait]
impl SubscriptionStore for KvStore {
    async fn insert_subscription(&self, org: Org, sub: &WebhookSubscription) -> Result<()> {
        self.engine.script(|kv| {
            let k = key("sub", org, sub.id);
            if kv.exists(&k) {
                return Err(internal("subscription id already exists"));
            }
            let seq = next_seq(kv)?;
            kv.hset(&k, "seq", seq.to_string())?;
            save_sub(kv, org, sub)?;
            kv.zadd(
                &format!("subs:{org}"),
                ms(sub.created_at),
                &member(seq, sub.id),
            )?;
            Ok(())
        })
    }

    async fn get_subscription(&self, org: Org, id: Sub) -> Result<Option<WebhookSubscription>> {
        self.engine.script(|kv| load_sub(kv, org, id))
    }

    async fn list_subscriptions(&self, org: Org) -> Result<Vec<WebhookSubscription>> {
        self.engine.script(|kv| {
            let members = kv.zrangebyscore(&format!("subs:{org}"), ALL, usize::MAX)?;
            let mut subs = Vec::with_capacity(members.len());
            for (m, _) in members {
                subs.extend(load_sub(kv, org, after_colon(&m)?)?);
            }
            Ok(subs)
        })
    }

    async fn update_subscription(
        &self,
        org: Org,
        id: Sub,
        change: &SubscriptionChange,
    ) -> Result<Option<WebhookSubscription>> {
        self.engine.script(|kv| update(kv, org, id, change))
    }

    async fn delete_subscription(&self, org: Org, id: Sub) -> Result<bool> {
        self.engine.script(|kv| delete(kv, org, id))
    }
}

#[async_trait]
impl DeliveryQueue for KvStore {
    // `enqueue_event` and `enqueue_for_subscription` are the trait's: the
    // fan-out rule runs in Rust, and only the chosen targets reach a script.
    async fn enqueue_deliveries(
        &self,
        event: &NewEvent,
        targets: &[Sub],
    ) -> Result<Vec<DeliveryId>> {
        self.engine.script(|kv| {
            if !first_time(kv, event, self.dedup_window)? {
                return Ok(Vec::new());
            }
            let org = event.organization_id;
            let mut queued = Vec::with_capacity(targets.len());
            for &sub in targets {
                if kv.exists(&key("sub", org, sub)) {
                    queued.push(push_delivery(kv, self.id_prefix, event, sub)?);
                }
            }
            Ok(queued)
        })
    }

    async fn claim_deliveries_fairly(
        &self,
        now: DateTime<Utc>,
        lease_for: Duration,
        limits: ClaimLimits,
    ) -> Result<Vec<ClaimedDelivery>> {
        self.engine.script(|kv| claim(kv, now, lease_for, limits))
    }

    async fn record_attempt_with_breaker(
        &self,
        claim: &ClaimedDelivery,
        detail: &DeliveryDetail,
        next: NextStep,
        breaker: Option<&CircuitBreaker>,
    ) -> Result<Recorded> {
        let cap = self.log_cap;
        self.engine
            .script(|kv| record(kv, claim, detail, next, breaker, cap))
    }

    async fn release(&self, claim: &ClaimedDelivery) -> Result<LeaseOutcome> {
        self.engine.script(|kv| {
            let Some(mut rec) = take_lease(kv, claim)? else {
                return Ok(LeaseOutcome::LeaseLost);
            };
            let (org, id) = (claim.delivery.organization_id, claim.delivery.id);
            let m = member(rec.seq, id);
            // Its due time is no later than the claim: claimable at once.
            rec.state = Slot::Pending;
            save_rec(kv, org, id, &rec)?;
            kv.zadd(&key("lane", org, rec.sub), rec.due, &m)?;
            refresh(kv, org, rec.sub)?;
            Ok(LeaseOutcome::Applied)
        })
    }

    async fn failed_deliveries(&self, org: Org, sub: Sub, limit: usize) -> Result<Vec<Delivery>> {
        self.engine.script(|kv| {
            let failed = kv.zrevrangebyscore(&key("failed", org, sub), ALL, limit)?;
            let mut deliveries = Vec::with_capacity(failed.len());
            for (m, _) in failed {
                let id = after_colon(&m)?;
                if let Some(rec) = load_rec(kv, org, id)? {
                    deliveries.push(to_delivery(kv, org, id, &rec)?);
                }
            }
            Ok(deliveries)
        })
    }

    async fn redeliver(&self, org: Org, id: DeliveryId, now: DateTime<Utc>) -> Result<bool> {
        self.engine.script(|kv| {
            let Some(rec) = load_rec(kv, org, id)?.filter(|rec| rec.state == Slot::Failed) else {
                return Ok(false);
            };
            requeue(kv, org, id, rec, now)?;
            Ok(true)
        })
    }

    async fn redeliver_failed(
        &self,
        org: Org,
        sub: Sub,
        which: FailedSelection,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<usize> {
        self.engine.script(|kv| {
            let failed = key("failed", org, sub);
            let picked: Vec<DeliveryId> = match which {
                FailedSelection::One(id) => {
                    let rec = load_rec(kv, org, id)?;
                    let m = rec.map(|rec| member(rec.seq, id));
                    let listed = match m {
                        Some(m) => kv.zscore(&failed, &m)?.is_some(),
                        None => false,
                    };
                    listed.then_some(id).into_iter().take(limit).collect()
                }
                FailedSelection::Since(since) => kv
                    .zrevrangebyscore(&failed, ms(since)..=i64::MAX, limit)?
                    .iter()
                    .map(|(m, _)| after_colon(m))
                    .collect::<Result<_>>()?,
                _ => return Err(internal("a selection this store does not know")),
            };
            for &id in &picked {
                if let Some(rec) = load_rec(kv, org, id)? {
                    requeue(kv, org, id, rec, now)?;
                }
            }
            Ok(picked.len())
        })
    }

    async fn queue_stats(&self, now: DateTime<Utc>) -> Result<QueueStats> {
        // Walks the ready lanes like a claim (see "What was awkward").
        self.engine.script(|kv| {
            let now_ms = ms(now);
            let ready = kv.zrangebyscore("ready", i64::MIN..=now_ms, usize::MAX)?;
            let oldest = ready.first().map(|(_, head)| time(*head)).transpose()?;
            let mut due = 0;
            for (lane, _) in &ready {
                if due >= QUEUE_STATS_COUNT_LIMIT {
                    break;
                }
                let (org, sub) = pair::<Sub>(lane)?;
                for kind in ["lane", "inflight"] {
                    due += kv.zcount(&key(kind, org, sub), i64::MIN..=now_ms)? as u64;
                }
            }
            Ok(QueueStats::new(due.min(QUEUE_STATS_COUNT_LIMIT), oldest))
        })
    }

    async fn prune(&self, now: DateTime<Utc>, before: DateTime<Utc>) -> Result<u64> {
        // Not one script: one over every organization would block Redis for
        // the whole clean-up, so bounded scripts run until nothing is left.
        let mut removed = 0;
        loop {
            let (count, more) = self.engine.script(|kv| prune_batch(kv, now, before))?;
            removed += count;
            if !more {
                return Ok(removed);
            }
        }
    }
}

#[async_trait]
impl AttemptHistory for KvStore {
    async fn endpoint_health(&self, org: Org, sub: Sub) -> Result<Option<EndpointHealth>> {
        self.engine.script(|kv| {
            if !kv.exists(&key("sub", org, sub)) {
                return Ok(None);
            }
            load_health(kv, org, sub)
        })
    }

    async fn list_attempts(&self, org: Org, sub: Sub, event: &str) -> Result<Vec<AttemptLog>> {
        let last = self.log_cap as i64 - 1;
        self.engine.script(|kv| {
            let mut attempts = Vec::new();
            for bytes in kv.lrange(&log_key(org, sub, event), 0, last)? {
                let entry: LogEntry = from_json(&bytes)?;
                let payload = BASE64_STANDARD.decode(entry.payload).map_err(internal)?;
                attempts.push(AttemptLog {
                    delivery_id: entry.delivery_id,
                    event_id: entry.event_id,
                    detail: entry.detail,
                    payload: Bytes::from(payload),
                });
            }
            Ok(attempts)
        })
    }

    async fn latest_statuses(&self, org: Org, sub: Sub) -> Result<Vec<(String, DeliveryDetail)>> {
        self.engine.script(|kv| {
            let mut statuses = Vec::new();
            for event in kv.smembers(&key("logs", org, sub))? {
                if let Some(newest) = kv.lrange(&log_key(org, sub, &event), 0, 0)?.first() {
                    statuses.push((event, from_json::<LogEntry>(newest)?.detail));
                }
            }
            Ok(statuses)
        })
    }
}

/// A failure of this store: a storage error of the `kv` store (every failure
/// of a toy counts as `Other`).
fn internal(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    Error::new("kv", ErrorKind::Other, source)
}
