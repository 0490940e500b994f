//! Exact cosine search over vectors normalised once, so cosine similarity is a dot product.
//!
//! [`dot`] is SimSIMD's (the `simsimd` crate: SIMD kernels in C, dispatched at run time).
//! [`Flat`] keeps the vectors of one scope in one contiguous `Vec<f32>`, row after row, so a
//! scan reads memory in order.

use hashbrown::HashMap;
use simsimd::SpatialSimilarity;

/// Dot product of two vectors (over the shorter length), with SimSIMD's kernels (picked at run
/// time for the CPU: AVX2, AVX-512, NEON, SVE).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
  let n = a.len().min(b.len());
  if n == 0 {
    return 0.0;
  }
  // Equal, non-empty lengths: SimSIMD answers.
  <f32 as SpatialSimilarity>::dot(&a[..n], &b[..n]).map_or(0.0, |d| d as f32)
}

/// `v` scaled to length 1, or `None` when it has no direction (all zeros, or not finite).
pub fn normalize(v: &[f32]) -> Option<Vec<f32>> {
  let norm = v
    .iter()
    .map(|x| f64::from(*x) * f64::from(*x))
    .sum::<f64>()
    .sqrt();
  if !norm.is_finite() || norm == 0.0 {
    return None;
  }
  Some(v.iter().map(|x| (f64::from(*x) / norm) as f32).collect())
}

/// The `k` best `(id, score)` pairs seen so far, best first.
pub struct TopK {
  k: usize,
  items: Vec<(u32, f32)>,
}

impl TopK {
  pub fn new(k: usize) -> Self {
    TopK {
      k: k.max(1),
      items: Vec::with_capacity(k.max(1) + 1),
    }
  }

  /// The lowest score that would still enter.
  #[inline]
  pub fn floor(&self) -> f32 {
    if self.items.len() < self.k {
      f32::NEG_INFINITY
    } else {
      self.items[self.items.len() - 1].1
    }
  }

  #[inline]
  pub fn push(&mut self, id: u32, score: f32) {
    if score <= self.floor() && self.items.len() >= self.k {
      return;
    }
    let at = self.items.partition_point(|(_, s)| *s >= score);
    self.items.insert(at, (id, score));
    self.items.truncate(self.k);
  }

  pub fn into_vec(self) -> Vec<(u32, f32)> {
    self.items
  }
}

/// One bit per dimension: set where the component is positive (a sign hash: the Hamming
/// distance of two codes estimates the angle between the vectors).
pub fn sign_code(v: &[f32], out: &mut Vec<u64>) {
  for chunk in v.chunks(64) {
    let mut word = 0u64;
    for (i, x) in chunk.iter().enumerate() {
      word |= u64::from(*x > 0.0) << i;
    }
    out.push(word);
  }
}

#[inline(always)]
fn hamming(a: &[u64], b: &[u64]) -> u32 {
  a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// The vectors of one scope, searched by a full scan — exact, or through their sign codes.
#[derive(Default)]
pub struct Flat {
  dim: usize,
  data: Vec<f32>,
  /// `words` u64 of sign bits per row, beside `data`.
  codes: Vec<u64>,
  words: usize,
  ids: Vec<u32>,
  rows: HashMap<u32, u32>,
}

impl Flat {
  pub fn new(dim: usize) -> Self {
    Flat {
      dim,
      words: dim.div_ceil(64),
      ..Default::default()
    }
  }

  pub fn len(&self) -> usize {
    self.ids.len()
  }

  pub fn is_empty(&self) -> bool {
    self.ids.is_empty()
  }

  pub fn contains(&self, id: u32) -> bool {
    self.rows.contains_key(&id)
  }

  /// Adds (or replaces) the row of `id`. `v` must be normalised and `dim` long.
  pub fn insert(&mut self, id: u32, v: &[f32]) {
    debug_assert_eq!(v.len(), self.dim);
    if let Some(&row) = self.rows.get(&id) {
      let at = row as usize * self.dim;
      self.data[at..at + self.dim].copy_from_slice(v);
      let mut code = Vec::with_capacity(self.words);
      sign_code(v, &mut code);
      let at = row as usize * self.words;
      self.codes[at..at + self.words].copy_from_slice(&code);
      return;
    }
    self.rows.insert(id, self.ids.len() as u32);
    self.ids.push(id);
    self.data.extend_from_slice(v);
    sign_code(v, &mut self.codes);
  }

  /// Removes the row of `id` (the last row takes its place); false when absent.
  pub fn remove(&mut self, id: u32) -> bool {
    let Some(row) = self.rows.remove(&id) else {
      return false;
    };
    let row = row as usize;
    let last = self.ids.len() - 1;
    if row != last {
      let moved = self.ids[last];
      self.ids[row] = moved;
      self.rows.insert(moved, row as u32);
      self
        .data
        .copy_within(last * self.dim..(last + 1) * self.dim, row * self.dim);
      let w = self.words;
      self.codes.copy_within(last * w..(last + 1) * w, row * w);
    }
    self.ids.pop();
    self.data.truncate(last * self.dim);
    self.codes.truncate(last * self.words);
    true
  }

  pub fn vector(&self, id: u32) -> Option<&[f32]> {
    let row = *self.rows.get(&id)? as usize;
    Some(&self.data[row * self.dim..(row + 1) * self.dim])
  }

  /// Every `(id, vector)`.
  pub fn iter(&self) -> impl Iterator<Item = (u32, &[f32])> {
    self
      .ids
      .iter()
      .copied()
      .zip(self.data.chunks_exact(self.dim.max(1)))
  }

  /// The `k` rows most similar to `q`, best first, with their exact cosine similarity.
  pub fn search(&self, q: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut top = TopK::new(k);
    for (id, row) in self.iter() {
      let s = dot(q, row);
      if s > top.floor() {
        top.push(id, s);
      }
    }
    top.into_vec()
  }

  /// Approximate search: the `shortlist` rows whose sign codes are nearest to `q`'s (a scan
  /// of 1 bit per dimension, 32× less memory than the vectors), then the `k` best of those
  /// by exact similarity.
  pub fn search_codes(&self, q: &[f32], k: usize, shortlist: usize) -> Vec<(u32, f32)> {
    let w = self.words.max(1);
    let mut qc = Vec::with_capacity(w);
    sign_code(q, &mut qc);
    let near = nearest_codes(&qc, &self.codes, w, shortlist);
    let mut top = TopK::new(k);
    for (row, _) in near {
      let row = row as usize;
      top.push(
        self.ids[row],
        dot(q, &self.data[row * self.dim..(row + 1) * self.dim]),
      );
    }
    top.into_vec()
  }
}

/// Rows of `codes` (`w` words each) nearest to `qc` in Hamming distance, as (row, −distance).
#[inline(always)]
fn nearest_codes_body(qc: &[u64], codes: &[u64], w: usize, shortlist: usize) -> Vec<(u32, f32)> {
  let mut near = TopK::new(shortlist);
  for (row, code) in codes.chunks_exact(w).enumerate() {
    // Fewer differing bits is better: score = −distance.
    let score = -(hamming(qc, code) as f32);
    if score > near.floor() {
      near.push(row as u32, score);
    }
  }
  near.into_vec()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt,avx2")]
unsafe fn nearest_codes_popcnt(qc: &[u64], codes: &[u64], w: usize, n: usize) -> Vec<(u32, f32)> {
  nearest_codes_body(qc, codes, w, n)
}

fn nearest_codes(qc: &[u64], codes: &[u64], w: usize, shortlist: usize) -> Vec<(u32, f32)> {
  #[cfg(target_arch = "x86_64")]
  {
    if std::arch::is_x86_feature_detected!("popcnt") && std::arch::is_x86_feature_detected!("avx2")
    {
      // SAFETY: the CPU supports the features the function is compiled for.
      return unsafe { nearest_codes_popcnt(qc, codes, w, shortlist) };
    }
  }
  nearest_codes_body(qc, codes, w, shortlist)
}

#[cfg(test)]
mod tests {
  use super::*;

  fn naive(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
  }

  #[test]
  fn dot_matches_a_plain_loop_at_every_length() {
    for n in [0, 1, 7, 15, 16, 17, 33, 384, 1536] {
      let a: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 97) as f32 / 97.0 - 0.5)
        .collect();
      let b: Vec<f32> = (0..n)
        .map(|i| ((i * 104729) % 89) as f32 / 89.0 - 0.5)
        .collect();
      assert!((dot(&a, &b) - naive(&a, &b)).abs() < 1e-4, "n = {n}");
    }
  }

  #[test]
  fn normalize_scales_to_unit_length_and_rejects_zero() {
    let v = normalize(&[3.0, 4.0]).unwrap();
    assert_eq!(v, vec![0.6, 0.8]);
    assert!(normalize(&[0.0, 0.0]).is_none());
    assert!(normalize(&[f32::NAN, 1.0]).is_none());
    assert!(normalize(&[f32::INFINITY, 1.0]).is_none());
  }

  #[test]
  fn flat_finds_the_best_rows_and_survives_removal() {
    let mut f = Flat::new(2);
    f.insert(1, &normalize(&[1.0, 0.0]).unwrap());
    f.insert(2, &normalize(&[1.0, 1.0]).unwrap());
    f.insert(3, &normalize(&[0.0, 1.0]).unwrap());
    let q = normalize(&[1.0, 0.2]).unwrap();
    let got: Vec<u32> = f.search(&q, 2).into_iter().map(|(id, _)| id).collect();
    assert_eq!(got, vec![1, 2]);
    assert!(f.remove(1));
    assert!(!f.remove(1));
    assert_eq!(f.len(), 2);
    assert_eq!(f.search(&q, 1)[0].0, 2);
    assert_eq!(f.vector(3).unwrap(), &[0.0, 1.0]);
    f.insert(3, &[1.0, 0.0]);
    assert_eq!(f.search(&q, 1)[0].0, 3);
  }

  #[test]
  fn top_k_keeps_the_best_in_order() {
    let mut t = TopK::new(3);
    for (id, s) in [(1, 0.1), (2, 0.9), (3, 0.5), (4, 0.7), (5, 0.2)] {
      t.push(id, s);
    }
    assert_eq!(t.into_vec(), vec![(2, 0.9), (4, 0.7), (3, 0.5)]);
  }
}
