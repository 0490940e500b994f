//! [`ScopedIndex`]: every cached question's vector, kept apart by scope (model + tenant or
//! context), so a search only ever compares vectors of one scope. A scope is searched by an
//! exact scan until it holds [`IndexConfig::ann_min`] vectors, then approximately: a scan of
//! the vectors' sign codes (1 bit a dimension) picks a shortlist, which is scored exactly.
//! A reported similarity is always exact; only the shortlist is approximate.

use std::sync::Arc;

use hashbrown::HashMap;

use super::exact::{normalize, Flat};

/// How the index searches.
#[derive(Clone, Copy, Debug)]
pub struct IndexConfig {
  /// Vectors in one scope from which the approximate search is used.
  pub ann_min: usize,
  /// Rows the approximate search scores exactly.
  pub shortlist: usize,
}

impl Default for IndexConfig {
  fn default() -> Self {
    IndexConfig {
      ann_min: 2048,
      shortlist: 256,
    }
  }
}

/// Why a vector was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VectorError {
  /// Its length differs from the vectors already indexed.
  Dimensions { expected: usize, got: usize },
  /// It has no direction (all zeros) or holds a non-finite number.
  NoDirection,
}

impl std::fmt::Display for VectorError {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    match self {
      VectorError::Dimensions { expected, got } => write!(
        f,
        "the embedding has {got} dimensions, the cache holds {expected}-dimensional embeddings"
      ),
      VectorError::NoDirection => write!(f, "the embedding is all zeros or not finite"),
    }
  }
}

struct Scope {
  flat: Flat,
}

/// A match: the entry key and its exact cosine similarity.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
  pub key: Arc<str>,
  pub similarity: f32,
}

/// Vectors by key, grouped by scope.
pub struct ScopedIndex {
  config: IndexConfig,
  dim: usize,
  next_id: u32,
  scopes: HashMap<Arc<str>, Scope>,
  /// key → (scope, id)
  by_key: HashMap<Arc<str>, (Arc<str>, u32)>,
  keys: HashMap<u32, Arc<str>>,
}

impl ScopedIndex {
  pub fn new(config: IndexConfig) -> Self {
    ScopedIndex {
      config,
      dim: 0,
      next_id: 0,
      scopes: HashMap::new(),
      by_key: HashMap::new(),
      keys: HashMap::new(),
    }
  }

  pub fn len(&self) -> usize {
    self.by_key.len()
  }

  pub fn is_empty(&self) -> bool {
    self.by_key.is_empty()
  }

  /// Dimensions of the indexed vectors (0 before the first).
  pub fn dim(&self) -> usize {
    self.dim
  }

  pub fn contains(&self, key: &str) -> bool {
    self.by_key.contains_key(key)
  }

  /// Normalises `v`, checking its length against the index's.
  pub fn prepare(&self, v: &[f32]) -> Result<Vec<f32>, VectorError> {
    if self.dim != 0 && v.len() != self.dim {
      return Err(VectorError::Dimensions {
        expected: self.dim,
        got: v.len(),
      });
    }
    normalize(v).ok_or(VectorError::NoDirection)
  }

  /// Indexes the normalised vector `unit` of `key` in `scope`, replacing what `key` had.
  pub fn insert(&mut self, key: &str, scope: &str, unit: &[f32]) -> Result<(), VectorError> {
    if self.dim == 0 {
      if unit.is_empty() {
        return Err(VectorError::NoDirection);
      }
      self.dim = unit.len();
    } else if unit.len() != self.dim {
      return Err(VectorError::Dimensions {
        expected: self.dim,
        got: unit.len(),
      });
    }
    self.remove(key);
    let id = self.next_id;
    self.next_id = self.next_id.wrapping_add(1);
    let key: Arc<str> = Arc::from(key);
    let scope_key = match self.scopes.get_key_value(scope) {
      Some((k, _)) => k.clone(),
      None => {
        let k: Arc<str> = Arc::from(scope);
        self.scopes.insert(
          k.clone(),
          Scope {
            flat: Flat::new(self.dim),
          },
        );
        k
      }
    };
    let s = self.scopes.get_mut(&scope_key).expect("scope just made");
    s.flat.insert(id, unit);
    self.keys.insert(id, key.clone());
    self.by_key.insert(key, (scope_key, id));
    Ok(())
  }

  /// Removes `key`; false when it was not indexed.
  pub fn remove(&mut self, key: &str) -> bool {
    let Some((scope, id)) = self.by_key.remove(key) else {
      return false;
    };
    self.keys.remove(&id);
    if let Some(s) = self.scopes.get_mut(&scope) {
      s.flat.remove(id);
      if s.flat.is_empty() {
        self.scopes.remove(&scope);
      }
    }
    true
  }

  pub fn clear(&mut self) {
    self.scopes.clear();
    self.by_key.clear();
    self.keys.clear();
    self.dim = 0;
  }

  /// Up to `k` entries of `scope` with similarity ≥ `min` to the normalised `q`, best first;
  /// approximate in scopes of `ann_min` vectors or more.
  pub fn search(&self, scope: &str, q: &[f32], k: usize, min: f32) -> Vec<Candidate> {
    self.search_with(scope, q, k, min, true)
  }

  /// As [`search`](Self::search), always by a full scan (the reference for recall).
  pub fn search_exact(&self, scope: &str, q: &[f32], k: usize, min: f32) -> Vec<Candidate> {
    self.search_with(scope, q, k, min, false)
  }

  fn search_with(&self, scope: &str, q: &[f32], k: usize, min: f32, ann: bool) -> Vec<Candidate> {
    let Some(s) = self.scopes.get(scope) else {
      return Vec::new();
    };
    if q.len() != self.dim {
      return Vec::new();
    }
    let scored = if ann && s.flat.len() >= self.config.ann_min {
      s.flat.search_codes(q, k, self.config.shortlist.max(k))
    } else {
      s.flat.search(q, k)
    };
    scored
      .into_iter()
      .filter(|(_, sim)| *sim >= min)
      .filter_map(|(id, similarity)| {
        Some(Candidate {
          key: self.keys.get(&id)?.clone(),
          similarity: similarity.min(1.0),
        })
      })
      .collect()
  }

  /// True when searches of `scope` are approximate.
  pub fn has_ann(&self, scope: &str) -> bool {
    self
      .scopes
      .get(scope)
      .is_some_and(|s| s.flat.len() >= self.config.ann_min)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  /// Deterministic pseudo-random unit vectors (xorshift).
  fn vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut x = seed | 1;
    let mut next = move || {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    (0..n)
      .map(|_| normalize(&(0..dim).map(|_| next()).collect::<Vec<_>>()).unwrap())
      .collect()
  }

  #[test]
  fn scopes_never_meet() {
    let mut ix = ScopedIndex::new(IndexConfig::default());
    let v = normalize(&[1.0, 0.0, 0.0]).unwrap();
    ix.insert("a", "tenant-1", &v).unwrap();
    assert_eq!(ix.search("tenant-1", &v, 1, 0.9)[0].key.as_ref(), "a");
    assert!(ix.search("tenant-2", &v, 1, 0.0).is_empty());
  }

  #[test]
  fn replacing_a_key_moves_it_and_removing_forgets_it() {
    let mut ix = ScopedIndex::new(IndexConfig::default());
    let x = normalize(&[1.0, 0.0]).unwrap();
    let y = normalize(&[0.0, 1.0]).unwrap();
    ix.insert("k", "s", &x).unwrap();
    ix.insert("k", "t", &y).unwrap();
    assert_eq!(ix.len(), 1);
    assert!(ix.search("s", &x, 1, 0.0).is_empty());
    assert_eq!(ix.search("t", &y, 1, 0.99)[0].similarity, 1.0);
    assert!(ix.remove("k"));
    assert!(ix.is_empty());
    assert!(!ix.remove("k"));
  }

  #[test]
  fn dimensions_are_fixed_by_the_first_vector() {
    let mut ix = ScopedIndex::new(IndexConfig::default());
    ix.insert("a", "s", &normalize(&[1.0, 2.0]).unwrap())
      .unwrap();
    assert_eq!(
      ix.prepare(&[1.0, 2.0, 3.0]),
      Err(VectorError::Dimensions {
        expected: 2,
        got: 3
      })
    );
    assert_eq!(ix.prepare(&[0.0, 0.0]), Err(VectorError::NoDirection));
  }

  #[test]
  fn the_graph_finds_what_the_scan_finds() {
    // Small enough for a debug build; the 100k recall test runs on the release addon.
    let data = vectors(1500, 64, 7);
    let mut ix = ScopedIndex::new(IndexConfig {
      ann_min: 500,
      shortlist: 64,
    });
    for (i, v) in data.iter().enumerate() {
      ix.insert(&format!("k{i}"), "s", v).unwrap();
    }
    assert!(ix.has_ann("s"));
    for i in (0..1500).step_by(3) {
      ix.remove(&format!("k{i}"));
    }
    let queries = vectors(200, 64, 99);
    let mut same = 0;
    for (j, noise) in queries.iter().enumerate() {
      // A stored question asked again in other words: its vector plus a little noise.
      let base = &data[(j * 3 + 1) % 1500];
      let q = normalize(
        &base
          .iter()
          .zip(noise)
          .map(|(a, b)| a + 0.1 * b)
          .collect::<Vec<_>>(),
      )
      .unwrap();
      let exact = ix.search_exact("s", &q, 1, -1.0);
      let approx = ix.search("s", &q, 1, -1.0);
      if exact[0].key == approx[0].key {
        same += 1;
      }
    }
    assert!(same >= 198, "recall {same}/200");
  }
}
