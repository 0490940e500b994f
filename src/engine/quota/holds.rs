//! One key's outstanding reservations (holds), each with the number of its hit in the window:
//! found by id, in the order they were made (the order rate-budget's state object shows them,
//! and the order expired ones roll back in), and by time, so that finding the expired ones
//! costs O(log n) however many are outstanding.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use hashbrown::HashMap;

use super::{HitRef, Hold};

/// A time ordered by `f64::total_cmp`, for the expiry index.
#[derive(Clone, Copy, Debug, PartialEq)]
struct At(f64);

impl Eq for At {}
impl PartialOrd for At {
  fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
    Some(self.cmp(other))
  }
}
impl Ord for At {
  fn cmp(&self, other: &Self) -> Ordering {
    self.0.total_cmp(&other.0)
  }
}

#[derive(Clone, Debug, Default)]
pub struct Holds {
  /// id → (hold, its place in the order they were made, its hit's number).
  by_id: HashMap<String, (Hold, u64, HitRef)>,
  /// (at, place) → id.
  by_time: BTreeMap<(At, u64), String>,
  made: u64,
}

impl Holds {
  pub fn len(&self) -> usize {
    self.by_id.len()
  }

  pub fn is_empty(&self) -> bool {
    self.by_id.is_empty()
  }

  /// The hold and its hit's number.
  pub fn get(&self, id: &str) -> Option<(&Hold, HitRef)> {
    self.by_id.get(id).map(|(h, _, hit)| (h, *hit))
  }

  /// Stores `hold`; one with the same id is replaced and keeps its place (as a JavaScript
  /// object keeps a key's position when the key is assigned again).
  pub fn insert(&mut self, hold: Hold, hit: HitRef) {
    let place = match self.by_id.get(&hold.id) {
      Some((old, place, _)) => {
        self.by_time.remove(&(At(old.at), *place));
        *place
      }
      None => {
        self.made += 1;
        self.made
      }
    };
    self.by_time.insert((At(hold.at), place), hold.id.clone());
    self.by_id.insert(hold.id.clone(), (hold, place, hit));
  }

  /// The hold and its hit's number.
  pub fn remove(&mut self, id: &str) -> Option<(Hold, HitRef)> {
    let (hold, place, hit) = self.by_id.remove(id)?;
    self.by_time.remove(&(At(hold.at), place));
    if self.by_id.is_empty() {
      // Usually every hold is committed within a call or two: give the table back.
      self.by_id = HashMap::new();
    }
    Some((hold, hit))
  }

  /// The holds with `at + ttl <= now`, in the order they were made.
  pub fn expired(&self, now: f64, ttl: f64) -> Vec<(Hold, HitRef)> {
    let mut out: Vec<(u64, &Hold, HitRef)> = Vec::new();
    for ((at, place), id) in &self.by_time {
      if at.0.is_nan() {
        continue; // never expires (`NaN + ttl <= now` is false)
      }
      if at.0 + ttl > now {
        break;
      }
      let (hold, _, hit) = &self.by_id[id.as_str()];
      out.push((*place, hold, *hit));
    }
    out.sort_by_key(|(place, _, _)| *place);
    out
      .into_iter()
      .map(|(_, h, hit)| (h.clone(), hit))
      .collect()
  }

  /// Every hold, in the order they were made.
  pub fn list(&self) -> Vec<Hold> {
    let mut all: Vec<&(Hold, u64, HitRef)> = self.by_id.values().collect();
    all.sort_by_key(|(_, place, _)| *place);
    all.into_iter().map(|(h, _, _)| h.clone()).collect()
  }
}
