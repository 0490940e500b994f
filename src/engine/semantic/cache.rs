//! [`SemanticEntries`]: a whole semantic cache held in this process — the entries (question,
//! response, expiry) and the [`ScopedIndex`] of their vectors. The memory store keeps one per
//! cache prefix under a lock. Time is passed in; expired entries are dropped before every
//! call, and `max_entries` evicts the entries that expire first (the oldest, as every entry of
//! a cache lives for the same `ttl`).

use std::collections::BTreeSet;
use std::sync::Arc;

use hashbrown::HashMap;

use super::guard::compatible;
use super::index::{IndexConfig, ScopedIndex, VectorError};

/// Candidates looked at per search: the best one that passes the guard is served.
pub const CANDIDATES: usize = 8;

#[derive(Debug)]
pub struct Stored {
  pub scope: Arc<str>,
  /// The question's text (the last user message), compared by the guard.
  pub query: String,
  /// JSON of the response.
  pub response: String,
  pub expires_at: u64,
}

/// A semantic match.
#[derive(Debug)]
pub struct Hit<'a> {
  pub key: Arc<str>,
  pub similarity: f32,
  pub entry: &'a Stored,
}

pub struct SemanticEntries {
  entries: HashMap<Arc<str>, Stored>,
  by_expiry: BTreeSet<(u64, Arc<str>)>,
  index: ScopedIndex,
}

impl SemanticEntries {
  pub fn new(config: IndexConfig) -> Self {
    SemanticEntries {
      entries: HashMap::new(),
      by_expiry: BTreeSet::new(),
      index: ScopedIndex::new(config),
    }
  }

  fn sweep(&mut self, now: u64) {
    while let Some((at, key)) = self.by_expiry.first().cloned() {
      if at > now {
        break;
      }
      self.remove(&key);
    }
  }

  fn remove(&mut self, key: &str) -> bool {
    let Some(e) = self.entries.remove(key) else {
      return false;
    };
    self.by_expiry.remove(&(e.expires_at, Arc::from(key)));
    self.index.remove(key);
    true
  }

  /// Live entries at `now`.
  pub fn len(&mut self, now: u64) -> usize {
    self.sweep(now);
    self.entries.len()
  }

  pub fn is_empty(&mut self, now: u64) -> bool {
    self.len(now) == 0
  }

  /// The entry at `key` (the exact request), if live.
  pub fn get(&mut self, key: &str, now: u64) -> Option<&Stored> {
    self.sweep(now);
    self.entries.get(key)
  }

  /// Normalises an embedding for this cache's index.
  pub fn prepare(&self, v: &[f32]) -> Result<Vec<f32>, VectorError> {
    self.index.prepare(v)
  }

  /// Stores an entry until `now + ttl_ms`, replacing the one at `key`; `unit` (normalised)
  /// indexes it for semantic search (without it, only the exact request finds it). Returns
  /// how many entries were evicted to stay within `max_entries`.
  #[allow(clippy::too_many_arguments)]
  pub fn set(
    &mut self,
    key: &str,
    scope: &str,
    query: String,
    response: String,
    unit: Option<&[f32]>,
    now: u64,
    ttl_ms: u64,
    max_entries: usize,
  ) -> Result<usize, VectorError> {
    self.sweep(now);
    self.remove(key);
    if let Some(v) = unit {
      self.index.insert(key, scope, v)?;
    }
    let key: Arc<str> = Arc::from(key);
    let expires_at = now + ttl_ms;
    self.by_expiry.insert((expires_at, key.clone()));
    self.entries.insert(
      key,
      Stored {
        scope: Arc::from(scope),
        query,
        response,
        expires_at,
      },
    );
    let mut evicted = 0;
    while self.entries.len() > max_entries.max(1) {
      let Some((_, oldest)) = self.by_expiry.first().cloned() else {
        break;
      };
      self.remove(&oldest);
      evicted += 1;
    }
    Ok(evicted)
  }

  /// The most similar live entry of `scope` with similarity ≥ `threshold` whose question
  /// passes the guard against `query`.
  pub fn search(
    &mut self,
    scope: &str,
    unit: &[f32],
    query: &str,
    threshold: f32,
    now: u64,
  ) -> Option<Hit<'_>> {
    self.sweep(now);
    let found = self.index.search(scope, unit, CANDIDATES, threshold);
    let best = found.into_iter().find(|c| {
      self
        .entries
        .get(&c.key)
        .is_some_and(|e| compatible(query, &e.query))
    })?;
    let entry = self.entries.get(&best.key)?;
    Some(Hit {
      key: best.key,
      similarity: best.similarity,
      entry,
    })
  }

  pub fn delete(&mut self, key: &str, now: u64) -> bool {
    self.sweep(now);
    self.remove(key)
  }

  /// Removes every entry; the number of them live at `now` (expired ones are not counted, as
  /// `semantic_clear.lua` does not count them).
  pub fn clear(&mut self, now: u64) -> usize {
    self.sweep(now);
    let n = self.entries.len();
    self.entries.clear();
    self.by_expiry.clear();
    self.index.clear();
    n
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::engine::semantic::exact::normalize;

  fn unit(v: &[f32]) -> Vec<f32> {
    normalize(v).unwrap()
  }

  #[test]
  fn serves_the_closest_compatible_entry() {
    let mut c = SemanticEntries::new(IndexConfig::default());
    let enable = unit(&[1.0, 0.0, 0.01]);
    let disable = unit(&[1.0, 0.0, 0.0]);
    c.set(
      "a",
      "s",
      "how to enable 2FA".into(),
      "\"A\"".into(),
      Some(&enable),
      0,
      1000,
      10,
    )
    .unwrap();
    c.set(
      "b",
      "s",
      "how to disable 2FA".into(),
      "\"B\"".into(),
      Some(&disable),
      0,
      1000,
      10,
    )
    .unwrap();
    // Closest vector is b's, but its text is the opposite question: a is served.
    let hit = c
      .search("s", &disable, "how do I enable 2FA", 0.95, 1)
      .unwrap();
    assert_eq!(hit.key.as_ref(), "a");
    assert!(c
      .search("s", &disable, "how do I enable 3FA", 0.95, 1)
      .is_none());
    assert!(c
      .search("other", &disable, "how to disable 2FA", 0.0, 1)
      .is_none());
  }

  #[test]
  fn entries_expire_and_the_oldest_are_evicted() {
    let mut c = SemanticEntries::new(IndexConfig::default());
    let v = unit(&[1.0, 2.0]);
    for (i, key) in ["a", "b", "c"].iter().enumerate() {
      let evicted = c
        .set(key, "s", "q".into(), "1".into(), Some(&v), i as u64, 100, 2)
        .unwrap();
      assert_eq!(evicted, usize::from(i == 2));
    }
    assert!(c.get("a", 2).is_none());
    assert!(c.get("b", 2).is_some());
    assert_eq!(c.len(101), 1, "b expires at 101");
    assert_eq!(c.len(102), 0);
    assert!(c.search("s", &v, "q", 0.5, 102).is_none());
  }

  #[test]
  fn delete_and_clear() {
    let mut c = SemanticEntries::new(IndexConfig::default());
    let v = unit(&[1.0, 2.0]);
    c.set("a", "s", "q".into(), "1".into(), Some(&v), 0, 100, 10)
      .unwrap();
    c.set("b", "s", "q".into(), "1".into(), None, 0, 100, 10)
      .unwrap();
    assert!(c.get("b", 0).is_some());
    assert!(c.delete("a", 0));
    assert!(!c.delete("a", 0));
    assert!(c.search("s", &v, "q", 0.5, 0).is_none());
    assert_eq!(c.clear(0), 1);
  }

  #[test]
  fn clear_counts_only_live_entries() {
    let mut c = SemanticEntries::new(IndexConfig::default());
    c.set("a", "s", "q".into(), "1".into(), None, 0, 100, 10)
      .unwrap();
    c.set("b", "s", "q".into(), "1".into(), None, 50, 100, 10)
      .unwrap();
    assert_eq!(c.clear(100), 1);
    assert!(c.get("b", 100).is_none());
  }
}
