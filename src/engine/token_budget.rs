//! The token budget behind `TokenBudget`: a fixed period that starts at the bucket's first
//! write, a running total of tokens used, and holds that reserve an estimate before a call.
//!
//! Reserved tokens count against `remaining` until the hold is settled (the real count is
//! added) or released; a hold that is never settled expires at `expires_at` and stops
//! counting. When the period ends the bucket starts again from zero; a hold from an ended
//! period settles into the current one, so a real count is never lost.
//!
//! The Redis store runs the same steps in `store/redis/scripts/budget.lua` over a hash.
//!
//! ```
//! use tollgate::engine::token_budget::{Budget, Limit};
//! let limit = Limit { max: 100, period_ms: 86_400_000, hold_ms: 60_000 };
//! let mut b = Budget::default();
//! let held = b.reserve(limit, 0, 80);
//! assert!(held.allowed && held.hold.is_some());
//! assert!(!b.reserve(limit, 1, 30).allowed); // 80 reserved + 30 > 100
//! b.settle(limit, 2, &held.hold.unwrap().id, 50); // the call used 50, not 80
//! assert_eq!(b.check(limit, 3).remaining, 50);
//! ```

use hashbrown::HashMap;

/// `max` tokens per period of `period_ms`; holds live `hold_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
  pub max: u64,
  pub period_ms: u64,
  pub hold_ms: u64,
}

/// What a call asks of a bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
  Check,
  Record(u64),
  Reserve(u64),
  Settle { id: String, actual: u64 },
  Release { id: String },
}

impl Op {
  /// The one-letter code, the tokens and the hold id the Lua script receives.
  pub fn script_args(&self) -> (&'static str, u64, &str) {
    match self {
      Op::Check => ("c", 0, ""),
      Op::Record(t) => ("r", *t, ""),
      Op::Reserve(t) => ("v", *t, ""),
      Op::Settle { id, actual } => ("s", *actual, id),
      Op::Release { id } => ("l", 0, id),
    }
  }
}

/// One outstanding reservation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
  /// Unique across periods: `<period start>-<sequence>`.
  pub id: String,
  pub tokens: u64,
  pub expires_at: u64,
}

/// A bucket's whole state. `Budget::default()` is a bucket that was never written.
///
/// Every call is O(1) however many holds are outstanding: the holds are found by id, and their
/// total and earliest and latest expiries are kept beside them (the holds are only walked once
/// the earliest may have expired) — the same layout budget.lua keeps in its hash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Budget {
  /// Start of the current period; `None` until the first write.
  pub started_at: Option<u64>,
  pub used: u64,
  holds: HashMap<String, Hold>,
  pub seq: u64,
  reserved: u64,
  /// No live hold expires before this (it may be early: it only triggers a walk).
  earliest: Option<u64>,
  /// No hold expires after this (it may be late: it only keeps the key longer).
  latest: Option<u64>,
}

/// The answer, in the shape of tekimax's `TokenBudgetResult` plus `reserved` and `hold`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
  pub allowed: bool,
  pub used: u64,
  pub reserved: u64,
  pub remaining: u64,
  pub reset_in_seconds: u64,
  pub hold: Option<Hold>,
}

impl Budget {
  /// Tokens held by live holds.
  pub fn reserved(&self) -> u64 {
    self.reserved
  }

  /// Outstanding holds, in no particular order.
  pub fn holds(&self) -> impl Iterator<Item = &Hold> {
    self.holds.values()
  }

  /// When the last hold expires at the latest.
  pub fn holds_end(&self) -> Option<u64> {
    self.latest
  }

  fn drop_hold(&mut self, id: &str) {
    if let Some(h) = self.holds.remove(id) {
      self.reserved = self.reserved.saturating_sub(h.tokens);
    }
  }

  /// `used + reserved`, saturating: the counters never overflow, whatever the amounts.
  fn total(&self) -> u64 {
    self.used.saturating_add(self.reserved())
  }

  /// When the stored state may be dropped: the period's end.
  pub fn expires_at(&self, limit: Limit) -> Option<u64> {
    self.started_at.map(|s| s + limit.period_ms)
  }

  /// Ends a finished period and drops expired holds.
  fn roll(&mut self, limit: Limit, now: u64) {
    if let Some(end) = self.expires_at(limit) {
      if now >= end {
        *self = Budget::default();
      }
    }
    if self.earliest.is_some_and(|e| e <= now) {
      self.holds.retain(|_, h| h.expires_at > now);
      self.reserved = self
        .holds
        .values()
        .fold(0u64, |sum, h| sum.saturating_add(h.tokens));
      self.earliest = self.holds.values().map(|h| h.expires_at).min();
      if self.holds.is_empty() {
        self.latest = None;
      }
    }
  }

  fn start(&mut self, now: u64) {
    if self.started_at.is_none() {
      self.started_at = Some(now);
    }
  }

  fn decision(&self, limit: Limit, now: u64, allowed: bool, hold: Option<Hold>) -> Decision {
    let reserved = self.reserved();
    let reset_ms = match self.expires_at(limit) {
      Some(end) => end.saturating_sub(now).max(1),
      None => limit.period_ms,
    };
    Decision {
      allowed,
      used: self.used,
      reserved,
      remaining: limit.max.saturating_sub(self.used.saturating_add(reserved)),
      reset_in_seconds: reset_ms.div_ceil(1000),
      hold,
    }
  }

  /// Runs `op` at `now`.
  pub fn apply(&mut self, limit: Limit, now: u64, op: &Op) -> Decision {
    match op {
      Op::Check => self.check(limit, now),
      Op::Record(tokens) => self.record(limit, now, *tokens),
      Op::Reserve(estimate) => self.reserve(limit, now, *estimate),
      Op::Settle { id, actual } => self.settle(limit, now, id, *actual),
      Op::Release { id } => self.release(limit, now, id),
    }
  }

  /// Is there room for one more call? Strict, like tekimax: `used + reserved < max`.
  pub fn check(&mut self, limit: Limit, now: u64) -> Decision {
    self.roll(limit, now);
    let allowed = self.total() < limit.max;
    self.decision(limit, now, allowed, None)
  }

  /// Adds tokens a finished call used; always counts. `allowed` tells whether the total
  /// (with reservations) is still within `max`.
  pub fn record(&mut self, limit: Limit, now: u64, tokens: u64) -> Decision {
    self.roll(limit, now);
    self.start(now);
    self.used = self.used.saturating_add(tokens);
    let allowed = self.total() <= limit.max;
    self.decision(limit, now, allowed, None)
  }

  /// Holds `estimate` tokens if they fit; holds nothing when they do not.
  pub fn reserve(&mut self, limit: Limit, now: u64, estimate: u64) -> Decision {
    self.roll(limit, now);
    if self.total().saturating_add(estimate) > limit.max {
      return self.decision(limit, now, false, None);
    }
    self.start(now);
    self.seq += 1;
    let hold = Hold {
      id: format!("{}-{}", self.started_at.unwrap_or(now), self.seq),
      tokens: estimate,
      expires_at: now + limit.hold_ms,
    };
    self.reserved = self.reserved.saturating_add(estimate);
    self.earliest = Some(
      self
        .earliest
        .map_or(hold.expires_at, |e| e.min(hold.expires_at)),
    );
    self.latest = Some(
      self
        .latest
        .map_or(hold.expires_at, |l| l.max(hold.expires_at)),
    );
    self.holds.insert(hold.id.clone(), hold.clone());
    self.decision(limit, now, true, Some(hold))
  }

  /// Replaces hold `id` (if it is still live) by the `actual` tokens used.
  pub fn settle(&mut self, limit: Limit, now: u64, id: &str, actual: u64) -> Decision {
    self.roll(limit, now);
    self.drop_hold(id);
    self.start(now);
    self.used = self.used.saturating_add(actual);
    let allowed = self.total() <= limit.max;
    self.decision(limit, now, allowed, None)
  }

  /// Drops hold `id` without counting anything.
  pub fn release(&mut self, limit: Limit, now: u64, id: &str) -> Decision {
    self.roll(limit, now);
    self.drop_hold(id);
    let allowed = self.total() < limit.max;
    self.decision(limit, now, allowed, None)
  }

  /// True when nothing is stored any more (the key can be dropped).
  pub fn is_empty(&self) -> bool {
    self.started_at.is_none() && self.holds.is_empty()
  }

  /// Until when the state must be kept: the period's end or the last hold's expiry, whichever
  /// is later; `None` once it holds nothing.
  pub fn keep_until(&self, limit: Limit) -> Option<u64> {
    if self.is_empty() {
      return None;
    }
    self.expires_at(limit).max(self.holds_end())
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  const L: Limit = Limit {
    max: 100,
    period_ms: 10_000,
    hold_ms: 1_000,
  };

  #[test]
  fn tekimax_record_sequence() {
    // tekimax's documented TokenBudget example: record 60, 40, check, record 5.
    let mut b = Budget::default();
    let d = b.record(L, 0, 60);
    assert_eq!(
      (d.allowed, d.used, d.remaining, d.reset_in_seconds),
      (true, 60, 40, 10)
    );
    let d = b.record(L, 1, 40);
    assert_eq!((d.allowed, d.used, d.remaining), (true, 100, 0));
    assert!(!b.check(L, 2).allowed);
    let d = b.record(L, 3, 5);
    assert_eq!((d.allowed, d.used, d.remaining), (false, 105, 0));
  }

  #[test]
  fn check_on_a_fresh_bucket_reports_the_whole_period() {
    let d = Budget::default().check(L, 123);
    assert_eq!(
      (d.allowed, d.used, d.remaining, d.reset_in_seconds),
      (true, 0, 100, 10)
    );
  }

  #[test]
  fn reservations_count_until_settled_or_released() {
    let mut b = Budget::default();
    let h1 = b.reserve(L, 0, 60).hold.unwrap();
    assert_eq!(h1.id, "0-1");
    let d = b.reserve(L, 0, 50);
    assert!(!d.allowed && d.hold.is_none());
    assert_eq!((d.reserved, d.remaining), (60, 40));
    let h2 = b.reserve(L, 0, 40).hold.unwrap();
    assert_eq!(b.check(L, 0).remaining, 0);
    let d = b.settle(L, 10, &h1.id, 10);
    assert_eq!((d.used, d.reserved, d.remaining), (10, 40, 50));
    let d = b.release(L, 10, &h2.id);
    assert_eq!((d.used, d.reserved, d.remaining), (10, 0, 90));
    // Settling the same hold twice still counts the real tokens, but the hold is gone.
    let d = b.settle(L, 10, &h1.id, 5);
    assert_eq!((d.used, d.reserved), (15, 0));
  }

  #[test]
  fn holds_expire() {
    let mut b = Budget::default();
    b.reserve(L, 0, 100);
    assert!(!b.check(L, 999).allowed);
    let d = b.check(L, 1_000);
    assert_eq!((d.allowed, d.reserved), (true, 0));
  }

  #[test]
  fn period_ends_and_old_holds_settle_into_the_new_one() {
    let mut b = Budget::default();
    let h = b
      .reserve(
        Limit {
          hold_ms: 60_000,
          ..L
        },
        0,
        30,
      )
      .hold
      .unwrap();
    b.record(L, 5, 50);
    let d = b.check(L, 10_000);
    assert_eq!((d.used, d.reserved, d.reset_in_seconds), (0, 0, 10));
    let d = b.settle(L, 12_000, &h.id, 7);
    assert_eq!((d.used, d.reset_in_seconds), (7, 10));
    assert_eq!(b.started_at, Some(12_000));
    // New holds never reuse an old id.
    let h2 = b.reserve(L, 12_000, 1).hold.unwrap();
    assert_eq!(h2.id, "12000-1");
  }
}
