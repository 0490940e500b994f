//! One key's outstanding reservations (holds): found by id, in the order they were made (the
//! order rate-budget's state object shows them, and the order expired ones roll back in), and
//! by time, so that finding the expired ones costs O(log n) however many are outstanding.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use hashbrown::HashMap;

use super::Hold;

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
  /// id → (hold, its place in the order they were made).
  by_id: HashMap<String, (Hold, u64)>,
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

  pub fn get(&self, id: &str) -> Option<&Hold> {
    self.by_id.get(id).map(|(h, _)| h)
  }

  /// Stores `hold`; one with the same id is replaced and keeps its place (as a JavaScript
  /// object keeps a key's position when the key is assigned again).
  pub fn insert(&mut self, hold: Hold) {
    let place = match self.by_id.get(&hold.id) {
      Some((old, place)) => {
        self.by_time.remove(&(At(old.at), *place));
        *place
      }
      None => {
        self.made += 1;
        self.made
      }
    };
    self.by_time.insert((At(hold.at), place), hold.id.clone());
    self.by_id.insert(hold.id.clone(), (hold, place));
  }

  pub fn remove(&mut self, id: &str) -> Option<Hold> {
    let (hold, place) = self.by_id.remove(id)?;
    self.by_time.remove(&(At(hold.at), place));
    Some(hold)
  }

  /// The holds with `at + ttl <= now`, in the order they were made.
  pub fn expired(&self, now: f64, ttl: f64) -> Vec<Hold> {
    let mut out: Vec<(u64, &Hold)> = Vec::new();
    for ((at, place), id) in &self.by_time {
      if at.0.is_nan() {
        continue; // never expires (`NaN + ttl <= now` is false)
      }
      if at.0 + ttl > now {
        break;
      }
      out.push((*place, &self.by_id[id.as_str()].0));
    }
    out.sort_by_key(|(place, _)| *place);
    out.into_iter().map(|(_, h)| h.clone()).collect()
  }

  /// Every hold, in the order they were made.
  pub fn list(&self) -> Vec<Hold> {
    let mut all: Vec<&(Hold, u64)> = self.by_id.values().collect();
    all.sort_by_key(|(_, place)| *place);
    all.into_iter().map(|(h, _)| h.clone()).collect()
  }
}
