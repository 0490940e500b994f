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
//!
//! Engines reach their state through one interface, whatever the engine: [`MemoryStore::update`]
//! (one key, in place), [`MemoryStore::update_all`] (several keys under one lock: a decision
//! over all of them is atomic), [`MemoryStore::view`] and [`MemoryStore::write`]. Each kind of
//! value is a variant of [`Value`] that implements [`Stored`]; the step a class runs (its
//! engine's function and the rule for how long the key is kept) is written at the call, in the
//! binding. Text values (the response cache) and key operations (`delete`, `touch`,
//! `remove_prefix`) work on any key.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use hashbrown::HashMap;

use super::shared::SharedStates;

use crate::engine::session::Session;
use crate::engine::{guard, provider_limit, quota, spend, token_budget};

/// How many due keys one call reclaims at most.
const SWEEP_PER_CALL: usize = 16;

/// Tables are shrunk when they have room for this many times their keys (and at least
/// `SHRINK_FLOOR` slots), so a burst of ids does not pin its memory after it expired.
const SHRINK_RATIO: usize = 4;
const SHRINK_FLOOR: usize = 4096;

/// What a key holds: text, or one engine's state. Each kind is one variant, so a key costs
/// the size of the smallest common layout (the large states are boxed), and each engine reaches
/// its own through [`Stored`].
#[derive(Debug)]
pub enum Value {
  Text(String),
  Log(VecDeque<u64>),
  // Boxed: the large states would otherwise size every entry (a rate limiter's log included).
  Budget(Box<token_budget::Budget>),
  Session(Session),
  Quota(quota::QuotaState),
  Spend(Box<spend::Bucket>),
  Meter(Box<guard::Meter>),
  /// ProviderLimiter's points of a period (none once the period ended).
  Points(Option<provider_limit::Counter>),
}

/// A kind of value an engine keeps at a key: the one interface between the store and every
/// engine's state (`update`, `update_all`, `view`, `write`). A new engine adds a variant to
/// [`Value`] and a `stored!` line.
pub trait Stored: Sized {
  /// What a missing key starts from.
  fn fresh() -> Self;
  fn wrap(self) -> Value;
  /// The value, when the key holds this kind.
  fn peek(v: &mut Value) -> Option<&mut Self>;
  /// The value, or the value of another kind given back.
  fn unwrap(v: Value) -> Result<Self, Value>;
}

macro_rules! stored {
  ($t:ty, $variant:ident, $fresh:expr) => {
    impl Stored for $t {
      fn fresh() -> Self {
        $fresh
      }
      fn wrap(self) -> Value {
        Value::$variant(self)
      }
      fn peek(v: &mut Value) -> Option<&mut Self> {
        match v {
          Value::$variant(x) => Some(x),
          _ => None,
        }
      }
      fn unwrap(v: Value) -> Result<Self, Value> {
        match v {
          Value::$variant(x) => Ok(x),
          other => Err(other),
        }
      }
    }
  };
}

stored!(String, Text, String::new());
stored!(VecDeque<u64>, Log, VecDeque::new());
stored!(Box<token_budget::Budget>, Budget, Box::default());
stored!(Session, Session, Session::empty());
stored!(quota::QuotaState, Quota, quota::QuotaState::default());
stored!(Box<spend::Bucket>, Spend, Box::default());
stored!(Box<guard::Meter>, Meter, Box::default());
stored!(Option<provider_limit::Counter>, Points, None);

/// How long a key stays after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
  /// Until this time (ms).
  Until(u64),
  /// Deleted now (the state holds nothing).
  Drop,
  /// As it was: a stored key keeps its expiry, a fresh value is not stored.
  Unchanged,
}

impl From<Option<u64>> for Keep {
  /// `Some(at)`: until `at`; `None`: nothing left to keep.
  fn from(at: Option<u64>) -> Self {
    at.map_or(Keep::Drop, Keep::Until)
  }
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
  shared: Arc<SharedStates>,
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

  /// What the classes on this store keep outside keys (see [`SharedStates`]).
  pub fn shared(&self) -> &SharedStates {
    &self.shared
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

  // ---- engine state: one interface for every engine ----------------------------------------

  /// Runs `step` on the value at `key` in place (on a fresh value when the key is missing or
  /// expired) and keeps the key as `step` says. The hot path: one hash lookup when the key
  /// exists, no allocation, nothing moved.
  pub fn update<S: Stored, T>(
    &self,
    key: &str,
    now: u64,
    step: impl FnOnce(&mut S) -> (T, Keep),
  ) -> Result<T, WrongType> {
    let mut ks = self.lock(now);
    let Keyspace { map, heap, lru, .. } = &mut *ks;
    if let Some((stored_key, entry)) = map.get_key_value_mut(key) {
      if entry.expires_at > now {
        let (out, keep) = {
          let Some(value) = S::peek(&mut entry.value) else {
            return Err(WrongType);
          };
          step(value)
        };
        if let Some(lru) = lru {
          lru.use_key(stored_key, entry);
        }
        match keep {
          Keep::Until(at) => set_expiry(heap, stored_key, entry, at),
          Keep::Drop => {
            map.remove(key);
          }
          Keep::Unchanged => {}
        }
        return Ok(out);
      }
      map.remove(key);
    }
    let mut value = S::fresh();
    let (out, keep) = step(&mut value);
    if let Keep::Until(at) = keep {
      ks.put(key, value.wrap(), at);
    }
    Ok(out)
  }

  /// Runs `step` over the values at `keys` (fresh ones where missing) under one lock, so a
  /// decision over all of them is atomic, then keeps each as `keep(i, value)` says
  /// (`Keep::Unchanged` keeps a stored key's expiry and does not store a fresh one). When a
  /// key holds another kind of value nothing changes anywhere.
  pub fn update_all<S: Stored, T, K: AsRef<str>>(
    &self,
    keys: &[K],
    now: u64,
    step: impl FnOnce(&mut [S]) -> T,
    keep: impl Fn(usize, &S) -> Keep,
  ) -> Result<T, WrongType> {
    let mut ks = self.lock(now);
    let mut taken: Vec<S> = Vec::with_capacity(keys.len());
    for key in keys {
      let key = key.as_ref();
      let Some(entry) = ks.live(key, now) else {
        taken.push(S::fresh());
        continue;
      };
      // The value is taken out (an empty text left in its place until it is put back): a
      // boxed state moves without an allocation, and a key with such a placeholder is one
      // that was stored.
      match S::unwrap(std::mem::replace(
        &mut entry.value,
        Value::Text(String::new()),
      )) {
        Ok(v) => taken.push(v),
        Err(other) => {
          entry.value = other;
          // Put back what was taken: nothing changes on a refused call.
          for (k, v) in keys.iter().zip(taken) {
            if let Some(e) = ks.map.get_mut(k.as_ref()) {
              if matches!(&e.value, Value::Text(t) if t.is_empty()) {
                e.value = v.wrap();
              }
            }
          }
          return Err(WrongType);
        }
      }
    }
    let out = step(&mut taken);
    for (i, (key, value)) in keys.iter().zip(taken).enumerate() {
      let key = key.as_ref();
      match keep(i, &value) {
        Keep::Until(at) => ks.put(key, value.wrap(), at),
        Keep::Drop => {
          ks.remove(key);
        }
        // A fresh value has no entry: it is not stored.
        Keep::Unchanged => {
          if let Some(e) = ks.map.get_mut(key) {
            e.value = value.wrap();
          }
        }
      }
    }
    Ok(out)
  }

  /// What `read` makes of the value at `key`, or `None` when there is none.
  pub fn view<S: Stored, T>(
    &self,
    key: &str,
    now: u64,
    read: impl FnOnce(&S) -> T,
  ) -> Result<Option<T>, WrongType> {
    let mut ks = self.lock(now);
    match ks.live(key, now) {
      None => Ok(None),
      Some(e) => S::peek(&mut e.value)
        .map(|v| Some(read(v)))
        .ok_or(WrongType),
    }
  }

  /// Stores `value` at `key` until `expires_at`, whatever the key held.
  pub fn write<S: Stored>(&self, key: &str, value: S, now: u64, expires_at: u64) {
    self.lock(now).put(key, value.wrap(), expires_at);
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
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::engine::session::AppendOutcome;
  use crate::engine::sliding_window::{self, Limit, Op};

  fn rate_limit(store: &MemoryStore, key: &str, limit: Limit, now: u64) -> Result<bool, WrongType> {
    store.update(key, now, |log| {
      let d = sliding_window::apply(log, limit, now, Op::Consume);
      (d.allowed, sliding_window::expires_at(log, limit).into())
    })
  }

  type Meters = Box<crate::engine::guard::Meter>;

  fn meters<T>(
    store: &MemoryStore,
    keys: &[String],
    now: u64,
    step: impl FnOnce(&mut [&mut crate::engine::guard::Meter]) -> T,
  ) -> Result<T, WrongType> {
    store.update_all(
      keys,
      now,
      |b: &mut [Meters]| step(&mut b.iter_mut().map(|m| &mut **m).collect::<Vec<_>>()),
      |_, m| {
        if m.is_empty() {
          Keep::Drop
        } else {
          Keep::Until(now + 10_000)
        }
      },
    )
  }

  fn append(
    store: &MemoryStore,
    key: &str,
    items: &str,
    now: u64,
    cap: usize,
  ) -> Result<AppendOutcome, WrongType> {
    store.update(key, now, |s: &mut Session| {
      let o = s.append_capped(items, Some(cap));
      let keep = if matches!(o, AppendOutcome::Appended(_)) {
        Keep::Until(now + 100)
      } else {
        Keep::Unchanged
      };
      (o, keep)
    })
  }

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
    meters(&store, &keys[..1], 0, |m| acquire(m, &[spec], 0, 1_000)).unwrap();
    store.set_text("t", "x".into(), 0, 10_000);
    assert_eq!(meters(&store, &keys, 1, |m| m.len()), Err(WrongType));
    // the first meter is back, with its hold
    let held = meters(&store, &keys[..1], 2, |m| m[0].holds()).unwrap();
    assert_eq!(held, 1);
    assert_eq!(store.get_text("t", 2).as_deref(), Some("x"));
  }

  #[test]
  fn update_all_keeps_unchanged_keys_as_they_were_and_stores_no_fresh_one() {
    let store = MemoryStore::new();
    store.write("a", Session::empty(), 0, 100);
    let keys = ["a", "b"];
    let n = store
      .update_all(
        &keys,
        1,
        |s: &mut [Session]| {
          s.iter_mut().for_each(|x| {
            x.append("1").unwrap();
          });
          s.len()
        },
        |_, _| Keep::Unchanged,
      )
      .unwrap();
    assert_eq!(n, 2);
    // "a" changed in place, expiry kept; "b" was never stored
    assert_eq!(
      store.view("a", 99, Session::assemble).unwrap().as_deref(),
      Some(r#"{"messages":[1]}"#)
    );
    assert_eq!(store.view("a", 100, Session::assemble).unwrap(), None);
    assert_eq!(store.view("b", 1, Session::assemble).unwrap(), None);
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
      rate_limit(&store, "k", limit, t).unwrap();
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
      rate_limit(&store, "log", limit, 10).unwrap();
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
    assert_eq!(rate_limit(&store, "k", limit, 0), Err(WrongType));
    assert_eq!(store.get_text("k", 0).as_deref(), Some("v"));
    // The cache's read treats a foreign value as corrupt: evicted, a miss.
    rate_limit(&store, "log", limit, 0).unwrap();
    assert_eq!(store.get_text("log", 0), None);
    assert_eq!(store.stored_keys(), 1);
  }

  #[test]
  fn append_respects_the_cap_and_keeps_the_session() {
    let store = MemoryStore::new();
    assert_eq!(
      append(&store, "s", "1", 0, 8),
      Ok(AppendOutcome::Appended(5))
    );
    assert_eq!(
      append(&store, "s", "22,33", 0, 8),
      Ok(AppendOutcome::TooLarge(11))
    );
    assert_eq!(
      store.view("s", 0, Session::assemble).unwrap().as_deref(),
      Some(r#"{"messages":[1]}"#)
    );
    assert_eq!(store.view("s", 100, Session::assemble).unwrap(), None);
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
    store.write("s", raw, 0, 100);
    assert_eq!(
      append(&store, "s", "22,33", 0, 1),
      Ok(AppendOutcome::NotAMessageList)
    );
    assert_eq!(
      store.view("s", 0, Session::assemble).unwrap().as_deref(),
      Some("7")
    );
  }
}
