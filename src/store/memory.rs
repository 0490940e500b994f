//! The in-process store: one keyspace per `MemoryStore`, guarded by a mutex, used only from
//! the thread that calls it (no tokio, no timers).
//!
//! Every key has an expiry. Expired keys are dropped lazily when touched and, so memory stays
//! bounded by live keys, a min-heap of expiry times lets each call reclaim a few keys that
//! came due. Each key sits in the heap once: when its expiry moved later, the popped entry is
//! pushed back at the new time instead of being pushed on every write. The tables shrink once
//! they hold far fewer keys than they have room for, so memory comes back after a large expiry.
//!
//! With a `max_keys` bound, the least recently used key is evicted when a new key would
//! exceed it. Recency is a tick stamped on the entry at each use and a queue of `(tick, key)`
//! pushed at each use: the front entry whose tick still matches its key's is the least
//! recently used (older queue entries are stale and skipped), and the queue is rebuilt from
//! the map when it grows past twice the keys, so its cost stays amortised O(1) per use.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use hashbrown::HashMap;

use crate::engine::session::{NotAMessageList, Session};
use crate::engine::{guard, quota, sliding_window, spend, token_budget};

/// How many due keys one call reclaims at most.
const SWEEP_PER_CALL: usize = 16;

/// Tables are shrunk when they have room for this many times their keys (and at least
/// `SHRINK_FLOOR` slots), so a burst of ids does not pin its memory after it expired.
const SHRINK_RATIO: usize = 4;
const SHRINK_FLOOR: usize = 4096;

/// What a key holds.
#[derive(Debug)]
enum Value {
  Text(String),
  Log(VecDeque<u64>),
  // Boxed: the large states would otherwise size every entry (a rate limiter's log included).
  Budget(Box<token_budget::Budget>),
  Session(Session),
  Quota(quota::QuotaState),
  Spend(Box<spend::Bucket>),
  Meter(Box<guard::Meter>),
}

#[derive(Debug)]
struct Entry {
  value: Value,
  expires_at: u64,
  /// The time under which this key sits in the heap (never later than `expires_at`).
  queued_at: u64,
  /// Tick of the last use (only kept with a `max_keys` bound).
  used: u64,
}

/// A key holds another kind of value than the call expects (two classes share a prefix).
#[derive(Debug, PartialEq, Eq)]
pub struct WrongType;

#[derive(Debug, Default)]
struct Keyspace {
  map: HashMap<Arc<str>, Entry>,
  heap: BinaryHeap<Reverse<(u64, Arc<str>)>>,
  lru: Option<Lru>,
  evictions: u64,
}

/// Least-recently-used order of the keys, for a store with a `max_keys` bound.
#[derive(Debug)]
struct Lru {
  max_keys: usize,
  tick: u64,
  queue: VecDeque<(u64, Arc<str>)>,
}

impl Lru {
  /// Stamps `entry` as used now.
  fn use_key(&mut self, key: &Arc<str>, entry: &mut Entry) {
    self.tick += 1;
    entry.used = self.tick;
    self.queue.push_back((self.tick, key.clone()));
  }
}

impl Keyspace {
  /// Marks the key as just used (a no-op without a `max_keys` bound).
  fn used(&mut self, key: &str) {
    let Keyspace { map, lru, .. } = self;
    if let Some(lru) = lru {
      if let Some((k, e)) = map.get_key_value_mut(key) {
        lru.use_key(k, e);
      }
    }
  }

  /// Evicts least recently used keys until the bound holds.
  fn bound(&mut self) {
    let Keyspace {
      map,
      lru,
      evictions,
      ..
    } = self;
    let Some(lru) = lru else { return };
    while map.len() > lru.max_keys {
      let Some((tick, key)) = lru.queue.pop_front() else {
        break;
      };
      if map.get(&key).is_some_and(|e| e.used == tick) {
        map.remove(&key);
        *evictions += 1;
      }
    }
  }

  /// Rebuilds the expiry heap and the recency queue when stale entries (of keys deleted or
  /// evicted) make up most of them, so what a key held is freed with it.
  fn compact(&mut self) {
    let Keyspace { map, heap, lru, .. } = self;
    if heap.len() > 2 * map.len() + 1024 {
      *heap = map
        .iter_mut()
        .map(|(k, e)| {
          e.queued_at = e.expires_at;
          Reverse((e.expires_at, k.clone()))
        })
        .collect();
    }
    let Some(lru) = lru else { return };
    if lru.queue.len() > 2 * map.len() + 64 {
      let mut order: Vec<(u64, Arc<str>)> = map.iter().map(|(k, e)| (e.used, k.clone())).collect();
      order.sort_unstable_by_key(|(t, _)| *t);
      lru.queue = order.into();
    }
  }

  /// Gives memory back once the tables hold far fewer keys than they have room for.
  fn shrink(&mut self) {
    let (cap, len) = (self.map.capacity(), self.map.len());
    if cap > SHRINK_FLOOR && cap > SHRINK_RATIO * len {
      self.map.shrink_to(2 * len);
      let (cap, len) = (self.heap.capacity(), self.heap.len());
      if cap > SHRINK_RATIO * len {
        self.heap.shrink_to(2 * len);
      }
      release_freed_memory();
    }
  }

  /// Reclaims up to `SWEEP_PER_CALL` keys that came due.
  fn sweep(&mut self, now: u64) {
    let mut reclaimed = false;
    for _ in 0..SWEEP_PER_CALL {
      let due = matches!(self.heap.peek(), Some(Reverse((at, _))) if *at <= now);
      if !due {
        break;
      }
      let Some(Reverse((_, key))) = self.heap.pop() else {
        break;
      };
      reclaimed = true;
      if let Some(entry) = self.map.get_mut(&key) {
        if entry.expires_at <= now {
          self.map.remove(&key);
        } else {
          entry.queued_at = entry.expires_at;
          self.heap.push(Reverse((entry.expires_at, key)));
        }
      }
    }
    if reclaimed {
      self.shrink();
    }
  }

  /// The live entry at `key`, dropping it first when it expired.
  fn live(&mut self, key: &str, now: u64) -> Option<&mut Entry> {
    if self.map.get(key).is_some_and(|e| e.expires_at <= now) {
      self.map.remove(key);
    }
    self.used(key);
    self.map.get_mut(key)
  }

  /// Stores `value` at `key` until `expires_at`.
  fn put(&mut self, key: &str, value: Value, expires_at: u64) {
    if let Some(entry) = self.map.get_mut(key) {
      entry.value = value;
      self.requeue(key, expires_at);
      self.used(key);
      return;
    }
    let key: Arc<str> = Arc::from(key);
    self.heap.push(Reverse((expires_at, key.clone())));
    let mut entry = Entry {
      value,
      expires_at,
      queued_at: expires_at,
      used: 0,
    };
    if let Some(lru) = &mut self.lru {
      lru.use_key(&key, &mut entry);
    }
    self.map.insert(key, entry);
    self.bound();
  }

  /// Moves the expiry of an existing key.
  fn requeue(&mut self, key: &str, expires_at: u64) {
    if let Some((stored_key, entry)) = self.map.get_key_value_mut(key) {
      set_expiry(&mut self.heap, stored_key, entry, expires_at);
    }
  }

  fn remove(&mut self, key: &str) -> bool {
    self.map.remove(key).is_some()
  }
}

/// Sets `entry`'s expiry; queues it again only when it moved earlier than its heap slot (a
/// later expiry is found when the old slot comes due).
fn set_expiry(
  heap: &mut BinaryHeap<Reverse<(u64, Arc<str>)>>,
  key: &Arc<str>,
  entry: &mut Entry,
  at: u64,
) {
  entry.expires_at = at;
  if at < entry.queued_at {
    entry.queued_at = at;
    heap.push(Reverse((at, key.clone())));
  }
}

/// Hands pages freed inside the allocator's heap back to the system. The keys' own small
/// allocations are freed in place, so without it the process keeps its peak size (glibc
/// returns only the top of its heap on its own). Elsewhere a no-op.
fn release_freed_memory() {
  #[cfg(all(target_os = "linux", target_env = "gnu"))]
  // SAFETY: malloc_trim only releases free pages; it has no preconditions.
  unsafe {
    libc::malloc_trim(0);
  }
}

/// Shared handle to one in-process keyspace.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
  inner: Arc<Mutex<Keyspace>>,
  closed: Arc<std::sync::atomic::AtomicBool>,
}

impl MemoryStore {
  pub fn new() -> Self {
    Self::default()
  }

  /// A store that keeps at most `max_keys` keys, evicting the least recently used.
  pub fn with_max_keys(max_keys: usize) -> Self {
    let store = Self::default();
    store.inner.lock().unwrap_or_else(|p| p.into_inner()).lru = Some(Lru {
      max_keys: max_keys.max(1),
      tick: 0,
      queue: VecDeque::new(),
    });
    store
  }

  /// Keys evicted by the `max_keys` bound so far.
  pub fn evictions(&self) -> u64 {
    self
      .inner
      .lock()
      .unwrap_or_else(|p| p.into_inner())
      .evictions
  }

  /// Identifies the keyspace (two handles to one keyspace have the same id).
  pub fn id(&self) -> usize {
    Arc::as_ptr(&self.inner) as *const () as usize
  }

  fn lock(&self, now: u64) -> MutexGuard<'_, Keyspace> {
    // A panic cannot leave a keyspace half-updated in a way later calls would misread
    // (every update is a whole-value replacement), so a poisoned lock is recovered.
    let mut ks = self.inner.lock().unwrap_or_else(|p| p.into_inner());
    ks.sweep(now);
    ks.compact();
    ks
  }

  /// Marks the store closed: the binding refuses every later call (its keys stay, unread).
  pub fn close(&self) {
    self
      .closed
      .store(true, std::sync::atomic::Ordering::Release);
  }

  pub fn is_closed(&self) -> bool {
    self.closed.load(std::sync::atomic::Ordering::Acquire)
  }

  /// Number of live keys (expired keys not yet reclaimed are not counted).
  pub fn len(&self, now: u64) -> usize {
    let ks = self.lock(now);
    ks.map.values().filter(|e| e.expires_at > now).count()
  }

  pub fn is_empty(&self, now: u64) -> bool {
    self.len(now) == 0
  }

  /// Keys held in memory, expired or not (what a sweep has not reclaimed yet).
  pub fn stored_keys(&self) -> usize {
    self
      .inner
      .lock()
      .unwrap_or_else(|p| p.into_inner())
      .map
      .len()
  }

  /// Drops every key and gives the tables' memory back.
  pub fn clear(&self) {
    let mut ks = self.inner.lock().unwrap_or_else(|p| p.into_inner());
    ks.map = HashMap::new();
    ks.heap = BinaryHeap::new();
    if let Some(lru) = &mut ks.lru {
      lru.queue = VecDeque::new();
    }
    drop(ks);
    release_freed_memory();
  }

  // ---- text values (ResponseCache) -------------------------------------------------------

  /// The text at `key`. A value of another kind is treated as a corrupt entry: it is
  /// deleted and reads as missing, as cache_get.lua does on Redis.
  pub fn get_text(&self, key: &str, now: u64) -> Option<String> {
    let mut ks = self.lock(now);
    match ks.live(key, now).map(|e| &e.value) {
      None => None,
      Some(Value::Text(t)) => Some(t.clone()),
      Some(_) => {
        ks.remove(key);
        None
      }
    }
  }

  pub fn set_text(&self, key: &str, text: String, now: u64, ttl_ms: u64) {
    self.lock(now).put(key, Value::Text(text), now + ttl_ms);
  }

  /// Deletes `key` whatever it holds; true when it existed.
  pub fn delete(&self, key: &str, now: u64) -> bool {
    let mut ks = self.lock(now);
    ks.live(key, now).is_some() && ks.remove(key)
  }

  /// Moves the expiry of a live key to `now + ttl_ms`; false when there is no such key.
  pub fn touch(&self, key: &str, now: u64, ttl_ms: u64) -> bool {
    let mut ks = self.lock(now);
    if ks.live(key, now).is_none() {
      return false;
    }
    ks.requeue(key, now + ttl_ms);
    true
  }

  // ---- sliding-window logs (RateLimiter) -------------------------------------------------

  pub fn rate_limit(
    &self,
    key: &str,
    limit: sliding_window::Limit,
    now: u64,
    op: sliding_window::Op,
  ) -> Result<sliding_window::Decision, WrongType> {
    // The hot path: one hash lookup when the key exists.
    let mut ks = self.lock(now);
    let Keyspace { map, heap, lru, .. } = &mut *ks;
    if let Some((stored_key, entry)) = map.get_key_value_mut(key) {
      if entry.expires_at > now {
        if !matches!(entry.value, Value::Log(_)) {
          return Err(WrongType);
        }
        if let Some(lru) = lru {
          lru.use_key(stored_key, entry);
        }
        let Value::Log(log) = &mut entry.value else {
          return Err(WrongType);
        };
        let decision = sliding_window::apply(log, limit, now, op);
        match sliding_window::expires_at(log, limit) {
          Some(at) => set_expiry(heap, stored_key, entry, at),
          None => {
            map.remove(key);
          }
        }
        return Ok(decision);
      }
      map.remove(key);
    }
    let mut log = VecDeque::new();
    let decision = sliding_window::apply(&mut log, limit, now, op);
    if let Some(at) = sliding_window::expires_at(&log, limit) {
      ks.put(key, Value::Log(log), at);
    }
    Ok(decision)
  }

  // ---- token budgets (TokenBudget) -------------------------------------------------------

  /// Runs `step` on the budget at `key` and stores the result until the period ends (or the
  /// last hold expires, whichever is later).
  pub fn budget<T>(
    &self,
    key: &str,
    limit: token_budget::Limit,
    now: u64,
    step: impl FnOnce(&mut token_budget::Budget) -> T,
  ) -> Result<T, WrongType> {
    let mut ks = self.lock(now);
    let mut budget = match ks.live(key, now) {
      None => token_budget::Budget::default(),
      Some(Entry {
        value: Value::Budget(b),
        ..
      }) => std::mem::take(&mut **b),
      Some(_) => return Err(WrongType),
    };
    let out = step(&mut budget);
    let holds_end = budget.holds_end();
    match budget.expires_at(limit).max(holds_end) {
      Some(at) if !budget.is_empty() => ks.put(key, Value::Budget(Box::new(budget)), at),
      _ => {
        ks.remove(key);
      }
    }
    Ok(out)
  }

  // ---- spend ledgers (CostTracker) -------------------------------------------------------

  /// Runs `step` on the day's and the month's buckets and keeps each until its period ends
  /// (or its last hold expires). `keys` are (day key, kept until, month key, kept until).
  pub fn spend<T>(
    &self,
    keys: (&str, u64, &str, u64),
    now: u64,
    step: impl FnOnce(&mut spend::Bucket, &mut spend::Bucket) -> T,
  ) -> Result<T, WrongType> {
    let (day_key, day_end, month_key, month_end) = keys;
    let mut ks = self.lock(now);
    for key in [day_key, month_key] {
      if let Some(e) = ks.live(key, now) {
        if !matches!(e.value, Value::Spend(_)) {
          return Err(WrongType);
        }
      }
    }
    let mut take = |key: &str| match ks.live(key, now) {
      None => Ok(spend::Bucket::default()),
      Some(Entry {
        value: Value::Spend(b),
        ..
      }) => Ok(std::mem::take(&mut **b)),
      Some(_) => Err(WrongType),
    };
    let (mut day, mut month) = (take(day_key)?, take(month_key)?);
    let out = step(&mut day, &mut month);
    for (key, end, bucket) in [(day_key, day_end, day), (month_key, month_end, month)] {
      if bucket == spend::Bucket::default() {
        ks.remove(key);
      } else {
        let until = bucket.keep_until(end);
        ks.put(key, Value::Spend(Box::new(bucket)), until);
      }
    }
    Ok(out)
  }

  // ---- guard meters (Guard) ---------------------------------------------------------------

  /// Runs `step` over the meters at `keys` (fresh ones where missing) under one lock, so a
  /// guard's decision over all of them is atomic, and keeps each until its `keep_until` (a
  /// meter holding nothing is dropped). `kinds[i]` is what `keys[i]` limits.
  pub fn meters<T>(
    &self,
    keys: &[String],
    kinds: &[guard::Kind],
    now: u64,
    step: impl FnOnce(&mut [&mut guard::Meter]) -> T,
  ) -> Result<T, WrongType> {
    let mut ks = self.lock(now);
    let mut taken: Vec<Box<guard::Meter>> = Vec::with_capacity(keys.len());
    for key in keys {
      match ks.live(key, now) {
        None => taken.push(Box::default()),
        // The meter's box itself is taken (an empty text left in its place until it is put
        // back): no allocation per meter per call.
        Some(entry) if matches!(entry.value, Value::Meter(_)) => {
          if let Value::Meter(m) = std::mem::replace(&mut entry.value, Value::Text(String::new())) {
            taken.push(m);
          }
        }
        Some(_) => {
          // Put back what was taken: nothing changes on a refused call.
          for (k, m) in keys.iter().zip(taken) {
            if let Some(e) = ks.map.get_mut(k.as_str()) {
              if matches!(&e.value, Value::Text(t) if t.is_empty()) {
                e.value = Value::Meter(m);
              }
            }
          }
          return Err(WrongType);
        }
      }
    }
    let out = {
      let mut refs: Vec<&mut guard::Meter> = taken.iter_mut().map(|b| &mut **b).collect();
      step(&mut refs)
    };
    for ((key, kind), meter) in keys.iter().zip(kinds).zip(taken) {
      if meter.is_empty() {
        ks.remove(key);
      } else {
        let until = meter.keep_until(kind).max(now + 1);
        ks.put(key, Value::Meter(meter), until);
      }
    }
    Ok(out)
  }

  // ---- quota scopes (Quota) --------------------------------------------------------------

  /// Runs `step` on the scope state at `key` (a fresh one when missing) and stores the
  /// result until `expires_at`, as rate-budget's MemoryStore does even for a failed lookup.
  pub fn quota<T>(
    &self,
    key: &str,
    now: u64,
    expires_at: u64,
    step: impl FnOnce(&mut quota::QuotaState) -> T,
  ) -> Result<T, WrongType> {
    let mut ks = self.lock(now);
    let mut state = match ks.live(key, now) {
      None => quota::QuotaState::default(),
      Some(Entry {
        value: Value::Quota(q),
        ..
      }) => std::mem::take(q),
      Some(_) => return Err(WrongType),
    };
    let out = step(&mut state);
    ks.put(key, Value::Quota(state), expires_at);
    Ok(out)
  }

  /// A copy of the scope state at `key`.
  pub fn quota_state(&self, key: &str, now: u64) -> Result<Option<quota::QuotaState>, WrongType> {
    let mut ks = self.lock(now);
    match ks.live(key, now).map(|e| &e.value) {
      None => Ok(None),
      Some(Value::Quota(q)) => Ok(Some(q.clone())),
      Some(_) => Err(WrongType),
    }
  }

  /// Replaces the scope state at `key`.
  pub fn set_quota_state(&self, key: &str, state: quota::QuotaState, now: u64, expires_at: u64) {
    self.lock(now).put(key, Value::Quota(state), expires_at);
  }

  /// Deletes every key that starts with `prefix`; returns how many.
  pub fn remove_prefix(&self, prefix: &str) -> usize {
    let mut ks = self.inner.lock().unwrap_or_else(|p| p.into_inner());
    let before = ks.map.len();
    ks.map.retain(|k, _| !k.starts_with(prefix));
    let removed = before - ks.map.len();
    ks.shrink();
    removed
  }

  // ---- sessions (SessionStore) -----------------------------------------------------------

  pub fn session_save(&self, key: &str, session: Session, now: u64, ttl_ms: u64) {
    self
      .lock(now)
      .put(key, Value::Session(session), now + ttl_ms);
  }

  pub fn session_load(&self, key: &str, now: u64) -> Result<Option<String>, WrongType> {
    let mut ks = self.lock(now);
    match ks.live(key, now).map(|e| &e.value) {
      None => Ok(None),
      Some(Value::Session(s)) => Ok(Some(s.assemble())),
      Some(_) => Err(WrongType),
    }
  }

  /// Appends `items` (comma-separated JSON values) to the session's messages, creating the
  /// session when missing, and renews its expiry; refuses when the result would exceed
  /// `max_bytes`, leaving the session as it was.
  pub fn session_append(
    &self,
    key: &str,
    items: &str,
    now: u64,
    ttl_ms: u64,
    max_bytes: Option<usize>,
  ) -> Result<AppendOutcome, WrongType> {
    let mut ks = self.lock(now);
    let mut session = match ks.live(key, now) {
      None => Session::empty(),
      Some(Entry {
        value: Value::Session(s),
        ..
      }) => s.clone(),
      Some(_) => return Err(WrongType),
    };
    // A session that is not a message list is refused as such before any size cap.
    let Ok(size) = session.bytes_after_append(items) else {
      return Ok(AppendOutcome::NotAMessageList);
    };
    if max_bytes.is_some_and(|cap| size > cap) {
      return Ok(AppendOutcome::TooLarge(size));
    }
    if session.append(items) == Err(NotAMessageList) {
      return Ok(AppendOutcome::NotAMessageList);
    }
    let bytes = session.bytes();
    ks.put(key, Value::Session(session), now + ttl_ms);
    Ok(AppendOutcome::Appended(bytes))
  }
}

/// What `session_append` did.
#[derive(Debug, PartialEq, Eq)]
pub enum AppendOutcome {
  /// Appended; the session's new size in bytes.
  Appended(usize),
  /// Refused: the session would grow to this many bytes, over the cap.
  TooLarge(usize),
  /// Refused: the session's data is not an object with a `messages` array.
  NotAMessageList,
}

#[cfg(test)]
mod tests {
  use super::*;
  use sliding_window::{Limit, Op};

  #[test]
  fn meters_of_a_decision_that_meets_another_kind_are_left_as_they_were() {
    use crate::engine::guard::{acquire, Kind, Spec};
    let store = MemoryStore::new();
    let keys = vec!["m1".to_owned(), "t".to_owned()];
    let kinds = [Kind::Concurrent { max: 5 }, Kind::Concurrent { max: 5 }];
    let spec = Spec {
      kind: kinds[0],
      amount: 0,
    };
    store
      .meters(&keys[..1], &kinds[..1], 0, |m| {
        acquire(m, &[spec], 0, 1_000)
      })
      .unwrap();
    store.set_text("t", "x".into(), 0, 10_000);
    assert_eq!(store.meters(&keys, &kinds, 1, |m| m.len()), Err(WrongType));
    // the first meter is back, with its hold
    let held = store
      .meters(&keys[..1], &kinds[..1], 2, |m| m[0].holds())
      .unwrap();
    assert_eq!(held, 1);
    assert_eq!(store.get_text("t", 2).as_deref(), Some("x"));
  }

  #[test]
  fn expired_keys_are_reclaimed_without_being_touched() {
    let store = MemoryStore::new();
    for i in 0..1000 {
      store.set_text(&format!("k{i}"), "v".into(), 0, 10);
    }
    assert_eq!(store.stored_keys(), 1000);
    // Each later call reclaims a few due keys; 100 calls reclaim them all.
    for i in 0..100 {
      store.set_text(&format!("live{i}"), "v".into(), 20, 1_000);
    }
    assert_eq!(store.stored_keys(), 100);
    assert_eq!(store.len(20), 100);
  }

  #[test]
  fn heap_holds_each_key_once_however_often_it_is_written() {
    let store = MemoryStore::new();
    let limit = Limit {
      max: 1_000_000,
      window_ms: 1_000,
    };
    for t in 0..10_000 {
      store.rate_limit("k", limit, t, Op::Consume).unwrap();
    }
    assert_eq!(store.inner.lock().unwrap().heap.len(), 1);
  }

  #[test]
  fn max_keys_evicts_the_least_recently_used() {
    let store = MemoryStore::with_max_keys(2);
    store.set_text("a", "1".into(), 0, 1_000);
    store.set_text("b", "2".into(), 0, 1_000);
    assert_eq!(store.get_text("a", 1).as_deref(), Some("1"));
    store.set_text("c", "3".into(), 2, 1_000);
    assert_eq!(store.evictions(), 1);
    assert_eq!(store.get_text("b", 3), None);
    assert_eq!(store.get_text("a", 3).as_deref(), Some("1"));
    assert_eq!(store.get_text("c", 3).as_deref(), Some("3"));
    // Uses far outnumber keys: the recency queue is rebuilt, not grown without end.
    let limit = Limit {
      max: 1_000_000,
      window_ms: 1_000_000,
    };
    for _ in 0..10_000 {
      store.rate_limit("log", limit, 10, Op::Consume).unwrap();
    }
    let queued = store
      .inner
      .lock()
      .unwrap()
      .lru
      .as_ref()
      .unwrap()
      .queue
      .len();
    assert!(queued <= 2 * 2 + 64 + 1, "{queued}");
    // Evicted keys do not stay pinned by the expiry heap.
    for i in 0..10_000 {
      store.set_text(&format!("n{i}"), "v".into(), 20, 1_000);
    }
    assert_eq!(store.evictions(), 2 + 10_000);
    assert!(store.inner.lock().unwrap().heap.len() <= 2 * 2 + 1024 + 1);
    // Every key pays for the largest value kind: the large ones are boxed.
    assert!(std::mem::size_of::<Entry>() <= 72);
  }

  #[test]
  fn tables_shrink_after_a_large_expiry() {
    let store = MemoryStore::new();
    for i in 0..100_000 {
      store.set_text(&format!("k{i}"), "v".into(), 0, 10);
    }
    let big = store.inner.lock().unwrap().map.capacity();
    // Calls after the expiry reclaim the burst and hand the table back.
    for i in 0..10_000 {
      store.set_text("live", "v".into(), 20 + i, 1_000_000);
    }
    let ks = store.inner.lock().unwrap();
    assert_eq!(ks.map.len(), 1);
    assert!(
      ks.map.capacity() < big / 8,
      "{} of {big}",
      ks.map.capacity()
    );
  }

  #[test]
  fn touch_moves_expiry_both_ways() {
    let store = MemoryStore::new();
    store.set_text("k", "v".into(), 0, 1_000);
    assert!(store.touch("k", 500, 10_000));
    assert_eq!(store.get_text("k", 5_000).as_deref(), Some("v"));
    assert!(store.touch("k", 5_000, 10));
    assert_eq!(store.get_text("k", 5_010), None);
    assert!(!store.touch("k", 5_010, 10));
    assert_eq!(store.stored_keys(), 0);
  }

  #[test]
  fn wrong_type_is_reported_not_overwritten() {
    let store = MemoryStore::new();
    store.set_text("k", "v".into(), 0, 1_000);
    let limit = Limit {
      max: 1,
      window_ms: 1_000,
    };
    assert_eq!(store.rate_limit("k", limit, 0, Op::Consume), Err(WrongType));
    assert_eq!(store.get_text("k", 0).as_deref(), Some("v"));
    // The cache's read treats a foreign value as corrupt: evicted, a miss.
    store.rate_limit("log", limit, 0, Op::Consume).unwrap();
    assert_eq!(store.get_text("log", 0), None);
    assert_eq!(store.stored_keys(), 1);
  }

  #[test]
  fn append_respects_the_cap_and_keeps_the_session() {
    let store = MemoryStore::new();
    assert_eq!(
      store.session_append("s", "1", 0, 100, Some(8)),
      Ok(AppendOutcome::Appended(5))
    );
    assert_eq!(
      store.session_append("s", "22,33", 0, 100, Some(8)),
      Ok(AppendOutcome::TooLarge(11))
    );
    assert_eq!(
      store.session_load("s", 0).unwrap().as_deref(),
      Some(r#"{"messages":[1]}"#)
    );
    assert_eq!(store.session_load("s", 100).unwrap(), None);
  }

  #[test]
  fn append_to_a_non_list_is_refused_as_such_even_over_the_cap() {
    // As session.lua decides: a session that cannot take messages has no size after an
    // append, so the size cap does not apply to it.
    let store = MemoryStore::new();
    let raw = Session {
      head: "7".into(),
      messages: None,
    };
    store.session_save("s", raw, 0, 100);
    assert_eq!(
      store.session_append("s", "22,33", 0, 100, Some(1)),
      Ok(AppendOutcome::NotAMessageList)
    );
    assert_eq!(store.session_load("s", 0).unwrap().as_deref(), Some("7"));
  }
}
