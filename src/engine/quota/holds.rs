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

/// Up to this many holds, the expired ones are found by a scan (no time index is kept).
const SCAN: usize = 8;

/// A stored hold, its place in the order holds were made and its hit's number. The hold's
/// `scope` and `key` are not stored (they are the scope's and the key's): `list` fills them in.
type Entry = Box<(Hold, u64, HitRef)>;

#[derive(Clone, Debug, Default)]
pub struct Holds {
  by_id: HashMap<String, Entry>,
  /// (at, place) → id, kept while more than `SCAN` holds are outstanding.
  by_time: Option<BTreeMap<(At, u64), String>>,
  made: u64,
}

impl Holds {
  pub fn len(&self) -> usize {
    self.by_id.len()
  }

  pub fn is_empty(&self) -> bool {
    self.by_id.is_empty()
  }

  /// The hold (without its scope and key) and its hit's number.
  pub fn get(&self, id: &str) -> Option<(&Hold, HitRef)> {
    self.by_id.get(id).map(|e| (&e.0, e.2))
  }

  /// Stores `hold`; one with the same id is replaced and keeps its place (as a JavaScript
  /// object keeps a key's position when the key is assigned again).
  pub fn insert(&mut self, hold: &Hold, hit: HitRef) {
    let place = match self.by_id.get(&hold.id) {
      Some(old) => {
        if let Some(t) = &mut self.by_time {
          t.remove(&(At(old.0.at), old.1));
        }
        old.1
      }
      None => {
        self.made += 1;
        self.made
      }
    };
    let stored = Hold {
      id: hold.id.clone(),
      scope: String::new(),
      key: String::new(),
      tokens: hold.tokens,
      at: hold.at,
      day: hold.day.clone(),
      prev_at: hold.prev_at,
      prev_id: hold.prev_id.clone(),
    };
    self
      .by_id
      .insert(hold.id.clone(), Box::new((stored, place, hit)));
    if let Some(t) = &mut self.by_time {
      t.insert((At(hold.at), place), hold.id.clone());
    } else if self.by_id.len() > SCAN {
      let index = self
        .by_id
        .iter()
        .map(|(id, e)| ((At(e.0.at), e.1), id.clone()))
        .collect();
      self.by_time = Some(index);
    }
  }

  /// The hold (without its scope and key) and its hit's number.
  pub fn remove(&mut self, id: &str) -> Option<(Hold, HitRef)> {
    let e = self.by_id.remove(id)?;
    let (hold, place, hit) = *e;
    if let Some(t) = &mut self.by_time {
      t.remove(&(At(hold.at), place));
    }
    if self.by_id.is_empty() {
      // Usually every hold is committed within a call or two: give the tables back.
      self.by_id = HashMap::new();
      self.by_time = None;
    }
    Some((hold, hit))
  }

  /// The holds with `at + ttl <= now` (without their scope and key), in the order they were
  /// made.
  pub fn expired(&self, now: f64, ttl: f64) -> Vec<(Hold, HitRef)> {
    // `NaN + ttl <= now` is false: a hold at NaN never expires.
    let mut out: Vec<&(Hold, u64, HitRef)> = match &self.by_time {
      None => self
        .by_id
        .values()
        .map(|e| &**e)
        .filter(|e| e.0.at + ttl <= now)
        .collect(),
      Some(t) => t
        .iter()
        .filter(|((at, _), _)| !at.0.is_nan())
        .take_while(|((at, _), _)| at.0 + ttl <= now)
        .map(|(_, id)| &*self.by_id[id.as_str()])
        .collect(),
    };
    out.sort_by_key(|e| e.1);
    out.into_iter().map(|e| (e.0.clone(), e.2)).collect()
  }

  /// Every hold of key `key` of `scope`, in the order they were made.
  pub fn list(&self, scope: &str, key: &str) -> Vec<Hold> {
    let mut all: Vec<&(Hold, u64, HitRef)> = self.by_id.values().map(|e| &**e).collect();
    all.sort_by_key(|e| e.1);
    all
      .into_iter()
      .map(|e| Hold {
        scope: scope.to_owned(),
        key: key.to_owned(),
        ..e.0.clone()
      })
      .collect()
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn hold(id: &str, at: f64) -> Hold {
    Hold {
      id: id.into(),
      scope: "s".into(),
      key: "k".into(),
      tokens: 1.0,
      at,
      day: "d".into(),
      prev_at: None,
      prev_id: None,
    }
  }

  #[test]
  fn expiry_is_the_same_with_and_without_the_time_index() {
    // Times out of order (a clock that went back), a replaced id keeping its place; the index
    // appears past SCAN holds and goes when the last one settles.
    let times = [
      50.0, 10.0, 30.0, 10.0, 70.0, 20.0, 60.0, 40.0, 5.0, 80.0, 15.0, 25.0,
    ];
    let mut holds = Holds::default();
    for (i, &at) in times.iter().enumerate() {
      holds.insert(&hold(&format!("h{i}"), at), HitRef::NONE);
      let expect: Vec<String> = (0..=i)
        .filter(|&j| times[j] + 10.0 <= 40.0)
        .map(|j| format!("h{j}"))
        .collect();
      let got: Vec<String> = holds
        .expired(40.0, 10.0)
        .into_iter()
        .map(|(h, _)| h.id)
        .collect();
      assert_eq!(got, expect, "after {} holds", i + 1);
      assert_eq!(holds.by_time.is_some(), i + 1 > SCAN);
    }
    holds.insert(&hold("h1", 100.0), HitRef::NONE);
    let got: Vec<String> = holds
      .expired(40.0, 10.0)
      .into_iter()
      .map(|(h, _)| h.id)
      .collect();
    assert_eq!(got, ["h2", "h3", "h5", "h8", "h10", "h11"]);
    assert_eq!(
      holds.list("s", "k")[1].id,
      "h1",
      "a replaced hold keeps its place"
    );
    for i in 0..times.len() {
      assert!(holds.remove(&format!("h{i}")).is_some());
    }
    assert!(holds.by_time.is_none() && holds.is_empty());
  }
}
