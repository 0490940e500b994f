//! The default clock: milliseconds since the Unix epoch, read in Rust (cheaper than a
//! `Date.now()` call passed across). Callers that inject a clock pass their own `now`.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> u64 {
  SystemTime::now()
    .duration_since(UNIX_EPOCH)
    .map_or(0, |d| d.as_millis() as u64)
}

/// `now` from lib/ for the memory store: milliseconds, or < 0 for the system clock.
pub fn local(now: f64) -> u64 {
  if now < 0.0 {
    now_ms()
  } else {
    super::error::ms(now)
  }
}

/// `now` from lib/ for the Redis store: milliseconds, or `None` (< 0) for the server's clock.
pub fn remote(now: f64) -> Option<u64> {
  (now >= 0.0).then(|| super::error::ms(now))
}
