//! Sliding windows, the `windows: 'sliding'` option of createLLMRateLimiter: the limits hold
//! over every trailing minute and every trailing 24 hours, not per calendar minute and day.
//!
//! Usage is kept in buckets (1 s for the minute, 10 min for the day). A bucket that starts at
//! `b` counts until `b + bucket + span`, so each use counts for at least the whole span and at
//! most one bucket longer: conservative, never over a limit in any true trailing window. The
//! state is bounded (≤ 61 + 145 buckets). jobs.lua keeps the same buckets as hash fields.

use std::collections::VecDeque;

use super::{fits, Denied, Limits, Usage, DAY_MS, MINUTE_MS};

pub const MINUTE_BUCKET_MS: u64 = 1_000;
pub const DAY_BUCKET_MS: u64 = 600_000;

/// One trailing window's buckets: `(bucket start, tokens, requests)`, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Buckets {
  pub bucket_ms: u64,
  pub span_ms: u64,
  pub list: VecDeque<(u64, u64, u64)>,
}

impl Buckets {
  pub fn new(bucket_ms: u64, span_ms: u64) -> Self {
    Buckets {
      bucket_ms,
      span_ms,
      list: VecDeque::new(),
    }
  }

  fn live_until(&self, start: u64) -> u64 {
    start + self.bucket_ms + self.span_ms
  }

  pub fn prune(&mut self, now: u64) {
    while self
      .list
      .front()
      .is_some_and(|b| self.live_until(b.0) <= now)
    {
      self.list.pop_front();
    }
  }

  /// The buckets still counting at `now`, oldest first, without dropping the others (looking
  /// must not change what a later call, whose clock may read earlier, decides).
  pub fn live_at(&self, now: u64) -> impl Iterator<Item = &(u64, u64, u64)> {
    self.list.iter().filter(move |b| self.live_until(b.0) > now)
  }

  /// When the oldest bucket still counting at `now` stops counting, in ms from `now`; the
  /// span when none counts.
  pub fn drops_in(&self, now: u64) -> u64 {
    self
      .live_at(now)
      .next()
      .map_or(self.span_ms, |b| self.live_until(b.0) - now)
  }

  /// Totals of the buckets still counting at `now`.
  pub fn totals_at(&self, now: u64) -> Usage {
    self.live_at(now).fold(Usage::default(), |u, b| Usage {
      tokens: u.tokens + b.1,
      requests: u.requests + b.2,
    })
  }

  pub fn totals(&self) -> Usage {
    self.list.iter().fold(Usage::default(), |u, b| Usage {
      tokens: u.tokens + b.1,
      requests: u.requests + b.2,
    })
  }

  /// Adds to the bucket of `at`. Buckets stay ordered by start: a call whose clock reads
  /// earlier than the newest bucket gets the bucket of its own time, as jobs.lua keeps one
  /// field per bucket start — so the job's settle finds it and gives the unused estimate back.
  fn add(&mut self, at: u64, u: Usage) {
    let start = at - at % self.bucket_ms;
    let i = self.list.partition_point(|b| b.0 < start);
    match self.list.get_mut(i) {
      Some(b) if b.0 == start => {
        b.1 += u.tokens;
        b.2 += u.requests;
      }
      _ => self.list.insert(i, (start, u.tokens, u.requests)),
    }
  }

  /// When enough of the oldest usage has left the window for `need` more to fit `limit`
  /// (`pick` chooses tokens or requests).
  fn free_at(&self, limit: u64, need: u64, pick: fn(&(u64, u64, u64)) -> u64) -> u64 {
    let mut total: u64 = self.list.iter().map(pick).sum();
    for b in &self.list {
      if fits(total, need, limit) {
        break;
      }
      total -= pick(b);
      if fits(total, need, limit) {
        return self.live_until(b.0);
      }
    }
    self.list.back().map_or(0, |b| self.live_until(b.0))
  }

  /// Settles a job reserved at `reserved_at`: refund or overage in its bucket while that bucket
  /// still counts; otherwise only the overage, now.
  fn settle(&mut self, now: u64, reserved_at: u64, est: Usage, actual: Usage) {
    let start = reserved_at - reserved_at % self.bucket_ms;
    if let Some(b) = self.list.iter_mut().find(|b| b.0 == start) {
      b.1 = (b.1 + actual.tokens).saturating_sub(est.tokens);
      b.2 = (b.2 + actual.requests).saturating_sub(est.requests);
    } else {
      let over = Usage {
        tokens: actual.tokens.saturating_sub(est.tokens),
        requests: actual.requests.saturating_sub(est.requests),
      };
      if over != Usage::default() {
        self.add(now, over);
      }
    }
  }
}

/// A model's counts under sliding windows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlidingState {
  pub minute: Buckets,
  pub day: Buckets,
  pub in_flight: u64,
}

impl Default for SlidingState {
  fn default() -> Self {
    SlidingState {
      minute: Buckets::new(MINUTE_BUCKET_MS, MINUTE_MS),
      day: Buckets::new(DAY_BUCKET_MS, DAY_MS),
      in_flight: 0,
    }
  }
}

fn tokens(b: &(u64, u64, u64)) -> u64 {
  b.1
}
fn requests(b: &(u64, u64, u64)) -> u64 {
  b.2
}

impl SlidingState {
  pub fn prune(&mut self, now: u64) {
    self.minute.prune(now);
    self.day.prune(now);
  }

  /// Reserves `est`; the grant is the reservation time.
  pub fn reserve(&mut self, l: Limits, now: u64, est: Usage) -> Result<u64, Denied> {
    self.prune(now);
    if l.never_fits(est) {
      return Err(Denied::Never);
    }
    let (m, d) = (self.minute.totals(), self.day.totals());
    let mut at = 0;
    if !fits(d.tokens, est.tokens, l.tpd) {
      at = at.max(self.day.free_at(l.tpd, est.tokens, tokens));
    }
    if !fits(d.requests, est.requests, l.rpd) {
      at = at.max(self.day.free_at(l.rpd, est.requests, requests));
    }
    if !fits(m.tokens, est.tokens, l.tpm) {
      at = at.max(self.minute.free_at(l.tpm, est.tokens, tokens));
    }
    if !fits(m.requests, est.requests, l.rpm) {
      at = at.max(self.minute.free_at(l.rpm, est.requests, requests));
    }
    if at > 0 {
      return Err(Denied::Until {
        at: at.max(now + 1),
      });
    }
    if l.concurrency > 0 && self.in_flight >= l.concurrency {
      return Err(Denied::Concurrency);
    }
    self.minute.add(now, est);
    self.day.add(now, est);
    self.in_flight += 1;
    Ok(now)
  }

  pub fn settle(&mut self, now: u64, grant: u64, est: Usage, actual: Usage, release: bool) {
    self.prune(now);
    self.minute.settle(now, grant, est, actual);
    self.day.settle(now, grant, est, actual);
    if release {
      self.in_flight = self.in_flight.saturating_sub(1);
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  const T0: u64 = 1_700_000_040_000;

  #[test]
  fn a_reservation_with_an_earlier_clock_is_refunded_in_its_own_bucket() {
    // As jobs.lua: the bucket of the reservation's time, so the settle gives back the unused
    // estimate (merged into the newest bucket, the refund was lost).
    let l = Limits {
      tpm: 1_000,
      ..Limits::default()
    };
    let mut s = SlidingState::default();
    let est = Usage {
      tokens: 500,
      requests: 1,
    };
    let used = Usage {
      tokens: 100,
      requests: 1,
    };
    assert_eq!(s.reserve(l, T0 + 60_000, est), Ok(T0 + 60_000));
    assert_eq!(s.reserve(l, T0, est), Ok(T0));
    let starts: Vec<u64> = s.minute.list.iter().map(|b| b.0).collect();
    assert_eq!(starts, vec![T0, T0 + 60_000]);
    s.settle(T0 + 1, T0, est, used, true);
    assert_eq!(s.minute.totals().tokens, 600);
    // The earlier bucket leaves the window first.
    assert_eq!(s.minute.totals_at(T0 + 61_000).tokens, 500);
  }

  #[test]
  fn the_limit_holds_over_every_trailing_minute() {
    let l = Limits {
      rpm: 3,
      ..Limits::default()
    };
    let mut s = SlidingState::default();
    let one = Usage {
      tokens: 0,
      requests: 1,
    };
    // 3 requests at second 50 of a minute; a fixed window would allow 3 more at second 60.
    for _ in 0..3 {
      s.reserve(l, T0 + 50_000, one).unwrap();
    }
    assert_eq!(
      s.reserve(l, T0 + 60_000, one),
      Err(Denied::Until {
        at: T0 + 50_000 + 1_000 + 60_000
      })
    );
    assert!(s.reserve(l, T0 + 110_999, one).is_err());
    assert!(s.reserve(l, T0 + 111_000, one).is_ok());
  }

  #[test]
  fn refund_in_the_bucket_and_overage_later() {
    let l = Limits {
      tpm: 100,
      ..Limits::default()
    };
    let mut s = SlidingState::default();
    let est = Usage {
      tokens: 60,
      requests: 1,
    };
    let g = s.reserve(l, T0, est).unwrap();
    s.settle(
      T0 + 5_000,
      g,
      est,
      Usage {
        tokens: 10,
        requests: 1,
      },
      true,
    );
    assert_eq!(s.minute.totals().tokens, 10);
    // The first bucket still counts; an estimate of 91 waits for it to leave.
    assert_eq!(
      s.reserve(
        l,
        T0 + 5_000,
        Usage {
          tokens: 91,
          requests: 0
        }
      ),
      Err(Denied::Until { at: T0 + 61_000 })
    );
    let g = s.reserve(l, T0 + 30_000, est).unwrap();
    s.settle(
      T0 + 200_000,
      g,
      est,
      Usage {
        tokens: 80,
        requests: 1,
      },
      true,
    );
    assert_eq!(s.minute.totals().tokens, 20);
    assert_eq!(s.day.totals().tokens, 90);
    assert_eq!(s.in_flight, 0);
  }

  #[test]
  fn day_buckets_bound_the_state() {
    let l = Limits {
      tpd: 1_000_000,
      ..Limits::default()
    };
    let mut s = SlidingState::default();
    for i in 0..10_000u64 {
      let g = s
        .reserve(
          l,
          T0 + i * 30_000,
          Usage {
            tokens: 1,
            requests: 1,
          },
        )
        .unwrap();
      s.settle(
        T0 + i * 30_000,
        g,
        Usage {
          tokens: 1,
          requests: 1,
        },
        Usage {
          tokens: 1,
          requests: 1,
        },
        true,
      );
    }
    assert!(s.minute.list.len() <= 61);
    assert!(s.day.list.len() <= 145);
  }
}
