//! The meters behind `Guard`: one decision over many limits, all or nothing.
//!
//! A guard limit applied to one scope (a user, an org, a model, an API key…) is a [`Meter`].
//! Every measure a guard knows reduces to one of three kinds:
//!
//! - [`Kind::Window`]: at most `max` units (requests, tokens, nano-dollars) inside any span of
//!   `window_ms` — a sliding window, exact. Each admitted call is an entry `(at, amount)`,
//!   numbered in the order made; entries leave from the front when they leave the window, each
//!   once, so a call costs the same with 20 entries as with 20,000.
//! - [`Kind::Period`]: at most `max` units per calendar period (a UTC day, a month in a time
//!   zone…). The caller names the period (`id`, increasing with time) and when it ends; a new
//!   id starts the count from zero. A clock that goes back never reopens an older period.
//! - [`Kind::Concurrent`]: at most `max` calls in flight.
//!
//! An admitted call holds its estimate on every meter (a *hold*, numbered by the meter).
//! Settling a hold replaces the estimate by the real amount; cancelling it (or its expiry,
//! when the process that made it never settled: it crashed) gives back everything it took —
//! the request, the tokens, the dollars, the slot. A settled amount may exceed the estimate:
//! real usage is always charged, and later calls wait until it leaves the window.
//!
//! [`acquire`] looks at every meter before it touches any: when one refuses, nothing is
//! charged anywhere (expired holds and entries that left the window are still cleared, which
//! changes no answer). The Redis store runs the same steps in
//! `store/redis/scripts/guard.lua`, all meters of a decision in one script.
//!
//! ```
//! use tollgate::engine::guard::{acquire, settle, Kind, Meter, Spec};
//! let rpm = Spec { kind: Kind::Window { max: 2, window_ms: 60_000 }, amount: 1 };
//! let tpm = Spec { kind: Kind::Window { max: 1_000, window_ms: 60_000 }, amount: 600 };
//! let (mut a, mut b) = (Meter::default(), Meter::default());
//! let first = acquire(&mut [&mut a, &mut b], &[rpm, tpm], 0, 600_000);
//! assert!(first.ok);
//! // 600 more tokens would pass 1,000: refused, and the request limit is not charged
//! let second = acquire(&mut [&mut a, &mut b], &[rpm, tpm], 10, 600_000);
//! assert!(!second.ok && second.refused == Some(1));
//! assert_eq!(second.remaining, vec![1, 400]);
//! // the first call used 100 tokens: 900 are left, and the second one now fits
//! assert!(settle(&mut b, &tpm.kind, (first.holds[1], first.expires_at), 100, 20));
//! assert!(acquire(&mut [&mut a, &mut b], &[rpm, tpm], 30, 600_000).ok);
//! ```

use std::collections::{BTreeSet, VecDeque};

use hashbrown::HashMap;

/// How many window entries a refused call's wait walks at most. Past that, the wait is the
/// time the last one walked leaves: a lower bound ("it may fit then"), so the walk never grows
/// with the window.
pub const WAIT_WALK: usize = 64;

/// What a meter limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
  /// At most `max` units inside any span of `window_ms` (sliding).
  Window { max: u64, window_ms: u64 },
  /// At most `max` units in the period `id`, which ends at `end_ms`.
  Period { max: u64, id: u64, end_ms: u64 },
  /// At most `max` holds outstanding.
  Concurrent { max: u64 },
}

impl Kind {
  pub fn max(&self) -> u64 {
    match *self {
      Kind::Window { max, .. } | Kind::Period { max, .. } | Kind::Concurrent { max } => max,
    }
  }
}

/// One meter of a decision and what the call would take from it (ignored by `Concurrent`,
/// which always takes one slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec {
  pub kind: Kind,
  pub amount: u64,
}

impl Spec {
  fn amount(&self) -> u64 {
    match self.kind {
      Kind::Concurrent { .. } => 1,
      _ => self.amount,
    }
  }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Hold {
  expires_at: u64,
  amount: u64,
  /// The period the hold was counted in (`Period` meters; 0 otherwise).
  period: u64,
}

/// One limit's state for one scope.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meter {
  /// `Window`: the entries still in the window, oldest first: `(at, amount)`. The entry at
  /// index `i` is number `next - len + i`.
  entries: VecDeque<(u64, u64)>,
  /// The number the next hold gets.
  next: u64,
  /// Units counted now: the window's sum, the period's, or the holds outstanding.
  total: u64,
  /// `Period`: the period `total` belongs to.
  period: u64,
  holds: HashMap<u64, Hold>,
  /// `(expires_at, number)` of every hold.
  by_expiry: BTreeSet<(u64, u64)>,
}

impl Meter {
  /// Units counted now (after [`Meter::refresh`]).
  pub fn total(&self) -> u64 {
    self.total
  }

  /// Holds outstanding.
  pub fn holds(&self) -> usize {
    self.holds.len()
  }

  /// Nothing is counted or held: the store may drop the meter.
  pub fn is_empty(&self) -> bool {
    self.entries.is_empty() && self.holds.is_empty() && self.total == 0
  }

  /// Until when (ms) the meter must be kept: its newest entry's end, its period's end (while
  /// anything is counted in it), its last hold's expiry.
  pub fn keep_until(&self, kind: &Kind) -> u64 {
    let mut until = self.by_expiry.last().map_or(0, |&(at, _)| at);
    match *kind {
      Kind::Window { window_ms, .. } => {
        if let Some(&(at, _)) = self.entries.back() {
          until = until.max(at.saturating_add(window_ms));
        }
      }
      Kind::Period { end_ms, .. } if self.total > 0 => until = until.max(end_ms),
      _ => {}
    }
    until
  }

  fn front(&self) -> u64 {
    self.next - self.entries.len() as u64
  }

  /// Gives back what a hold took (cancel, expiry).
  fn undo(&mut self, kind: &Kind, number: u64, hold: Hold) {
    self.apply(kind, number, hold, 0);
  }

  /// Replaces a hold's amount by `actual` where it is still counted.
  fn apply(&mut self, kind: &Kind, number: u64, hold: Hold, actual: u64) {
    match kind {
      Kind::Window { .. } => {
        let front = self.front();
        if number >= front {
          if let Some(e) = self.entries.get_mut((number - front) as usize) {
            self.total = self.total - e.1 + actual;
            e.1 = actual;
          }
        }
      }
      // An older period is over: what was counted in it is gone with it.
      Kind::Period { .. } => {
        if hold.period == self.period {
          self.total = self.total - hold.amount + actual;
        }
      }
      Kind::Concurrent { .. } => self.total -= 1,
    }
  }

  /// Expires holds that came due (giving back what they took), drops entries that left the
  /// window and starts a new period. Changes no answer; each hold and entry goes once.
  pub fn refresh(&mut self, kind: &Kind, now: u64) {
    while let Some(&(at, number)) = self.by_expiry.first() {
      if at > now {
        break;
      }
      self.by_expiry.pop_first();
      if let Some(h) = self.holds.remove(&number) {
        self.undo(kind, number, h);
      }
    }
    match *kind {
      Kind::Window { window_ms, .. } => {
        while let Some(&(at, amount)) = self.entries.front() {
          if at.saturating_add(window_ms) > now {
            break;
          }
          self.entries.pop_front();
          self.total -= amount;
        }
      }
      Kind::Period { id, .. } => {
        if id > self.period {
          self.period = id;
          self.total = 0;
        }
      }
      Kind::Concurrent { .. } => {}
    }
  }

  /// Units left under `max` (0 when over).
  pub fn remaining(&self, kind: &Kind) -> u64 {
    kind.max().saturating_sub(self.total)
  }

  fn fits(&self, spec: &Spec) -> bool {
    self
      .total
      .checked_add(spec.amount())
      .is_some_and(|t| t <= spec.kind.max())
  }

  /// Milliseconds until `spec` may fit; `None` when it never can (it asks for more than the
  /// limit, or a concurrency limit of 0).
  fn wait_ms(&self, spec: &Spec, now: u64) -> Option<u64> {
    let amount = spec.amount();
    if amount > spec.kind.max() {
      return None;
    }
    match spec.kind {
      Kind::Window { max, window_ms } => {
        let need = self.total + amount - max;
        let mut freed = 0u64;
        let mut at_last = now;
        for &(at, n) in self.entries.iter().take(WAIT_WALK) {
          freed += n;
          at_last = at;
          if freed >= need {
            break;
          }
        }
        Some(at_last.saturating_add(window_ms).saturating_sub(now).max(1))
      }
      Kind::Period { end_ms, .. } => Some(end_ms.saturating_sub(now).max(1)),
      // A slot frees when a call ends; at the latest when its hold expires.
      Kind::Concurrent { .. } => Some(
        self
          .by_expiry
          .first()
          .map_or(1, |&(at, _)| at.saturating_sub(now).max(1)),
      ),
    }
  }

  /// Counts `spec` as a hold made at `now`, expiring at `expires_at`; returns its number.
  fn hold(&mut self, spec: &Spec, now: u64, expires_at: u64) -> u64 {
    let number = self.next;
    self.next += 1;
    let amount = spec.amount();
    if let Kind::Window { .. } = spec.kind {
      // Entries stay in time order even when callers' clocks disagree a little.
      let at = self.entries.back().map_or(now, |&(last, _)| last.max(now));
      self.entries.push_back((at, amount));
    }
    self.total += amount;
    self.holds.insert(
      number,
      Hold {
        expires_at,
        amount,
        period: self.period,
      },
    );
    self.by_expiry.insert((expires_at, number));
    number
  }

  /// Ends hold `number` (made to expire at `expires_at`) with `actual` units (`None`:
  /// cancelled). False when no such hold is outstanding (settled or cancelled already, or
  /// expired). The expiry is checked too: a meter dropped once empty numbers its holds from 0
  /// again, and a late settle of a hold that expired must not end a newer hold of that number.
  fn end(&mut self, kind: &Kind, number: u64, expires_at: u64, actual: Option<u64>) -> bool {
    if self
      .holds
      .get(&number)
      .is_none_or(|h| h.expires_at != expires_at)
    {
      return false;
    }
    let Some(h) = self.holds.remove(&number) else {
      return false;
    };
    self.by_expiry.remove(&(h.expires_at, number));
    match actual {
      Some(n) => self.apply(kind, number, h, n),
      None => self.undo(kind, number, h),
    }
    true
  }
}

/// The answer to an [`acquire`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acquired {
  /// Every meter admitted the call, and each now holds its share.
  pub ok: bool,
  /// The first meter (in the order given) that refused.
  pub refused: Option<usize>,
  /// When refused: milliseconds until every refusing meter may have room, `None` if one of
  /// them never will.
  pub wait_ms: Option<u64>,
  /// Per meter: units left under its limit after this decision.
  pub remaining: Vec<u64>,
  /// Per meter: the number of the hold made (empty when refused).
  pub holds: Vec<u64>,
  /// When the holds expire unless settled or cancelled (with their numbers, what names them).
  pub expires_at: u64,
}

/// One decision over `meters` (each with its `specs` entry): admitted by all, or nothing is
/// charged. Holds expire `hold_ms` after `now` unless settled or cancelled.
pub fn acquire(meters: &mut [&mut Meter], specs: &[Spec], now: u64, hold_ms: u64) -> Acquired {
  debug_assert_eq!(meters.len(), specs.len());
  let mut refused = None;
  let mut wait: Option<u64> = Some(0);
  for (i, (m, s)) in meters.iter_mut().zip(specs).enumerate() {
    m.refresh(&s.kind, now);
    if !m.fits(s) {
      refused.get_or_insert(i);
      wait = match (wait, m.wait_ms(s, now)) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
      };
    }
  }
  let ok = refused.is_none();
  let expires_at = now.saturating_add(hold_ms);
  let holds = if ok {
    meters
      .iter_mut()
      .zip(specs)
      .map(|(m, s)| m.hold(s, now, expires_at))
      .collect()
  } else {
    Vec::new()
  };
  Acquired {
    ok,
    refused,
    wait_ms: if ok { None } else { wait },
    remaining: meters
      .iter()
      .zip(specs)
      .map(|(m, s)| m.remaining(&s.kind))
      .collect(),
    holds,
    expires_at,
  }
}

/// What is left of each meter, counting nothing.
pub fn peek(meters: &mut [&mut Meter], kinds: &[Kind], now: u64) -> Vec<u64> {
  meters
    .iter_mut()
    .zip(kinds)
    .map(|(m, k)| {
      m.refresh(k, now);
      m.remaining(k)
    })
    .collect()
}

/// Counts what a call admitted elsewhere used, without asking (a call admitted while the store
/// was away, replayed once it answers): a window entry at `at`, the amount of period `kind`'s
/// `id` if that period is still the current one (an ended period is over). Concurrency counts
/// nothing (the call has ended).
pub fn record(meter: &mut Meter, spec: &Spec, at: u64) {
  meter.refresh(&spec.kind, at);
  match spec.kind {
    Kind::Window { .. } => {
      let at = meter.entries.back().map_or(at, |&(last, _)| last.max(at));
      meter.entries.push_back((at, spec.amount));
      meter.next += 1;
      meter.total += spec.amount;
    }
    Kind::Period { id, .. } => {
      if id == meter.period {
        meter.total += spec.amount;
      }
    }
    Kind::Concurrent { .. } => {}
  }
}

/// Settles the hold `(number, expires_at)` of `meter` with the real amount (a `Concurrent` meter frees its
/// slot). False when the hold is no longer outstanding (it expired, or was ended before).
pub fn settle(
  meter: &mut Meter,
  kind: &Kind,
  (number, expires_at): (u64, u64),
  actual: u64,
  now: u64,
) -> bool {
  meter.refresh(kind, now);
  meter.end(kind, number, expires_at, Some(actual))
}

/// Cancels hold `number`: everything it took is given back. False as for [`settle`].
pub fn cancel(meter: &mut Meter, kind: &Kind, (number, expires_at): (u64, u64), now: u64) -> bool {
  meter.refresh(kind, now);
  meter.end(kind, number, expires_at, None)
}

#[cfg(test)]
mod tests;
