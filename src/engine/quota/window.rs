//! One key's TPM window: the token reservations ("hits") of the last `windowMs`, in time order,
//! kept so that every operation costs the same with 20 hits as with 20,000.
//!
//! - Hits are numbered (`seq`) in the order they are made; their times never go down within a
//!   key (a reservation is made at "now", after the hits later than now were dropped), so the
//!   window is a contiguous run of numbers `front..next`: expired hits leave from the front,
//!   hits "in the future" (a clock that went back) from the back, each once.
//! - The running totals of the window's tokens and requests are kept, and so are partial sums
//!   of both per block of 32, 1,024 and 32,768 consecutive hits. "How long until `need` tokens
//!   (or requests) leave the window" (the wait of a refused request) walks those sums from the
//!   oldest hit down to one hit: at most a few dozen steps, never the whole window.
//! - A hold knows its hit ([`HitRef`]: the hit's number, and a serial that is never reused even
//!   where a number is, after hits "in the future" left), so a commit or a rollback touches
//!   that hit alone.
//! - rate-budget drops a hit whose tokens are 0 at the first check after they became 0. Such a
//!   hit changes no sum, so it is only marked with the check count (`epoch`) at which it became
//!   0, and treated as gone once a later check has run.
//!
//! Redis keeps the same structure in hashes (store/redis/scripts/quota.lua).

use std::collections::VecDeque;

/// log2 of the block sizes the partial sums are kept for (32, 1,024, 32,768 hits).
pub const LEVEL_SHIFTS: [u32; 3] = [5, 10, 15];

/// What a sum counts: tokens (TPM) or requests (RPM as a sliding window). A request counts
/// until it leaves the window or is rolled back, whatever its tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
  Tokens = 0,
  Requests = 1,
}

/// A token reservation inside the window, as rate-budget stores it.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
  pub id: String,
  pub at: f64,
  pub tokens: f64,
}

/// A hold's hit: its number in the window and its serial (the number alone can be reused once
/// a hit in the future left from the back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HitRef {
  pub seq: u64,
  pub serial: u64,
}

impl HitRef {
  /// For a hold whose hit is not in the window.
  pub const NONE: HitRef = HitRef {
    seq: u64::MAX,
    serial: u64::MAX,
  };
}

/// `zero_at` of a hit whose tokens are not 0.
const NONE: u64 = u64::MAX;
/// `zero_at` of a hit removed by a rollback (it stays in place until it leaves the window).
const REMOVED: u64 = u64::MAX - 1;

#[derive(Clone, Debug)]
struct Slot {
  /// The hold's id (shown in rate-budget's state).
  id: Box<str>,
  at: f64,
  /// As stored (rate-budget keeps the raw value; sums use `counted`).
  tokens: f64,
  /// The check count at which `tokens` became 0 (the hit is gone after a later check), or
  /// `NONE`, or `REMOVED`.
  zero_at: u64,
  serial: u64,
}

/// What a hit adds to the requests: 1 until it is rolled back.
fn requests(s: &Slot) -> f64 {
  if s.zero_at == REMOVED {
    0.0
  } else {
    1.0
  }
}

/// What a hit adds to the sums: its tokens floored, at least 0, non-finite as 0
/// (rate-budget's `nonNeg(hit.tokens)`).
pub fn counted(tokens: f64) -> f64 {
  if tokens.is_finite() {
    tokens.floor().max(0.0)
  } else {
    0.0
  }
}

#[derive(Clone, Debug, Default)]
pub struct TokenWindow {
  /// `seq` of `slots[0]`.
  front: u64,
  slots: VecDeque<Slot>,
  /// Per level, the sums (tokens, requests) of blocks `sums_front[l]..`, oldest first.
  sums: [VecDeque<[f64; 2]>; 3],
  sums_front: [u64; 3],
  total: [f64; 2],
  /// Checks run on this key so far.
  epoch: u64,
  /// Hits made so far (the next serial).
  made: u64,
}

impl TokenWindow {
  /// The tokens the window holds (rate-budget's `tokenUsed` after pruning).
  pub fn total(&self) -> f64 {
    self.total[0]
  }

  /// The requests the window holds (those rolled back excepted).
  pub fn requests(&self) -> f64 {
    self.total[1]
  }

  /// Hits kept (removed and spent ones included until they leave): what the memory grows with.
  pub fn len(&self) -> usize {
    self.slots.len()
  }

  pub fn is_empty(&self) -> bool {
    self.slots.is_empty()
  }

  fn next(&self) -> u64 {
    self.front + self.slots.len() as u64
  }

  fn slot(&self, seq: u64) -> Option<&Slot> {
    let i = seq.checked_sub(self.front)?;
    self.slots.get(i as usize)
  }

  /// The slot of a hold's hit while it is there (not left, not rolled back).
  fn held(&self, hit: HitRef) -> Option<&Slot> {
    self
      .slot(hit.seq)
      .filter(|s| s.serial == hit.serial && s.zero_at != REMOVED)
  }

  fn live(&self, s: &Slot) -> bool {
    s.zero_at == NONE || (s.zero_at != REMOVED && self.epoch <= s.zero_at)
  }

  /// Adds `delta` (tokens, requests) to the totals and to the sums of every block holding `seq`.
  fn add(&mut self, seq: u64, delta: [f64; 2]) {
    if delta == [0.0; 2] {
      return;
    }
    self.total[0] += delta[0];
    self.total[1] += delta[1];
    for (l, shift) in LEVEL_SHIFTS.iter().enumerate() {
      let block = seq >> shift;
      let sums = &mut self.sums[l];
      if sums.is_empty() {
        self.sums_front[l] = block;
      }
      let i = (block - self.sums_front[l]) as usize;
      while sums.len() <= i {
        sums.push_back([0.0; 2]);
      }
      sums[i][0] += delta[0];
      sums[i][1] += delta[1];
    }
  }

  /// Starts a check: hits whose tokens were 0 before it are gone from now on.
  pub fn begin_check(&mut self) {
    self.epoch += 1;
  }

  /// Keeps only the hits with `now - window <= at <= now` (rate-budget's prune; zero-token
  /// hits are handled by `begin_check`). Each hit leaves once: amortised O(1).
  pub fn prune(&mut self, now: f64, window_ms: f64) {
    while let Some(s) = self.slots.front() {
      if now - window_ms <= s.at {
        break;
      }
      let s = self.slots.pop_front().expect("looked at above");
      self.add(self.front, [-counted(s.tokens), -requests(&s)]);
      self.front += 1;
    }
    while let Some(s) = self.slots.back() {
      if s.at <= now {
        break;
      }
      let s = self.slots.pop_back().expect("looked at above");
      self.add(self.next(), [-counted(s.tokens), -requests(&s)]);
    }
    if self.slots.is_empty() {
      // Nothing left: the sums are all 0; keep the numbering (holds refer to it).
      self.sums = Default::default();
      self.total = [0.0; 2];
    } else {
      for (l, shift) in LEVEL_SHIFTS.iter().enumerate() {
        let first = self.front >> shift;
        while self.sums_front[l] < first && !self.sums[l].is_empty() {
          self.sums[l].pop_front();
          self.sums_front[l] += 1;
        }
      }
    }
  }

  /// Appends a hit at `at` (never before the newest one).
  pub fn push(&mut self, id: &str, at: f64, tokens: f64) -> HitRef {
    let hit = HitRef {
      seq: self.next(),
      serial: self.made,
    };
    self.made += 1;
    let zero_at = if counted(tokens) == 0.0 {
      self.epoch
    } else {
      NONE
    };
    self.slots.push_back(Slot {
      id: id.into(),
      at,
      tokens,
      zero_at,
      serial: hit.serial,
    });
    self.add(hit.seq, [counted(tokens), 1.0]);
    hit
  }

  /// A hold's hit takes `tokens` (a commit); no change when it has left.
  pub fn set_tokens(&mut self, hit: HitRef, tokens: f64) {
    let epoch = self.epoch;
    // A hit of 0 tokens is gone from the TPM window after a check (rate-budget drops it).
    let Some(s) = self.held(hit).filter(|s| self.live(s)) else {
      return;
    };
    let old = counted(s.tokens);
    let seq = hit.seq;
    let i = (seq - self.front) as usize;
    let s = &mut self.slots[i];
    s.tokens = tokens;
    if counted(tokens) != 0.0 {
      s.zero_at = NONE;
    } else if s.zero_at == NONE {
      s.zero_at = epoch;
    }
    self.add(seq, [counted(tokens) - old, 0.0]);
  }

  /// Removes a hold's hit (a rollback); no change when it has left.
  pub fn remove(&mut self, hit: HitRef) {
    let Some(s) = self.held(hit) else {
      return;
    };
    let old = counted(s.tokens);
    let seq = hit.seq;
    let i = (seq - self.front) as usize;
    let s = &mut self.slots[i];
    s.tokens = 0.0;
    s.zero_at = REMOVED;
    self.add(seq, [-old, -1.0]);
  }

  /// rate-budget's `tokenWaitMs` inside the Quota: 0 when `amount` more (tokens, or one
  /// request) fit under `limit` now, `None` when they never can, else how long until the
  /// oldest hits that must leave have left (`window - (now - at) + buffer`), for each buffer
  /// given.
  pub fn wait_ms(
    &self,
    lane: Lane,
    amount: f64,
    limit: f64,
    now: f64,
    window_ms: f64,
    buffers: [f64; 2],
  ) -> Option<[f64; 2]> {
    if amount > limit {
      return None;
    }
    let total = self.total[lane as usize];
    if total + amount <= limit {
      return Some([0.0; 2]);
    }
    let need = total + amount - limit;
    Some(match self.first_reaching(lane, need) {
      Some(at) => buffers.map(|b| (window_ms - (now - at) + b).max(0.0)),
      None => buffers.map(|b| window_ms + b),
    })
  }

  /// The time of the first hit at which the sum from the oldest hit on reaches `need`.
  fn first_reaching(&self, lane: Lane, need: f64) -> Option<f64> {
    if self.slots.is_empty() {
      return None;
    }
    let mut acc = 0.0;
    // Blocks of the coarsest level first, then down one level inside the block that reaches.
    let (mut lo, mut hi) = (self.front, self.next());
    for l in (0..LEVEL_SHIFTS.len()).rev() {
      let shift = LEVEL_SHIFTS[l];
      let mut block = lo >> shift;
      let last = (hi - 1) >> shift;
      loop {
        let v = self.block_sum(l, block)[lane as usize];
        if acc + v >= need || block >= last {
          break;
        }
        acc += v;
        block += 1;
      }
      lo = lo.max(block << shift);
      hi = hi.min((block + 1) << shift);
    }
    for seq in lo..hi {
      let s = self.slot(seq)?;
      acc += match lane {
        Lane::Tokens => counted(s.tokens),
        Lane::Requests => requests(s),
      };
      if acc >= need {
        return Some(s.at);
      }
    }
    None
  }

  fn block_sum(&self, l: usize, block: u64) -> [f64; 2] {
    block
      .checked_sub(self.sums_front[l])
      .and_then(|i| self.sums[l].get(i as usize))
      .copied()
      .unwrap_or([0.0; 2])
  }

  /// The hits still there, oldest first, as rate-budget's state shows them.
  pub fn hits(&self) -> Vec<Hit> {
    self
      .slots
      .iter()
      .filter(|s| self.live(s))
      .map(|s| Hit {
        id: s.id.to_string(),
        at: s.at,
        tokens: s.tokens,
      })
      .collect()
  }

  /// A window holding `hits` (a state written by a user's store or `MemoryStore.set`), sorted
  /// by time, those with a time that is not a finite number dropped; with the number of each
  /// kept hit, in that order.
  pub fn from_hits(mut hits: Vec<Hit>) -> (Self, Vec<(Hit, HitRef)>) {
    hits.retain(|h| h.at.is_finite());
    hits.sort_by(|a, b| a.at.total_cmp(&b.at));
    let mut w = TokenWindow::default();
    let numbered = hits
      .into_iter()
      .map(|h| {
        let hit = w.push(&h.id, h.at, h.tokens);
        (h, hit)
      })
      .collect();
    (w, numbered)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn window(tokens: &[(f64, f64)]) -> TokenWindow {
    let mut w = TokenWindow::default();
    for (i, &(at, t)) in tokens.iter().enumerate() {
      w.push(&format!("h{i}"), at, t);
    }
    w
  }

  #[test]
  fn the_wait_is_found_through_the_block_sums_as_by_a_walk() {
    // 100,000 hits of 1..=7 tokens a millisecond apart; every need answered as a plain walk.
    let hits: Vec<(f64, f64)> = (0..100_000)
      .map(|i| (i as f64, (i % 7 + 1) as f64))
      .collect();
    let w = window(&hits);
    let mut acc = 0.0;
    let mut walk = Vec::new();
    for &(at, t) in &hits {
      acc += t;
      walk.push((acc, at));
    }
    for need in [
      1.0, 2.0, 31.0, 32.0, 33.0, 4_000.0, 131_071.0, 399_999.0, acc,
    ] {
      let expect = walk.iter().find(|(a, _)| *a >= need).map(|&(_, at)| at);
      assert_eq!(w.first_reaching(Lane::Tokens, need), expect, "need {need}");
    }
    assert_eq!(w.first_reaching(Lane::Tokens, acc + 1.0), None);
    assert_eq!(w.first_reaching(Lane::Requests, 77_777.0), Some(77_776.0));
  }

  #[test]
  fn sums_follow_prunes_commits_and_rollbacks() {
    let mut w = TokenWindow::default();
    let hits: Vec<HitRef> = [(0.0, 10.0), (1.0, 20.0), (2.0, 30.0)]
      .iter()
      .map(|&(at, t)| w.push("h", at, t))
      .collect();
    w.set_tokens(hits[1], 5.0);
    assert_eq!(w.total(), 45.0);
    w.remove(hits[2]);
    assert_eq!(w.total(), 15.0);
    w.prune(60_000.5, 60_000.0);
    assert_eq!((w.total(), w.hits().len()), (5.0, 1));
    assert_eq!(w.first_reaching(Lane::Tokens, 5.0), Some(1.0));
    assert_eq!(w.requests(), 1.0);
    w.prune(70_000.0, 60_000.0);
    assert!(w.is_empty());
    assert_eq!(w.push("h", 70_000.0, 1.0).seq, 3, "numbers go on");
  }

  #[test]
  fn a_number_freed_by_a_hit_in_the_future_is_not_the_old_holds() {
    let mut w = TokenWindow::default();
    let future = w.push("a", 1_000.0, 10.0);
    w.prune(999.0, 60_000.0); // the clock went back: the hit at 1,000 leaves
    let now = w.push("b", 999.0, 20.0);
    assert_eq!(now.seq, future.seq);
    w.set_tokens(future, 0.0);
    w.remove(future);
    assert_eq!(
      w.total(),
      20.0,
      "the old hold's commit and rollback touch nothing"
    );
  }

  #[test]
  fn a_zero_hit_is_gone_after_the_next_check() {
    let mut w = TokenWindow::default();
    let hit = w.push("h", 0.0, 0.0);
    assert_eq!(w.hits().len(), 1);
    w.begin_check();
    assert_eq!(w.hits().len(), 0);
    w.set_tokens(hit, 50.0);
    assert_eq!(w.total(), 0.0, "a gone hit is not committed");
  }
}
