//! The sliding-window log behind `RateLimiter`.
//!
//! State is the list of the newest admitted timestamps (milliseconds), oldest first, never
//! longer than `max`. A timestamp `t` is inside the window at `now` while `now < t + window`.
//! That list answers every question exactly: the count inside the window, whether one more
//! request fits, and when the next slot frees (when the oldest entry leaves the window).
//! Entries older than the `max` newest can never change an answer, so the list is capped at
//! `max` and memory per key is bounded.
//!
//! The Redis store runs the same steps in `store/redis/scripts/rate_limit.lua` over a LIST.
//!
//! ```
//! use std::collections::VecDeque;
//! use tollgate::engine::sliding_window::{apply, Limit, Op};
//! let limit = Limit { max: 2, window_ms: 60_000 };
//! let mut log = VecDeque::new();
//! assert!(apply(&mut log, limit, 0, Op::Consume).allowed);
//! assert!(apply(&mut log, limit, 10, Op::Consume).allowed);
//! assert!(!apply(&mut log, limit, 59_999, Op::Consume).allowed); // two inside the window
//! assert!(apply(&mut log, limit, 60_000, Op::Consume).allowed); // the first one left it
//! ```

use std::collections::VecDeque;

/// `max` requests inside any span of `window_ms` milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
  pub max: u32,
  pub window_ms: u64,
}

/// What a call asks of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
  /// Read only: would one more request fit?
  Check,
  /// Count a request that already happened, whether or not it fitted.
  Record,
  /// Admit and count one request if it fits; count nothing when it does not.
  Consume,
}

impl Op {
  /// The one-letter code the Lua script receives.
  pub fn code(self) -> &'static str {
    match self {
      Op::Check => "c",
      Op::Record => "r",
      Op::Consume => "x",
    }
  }
}

/// The answer, in the shape of tekimax's `RateLimitResult`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
  /// `Check`/`Consume`: one more request fits (and, for `Consume`, was counted).
  /// `Record`: the request just recorded fits inside the limit.
  pub allowed: bool,
  /// Requests that still fit inside the window now.
  pub remaining: u32,
  /// Whole seconds until `remaining` next grows (the oldest entry leaves the window);
  /// the window length when nothing is counted.
  pub reset_in_seconds: u64,
  /// The same in milliseconds (at least 1): a refused key is refused until then, whatever
  /// else happens, since nothing but time removes an entry.
  pub reset_ms: u64,
}

/// Applies `op` at time `now` (ms) to `log` and answers.
pub fn apply(log: &mut VecDeque<u64>, limit: Limit, now: u64, op: Op) -> Decision {
  while let Some(&oldest) = log.front() {
    if oldest.saturating_add(limit.window_ms) <= now {
      log.pop_front();
    } else {
      break;
    }
  }
  let max = limit.max as usize;
  let before = log.len();
  let allowed = match op {
    Op::Check => before < max,
    Op::Consume => {
      if before < max {
        push(log, now);
        true
      } else {
        false
      }
    }
    Op::Record => {
      push(log, now);
      while log.len() > max {
        log.pop_front();
      }
      before < max
    }
  };
  decision(log, limit, now, allowed)
}

/// Appends `now`, never before the newest entry, so the log stays ordered when clocks of
/// several callers disagree by a little.
fn push(log: &mut VecDeque<u64>, now: u64) {
  let at = log.back().map_or(now, |&newest| newest.max(now));
  log.push_back(at);
}

fn decision(log: &VecDeque<u64>, limit: Limit, now: u64, allowed: bool) -> Decision {
  let count = log.len().min(limit.max as usize) as u32;
  let reset_ms = match log.front() {
    Some(&oldest) => (oldest + limit.window_ms).saturating_sub(now).max(1),
    None => limit.window_ms,
  };
  Decision {
    allowed,
    remaining: limit.max - count,
    reset_in_seconds: reset_ms.div_ceil(1000),
    reset_ms,
  }
}

/// When the key holding `log` may be dropped: the newest entry leaves the window then.
pub fn expires_at(log: &VecDeque<u64>, limit: Limit) -> Option<u64> {
  log.back().map(|&newest| newest + limit.window_ms)
}

#[cfg(test)]
mod tests {
  use super::*;

  const L: Limit = Limit {
    max: 2,
    window_ms: 10_000,
  };

  #[test]
  fn check_never_counts() {
    let mut log = VecDeque::new();
    for _ in 0..5 {
      let d = apply(&mut log, L, 0, Op::Check);
      assert_eq!(
        d,
        Decision {
          allowed: true,
          remaining: 2,
          reset_in_seconds: 10,
          reset_ms: 10_000
        }
      );
    }
    assert!(log.is_empty());
  }

  #[test]
  fn record_always_counts_and_reports_fit_like_tekimax() {
    // tekimax: max 2 → allowed true,true,false,false; remaining 1,0,0,0.
    let mut log = VecDeque::new();
    let got: Vec<(bool, u32)> = (0..4)
      .map(|i| apply(&mut log, L, i, Op::Record))
      .map(|d| (d.allowed, d.remaining))
      .collect();
    assert_eq!(got, vec![(true, 1), (true, 0), (false, 0), (false, 0)]);
    assert_eq!(log.len(), 2, "only the newest max entries are kept");
    // The newest two (t=2, t=3) decide: the limit frees at 10_002.
    assert!(!apply(&mut log, L, 10_001, Op::Check).allowed);
    assert!(apply(&mut log, L, 10_002, Op::Check).allowed);
  }

  #[test]
  fn consume_counts_nothing_when_refused() {
    let mut log = VecDeque::new();
    assert!(apply(&mut log, L, 0, Op::Consume).allowed);
    assert!(apply(&mut log, L, 1_000, Op::Consume).allowed);
    let refused = apply(&mut log, L, 2_000, Op::Consume);
    assert_eq!(
      refused,
      Decision {
        allowed: false,
        remaining: 0,
        reset_in_seconds: 8,
        reset_ms: 8_000
      }
    );
    assert_eq!(log, VecDeque::from(vec![0, 1_000]));
  }

  #[test]
  fn window_edge_is_exclusive_of_the_end() {
    let mut log = VecDeque::new();
    apply(&mut log, L, 0, Op::Consume);
    apply(&mut log, L, 0, Op::Consume);
    assert!(!apply(&mut log, L, 9_999, Op::Consume).allowed);
    let d = apply(&mut log, L, 10_000, Op::Consume);
    assert_eq!(
      d,
      Decision {
        allowed: true,
        remaining: 1,
        reset_in_seconds: 10,
        reset_ms: 10_000
      }
    );
  }

  #[test]
  fn no_span_of_window_length_holds_more_than_max() {
    // Consume every 700 ms for a minute; check every admitted span.
    let limit = Limit {
      max: 5,
      window_ms: 3_000,
    };
    let mut log = VecDeque::new();
    let admitted: Vec<u64> = (0..100u64)
      .map(|i| i * 700)
      .filter(|&t| apply(&mut log, limit, t, Op::Consume).allowed)
      .collect();
    for (i, &t) in admitted.iter().enumerate() {
      let inside = admitted[i..].iter().take_while(|&&u| u < t + 3_000).count();
      assert!(inside <= 5, "{inside} admitted in [{t}, {})", t + 3_000);
    }
    assert!(admitted.len() > 20);
  }

  #[test]
  fn backwards_clock_keeps_order() {
    let mut log = VecDeque::new();
    apply(&mut log, L, 5_000, Op::Consume);
    apply(&mut log, L, 4_000, Op::Consume);
    assert_eq!(log, VecDeque::from(vec![5_000, 5_000]));
    assert_eq!(expires_at(&log, L), Some(15_000));
  }

  #[test]
  fn reset_rounds_up_to_whole_seconds() {
    let limit = Limit {
      max: 1,
      window_ms: 1_500,
    };
    let mut log = VecDeque::new();
    apply(&mut log, limit, 0, Op::Consume);
    assert_eq!(apply(&mut log, limit, 1, Op::Check).reset_in_seconds, 2);
    assert_eq!(apply(&mut log, limit, 1_499, Op::Check).reset_in_seconds, 1);
  }
}
