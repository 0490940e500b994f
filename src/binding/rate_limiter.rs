//! The sliding-window limiter of one `RateLimiter` (lib/rate-limiter.js).
//!
//! This is the hottest path in tollgate, so it is shaped for N-API's costs, measured on the
//! project machine: a `#[napi]` class method costs ~290 ns before doing anything (borrow
//! tracking and class checks), a free function with an `External` handle ~130 ns, and a JS
//! object built from Rust ~700 ns. So the limiter is an `External` handle used through free
//! functions, and a decision comes back packed into one number (see [`pack`]).

use std::sync::Arc;

use napi::bindgen_prelude::{External, PromiseRaw};
use napi::Env;
use napi_derive::napi;

use super::clock::{local, remote};
use super::error::ms;
use super::id::{with_key, Id};
use super::store::{open_redis, Backend, NativeStore};
use crate::engine::sliding_window::{Decision, Limit, Op};

/// A decision packed into one number: `(resetInSeconds * 2^24 + remaining) * 2 + allowed`.
/// lib/rate-limiter.js unpacks it; `remaining < 2^24` and `resetInSeconds < 2^28` hold
/// because lib/ caps `maxRequests` and `windowSeconds`.
fn pack(d: Decision) -> f64 {
  ((d.reset_in_seconds as f64) * 16_777_216.0 + d.remaining as f64) * 2.0 + d.allowed as u8 as f64
}

/// 0 check, 1 record, 2 consume.
fn op(code: u32) -> Op {
  match code {
    0 => Op::Check,
    1 => Op::Record,
    _ => Op::Consume,
  }
}

pub struct RateLimiterCore {
  backend: Backend,
  prefix: String,
  limit: Limit,
}

#[napi(ts_return_type = "ExternalObject<'RateLimiterCore'>")]
pub fn rate_limiter_new(
  store: &NativeStore,
  prefix: String,
  max: u32,
  window_ms: f64,
) -> External<Arc<RateLimiterCore>> {
  External::new(Arc::new(RateLimiterCore {
    backend: store.backend.clone(),
    prefix,
    limit: Limit {
      max,
      window_ms: ms(window_ms).max(1),
    },
  }))
}

/// In-process decision, answered on the calling thread. `now` < 0 reads the system clock.
#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'RateLimiterCore'>, code: number, id: string, now: number"
)]
pub fn rate_limiter_run(
  core: &External<Arc<RateLimiterCore>>,
  code: u32,
  id: Id,
  now: f64,
) -> napi::Result<f64> {
  let store = core.backend.memory()?;
  let now = local(now);
  let d = with_key(&core.prefix, id.as_str(), |key| {
    store.rate_limit(key, core.limit, now, op(code))
  })?;
  Ok(pack(d))
}

/// Redis decision: one EVALSHA. `now` < 0 uses the Redis server's clock.
#[napi(
  ts_args_type = "core: ExternalObject<'RateLimiterCore'>, code: number, id: string, now: number"
)]
pub fn rate_limiter_run_async<'env>(
  env: &'env Env,
  core: &External<Arc<RateLimiterCore>>,
  code: u32,
  id: String,
  now: f64,
) -> napi::Result<PromiseRaw<'env, f64>> {
  let redis = open_redis(&core.backend)?;
  let key = format!("{}{}", core.prefix, id);
  let (limit, now) = (core.limit, remote(now));
  env.spawn_future(async move { Ok(pack(redis.rate_limit(&key, limit, now, op(code)).await?)) })
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn pack_keeps_every_field() {
    let d = Decision {
      allowed: true,
      remaining: (1 << 24) - 1,
      reset_in_seconds: (1 << 28) - 1,
    };
    let v = pack(d) as u64;
    assert_eq!(v & 1, 1);
    assert_eq!((v >> 1) & ((1 << 24) - 1), (1 << 24) - 1);
    assert_eq!(v >> 25, (1 << 28) - 1);
  }
}
