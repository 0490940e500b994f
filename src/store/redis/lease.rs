//! Leases on Redis: `scripts/lease.lua`, one EVALSHA that gives back a process's lease on a
//! limit and takes the next one. The sizing and the in-process accounting live in lib/lease.js
//! (the hot path runs there); this is only the round trip.

use super::scripts::LEASE;
use super::{RedisStore, StoreError};

impl RedisStore {
  /// Runs the lease script on `key` with `args` (its ARGV, see the script's header); returns
  /// its reply, every element an integer.
  pub async fn lease(&self, key: &str, args: &[String]) -> Result<Vec<i64>, StoreError> {
    let mut inv = LEASE.prepare_invoke();
    inv.key(key);
    for a in args {
      inv.arg(a.as_str());
    }
    self.run(inv).await
  }
}
