//! The in-process store: one keyspace per `MemoryStore`, guarded by a mutex, used only from
//! the thread that calls it (no tokio, no timers).
//!
//! Every key has an expiry. Expired keys are dropped lazily when touched and, so memory stays
//! bounded by live keys, a min-heap of expiry times lets each call reclaim a few keys that
//! came due. Each key sits in the heap once: when its expiry moved later, the popped entry is
//! pushed back at the new time instead of being pushed on every write.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use hashbrown::HashMap;

use crate::engine::session::{NotAMessageList, Session};
use crate::engine::{quota, sliding_window, spend, token_budget};

/// How many due keys one call reclaims at most.
const SWEEP_PER_CALL: usize = 16;

/// What a key holds.
#[derive(Debug)]
enum Value {
  Text(String),
  Log(VecDeque<u64>),
  Budget(token_budget::Budget),
  Session(Session),
  Quota(quota::QuotaState),
  Spend(spend::Bucket),
}

#[derive(Debug)]
struct Entry {
  value: Value,
  expires_at: u64,
  /// The time under which this key sits in the heap (never later than `expires_at`).
  queued_at: u64,
}

/// A key holds another kind of value than the call expects (two classes share a prefix).
#[derive(Debug, PartialEq, Eq)]
pub struct WrongType;

#[derive(Debug, Default)]
struct Keyspace {
  map: HashMap<Arc<str>, Entry>,
  heap: BinaryHeap<Reverse<(u64, Arc<str>)>>,
}

impl Keyspace {
  /// Reclaims up to `SWEEP_PER_CALL` keys that came due.
  fn sweep(&mut self, now: u64) {
    for _ in 0..SWEEP_PER_CALL {
      let due = matches!(self.heap.peek(), Some(Reverse((at, _))) if *at <= now);
      if !due {
        return;
      }
      let Some(Reverse((_, key))) = self.heap.pop() else {
        return;
      };
      if let Some(entry) = self.map.get_mut(&key) {
        if entry.expires_at <= now {
          self.map.remove(&key);
        } else {
          entry.queued_at = entry.expires_at;
          self.heap.push(Reverse((entry.expires_at, key)));
        }
      }
    }
  }

  /// The live entry at `key`, dropping it first when it expired.
  fn live(&mut self, key: &str, now: u64) -> Option<&mut Entry> {
    if self.map.get(key).is_some_and(|e| e.expires_at <= now) {
      self.map.remove(key);
    }
    self.map.get_mut(key)
  }

  /// Stores `value` at `key` until `expires_at`.
  fn put(&mut self, key: &str, value: Value, expires_at: u64) {
    if let Some(entry) = self.map.get_mut(key) {
      entry.value = value;
      self.requeue(key, expires_at);
      return;
    }
    let key: Arc<str> = Arc::from(key);
    self.heap.push(Reverse((expires_at, key.clone())));
    self.map.insert(
      key,
      Entry {
        value,
        expires_at,
        queued_at: expires_at,
      },
    );
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

  /// Identifies the keyspace (two handles to one keyspace have the same id).
  pub fn id(&self) -> usize {
    Arc::as_ptr(&self.inner) as *const () as usize
  }

  fn lock(&self, now: u64) -> MutexGuard<'_, Keyspace> {
    // A panic cannot leave a keyspace half-updated in a way later calls would misread
    // (every update is a whole-value replacement), so a poisoned lock is recovered.
    let mut ks = self.inner.lock().unwrap_or_else(|p| p.into_inner());
    ks.sweep(now);
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

  /// Drops every key.
  pub fn clear(&self) {
    let mut ks = self.inner.lock().unwrap_or_else(|p| p.into_inner());
    ks.map.clear();
    ks.heap.clear();
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
    let Keyspace { map, heap } = &mut *ks;
    if let Some((stored_key, entry)) = map.get_key_value_mut(key) {
      if entry.expires_at > now {
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
      }) => std::mem::take(b),
      Some(_) => return Err(WrongType),
    };
    let out = step(&mut budget);
    let holds_end = budget.holds_end();
    match budget.expires_at(limit).max(holds_end) {
      Some(at) if !budget.is_empty() => ks.put(key, Value::Budget(budget), at),
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
      }) => Ok(std::mem::take(b)),
      Some(_) => Err(WrongType),
    };
    let (mut day, mut month) = (take(day_key)?, take(month_key)?);
    let out = step(&mut day, &mut month);
    for (key, end, bucket) in [(day_key, day_end, day), (month_key, month_end, month)] {
      if bucket == spend::Bucket::default() {
        ks.remove(key);
      } else {
        let until = bucket.keep_until(end);
        ks.put(key, Value::Spend(bucket), until);
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
    before - ks.map.len()
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
    let size = session.bytes_after_append(items);
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
}
