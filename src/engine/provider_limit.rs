//! The per-provider limiter of `ProviderLimiter` (a multi-worker app's global per-provider limit, `ratelimit:{provider}:global`): `points` per `duration`, one
//! counter per `provider:scope` shared by every worker. The first call of a period creates the
//! counter with all points and an expiry `duration` ahead; each call takes one point; at the
//! expiry the counter is gone and the next call starts a new period (the refill).
//!
//! The Redis store runs the same steps in `store/redis/scripts/provider.lua` over a hash with
//! the multi-worker key reference's fields `points` (remaining) and `expire` (ms), expiring with the period.
//!
//! ```
//! use tollgate::engine::provider_limit::{Counter, consume};
//! let mut c: Option<Counter> = None;
//! assert!(consume(&mut c, 2, 60_000, 0, 1).allowed);
//! assert!(consume(&mut c, 2, 60_000, 1, 1).allowed);
//! let d = consume(&mut c, 2, 60_000, 2, 1);
//! assert_eq!((d.allowed, d.retry_in_ms), (false, 59_998));
//! assert!(consume(&mut c, 2, 60_000, 60_000, 1).allowed); // refilled
//! ```

/// A live period: points left and when it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counter {
  pub points: u64,
  pub expire: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
  pub allowed: bool,
  pub remaining: u64,
  /// 0 when allowed; otherwise ms until the period ends.
  pub retry_in_ms: u64,
  /// When the current period ends.
  pub expire: u64,
}

/// Takes `cost` points (0 = only look) from `counter` at `now`.
pub fn consume(
  counter: &mut Option<Counter>,
  points: u64,
  duration_ms: u64,
  now: u64,
  cost: u64,
) -> Decision {
  if counter.is_some_and(|c| c.expire <= now) {
    *counter = None;
  }
  let c = counter.get_or_insert(Counter {
    points,
    expire: now + duration_ms,
  });
  let allowed = c.points >= cost && (cost > 0 || c.points > 0);
  if allowed {
    c.points -= cost;
  }
  Decision {
    allowed,
    remaining: c.points,
    retry_in_ms: if allowed { 0 } else { c.expire - now },
    expire: c.expire,
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn a_period_refills_at_its_expiry() {
    let mut c = None;
    for i in 0..3 {
      let d = consume(&mut c, 3, 1_000, 10 + i, 1);
      assert_eq!((d.allowed, d.remaining, d.expire), (true, 2 - i, 1_010));
    }
    let d = consume(&mut c, 3, 1_000, 500, 1);
    assert_eq!((d.allowed, d.remaining, d.retry_in_ms), (false, 0, 510));
    assert!(!consume(&mut c, 3, 1_000, 1_009, 0).allowed);
    let d = consume(&mut c, 3, 1_000, 1_010, 1);
    assert_eq!((d.allowed, d.remaining, d.expire), (true, 2, 2_010));
  }
}
