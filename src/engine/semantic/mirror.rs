//! [`Mirror`]: a process's copy of the vector index of a cache whose entries live in Redis.
//! Redis holds the truth (entries, responses, expiry); the mirror only finds candidates, and
//! every candidate is read back from Redis before it is served.
//!
//! The mirror follows the cache's change log (a Redis stream): `cursor` is the id of the last
//! log entry applied. A batch of changes read after cursor `c` is applied only while the
//! mirror is still at `c`, so concurrent lookups never apply changes twice or out of order.
//! Without a cursor (a new process, or a log that was trimmed or cleared past the cursor)
//! the mirror is loaded whole from the cache's entry set, then follows the log again.

use super::index::{IndexConfig, ScopedIndex};

/// One change read from the log.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
  /// `key` is live in `scope` with this normalised vector.
  Put {
    key: String,
    scope: String,
    unit: Vec<f32>,
  },
  /// `key` is gone (deleted, evicted or expired), or has no vector.
  Gone { key: String },
}

pub struct Mirror {
  pub index: ScopedIndex,
  cursor: Option<String>,
}

impl Mirror {
  pub fn new(config: IndexConfig) -> Self {
    Mirror {
      index: ScopedIndex::new(config),
      cursor: None,
    }
  }

  /// The last log entry applied, or `None` when the mirror must be loaded whole.
  pub fn cursor(&self) -> Option<&str> {
    self.cursor.as_deref()
  }

  fn apply_one(&mut self, change: Change) {
    match change {
      Change::Put { key, scope, unit } => {
        // A vector of other dimensions cannot be searched with this cache's queries.
        if self.index.insert(&key, &scope, &unit).is_err() {
          self.index.remove(&key);
        }
      }
      Change::Gone { key } => {
        self.index.remove(&key);
      }
    }
  }

  /// Applies changes read after `base`, moving the cursor to `next`; false (nothing done)
  /// when the mirror moved on since `base` was read.
  pub fn apply(&mut self, base: &str, changes: Vec<Change>, next: String) -> bool {
    if self.cursor.as_deref() != Some(base) {
      return false;
    }
    for c in changes {
      self.apply_one(c);
    }
    self.cursor = Some(next);
    true
  }

  /// Replaces the whole index with a loaded one, following the log from `cursor`.
  pub fn load(&mut self, index: ScopedIndex, cursor: String) {
    self.index = index;
    self.cursor = Some(cursor);
  }

  /// A change this process made itself: seen at once, and again (harmlessly) in the log.
  pub fn local(&mut self, change: Change) {
    self.apply_one(change);
  }

  /// Forgets the cursor: the next lookup loads the index whole.
  pub fn reset(&mut self) {
    self.cursor = None;
  }
}

/// A normalised vector as Redis stores it: f32, little-endian.
pub fn to_bytes(v: &[f32]) -> Vec<u8> {
  v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The vector of [`to_bytes`]; `None` when the bytes cannot be one.
pub fn from_bytes(b: &[u8]) -> Option<Vec<f32>> {
  if b.is_empty() || !b.len().is_multiple_of(4) {
    return None;
  }
  Some(
    b.chunks_exact(4)
      .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
      .collect(),
  )
}

#[cfg(test)]
mod tests {
  use super::*;

  fn put(key: &str) -> Change {
    Change::Put {
      key: key.into(),
      scope: "s".into(),
      unit: vec![1.0, 0.0],
    }
  }

  #[test]
  fn applies_batches_only_from_its_own_cursor() {
    let mut m = Mirror::new(IndexConfig::default());
    assert!(
      !m.apply("0", vec![put("a")], "1-0".into()),
      "not loaded yet"
    );
    m.load(ScopedIndex::new(IndexConfig::default()), "0".into());
    assert!(m.apply("0", vec![put("a"), put("b")], "2-0".into()));
    // A second lookup that read the same batch from "0" arrives late: ignored.
    assert!(!m.apply("0", vec![put("a")], "1-0".into()));
    assert!(m.apply("2-0", vec![Change::Gone { key: "a".into() }], "3-0".into()));
    assert_eq!(m.cursor(), Some("3-0"));
    assert!(!m.index.contains("a"));
    assert!(m.index.contains("b"));
    m.reset();
    assert_eq!(m.cursor(), None);
  }

  #[test]
  fn vectors_round_trip_as_bytes() {
    let v = vec![0.5f32, -1.25, 3.0e-8];
    assert_eq!(from_bytes(&to_bytes(&v)).unwrap(), v);
    assert!(from_bytes(&[1, 2, 3]).is_none());
  }
}
