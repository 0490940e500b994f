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
use super::error::{coded, ms, INVALID_ARG};
use super::id::{with_key, Id};
use super::store::{open_redis, Backend, NativeStore};
use crate::engine::sliding_window::{self, Decision, Limit, Op};

/// A decision packed into one number: `(resetInSeconds * 2^24 + remaining) * 2 + 1` when
/// allowed; `resetMs * 2` when refused (then `remaining` is always 0, and the exact reset lets
/// lib/ refuse the key locally until then). lib/rate-limiter.js unpacks it; `remaining < 2^24`,
/// `resetInSeconds < 2^28` and `resetMs < 2^52` hold because lib/ caps `maxRequests` and
/// `windowSeconds`.
fn pack(d: Decision) -> f64 {
  if d.allowed {
    ((d.reset_in_seconds as f64) * 16_777_216.0 + d.remaining as f64) * 2.0 + 1.0
  } else {
    d.reset_ms as f64 * 2.0
  }
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
    store.update(key, now, |log| {
      let d = sliding_window::apply(log, core.limit, now, op(code));
      (d, sliding_window::expires_at(log, core.limit).into())
    })
  })?;
  Ok(pack(d))
}

/// Redis decisions made together: `codes[i]`, `ids[i]` and `nows[i]` (< 0: the Redis server's
/// clock) describe decision `i`. One EVALSHA for all of them; resolves to the packed
/// decisions in the same order.
#[napi(
  ts_args_type = "core: ExternalObject<'RateLimiterCore'>, codes: number[], ids: string[], nows: number[]"
)]
pub fn rate_limiter_run_batch<'env>(
  env: &'env Env,
  core: &External<Arc<RateLimiterCore>>,
  codes: Vec<u32>,
  ids: Vec<Id>,
  nows: Vec<f64>,
) -> napi::Result<PromiseRaw<'env, Vec<f64>>> {
  let redis = open_redis(&core.backend)?;
  if codes.len() != ids.len() || nows.len() != ids.len() {
    return Err(coded(INVALID_ARG, "codes, ids and nows differ in length"));
  }
  let keys: Vec<String> = ids
    .iter()
    .map(|id| format!("{}{}", core.prefix, id.as_str()))
    .collect();
  let limit = core.limit;
  env.spawn_future(async move {
    let calls: Vec<_> = keys
      .iter()
      .zip(codes.iter().zip(nows.iter()))
      .map(|(key, (&code, &now))| (key.as_str(), op(code), remote(now)))
      .collect();
    let decisions = redis.rate_limit_many(limit, &calls).await?;
    Ok(decisions.into_iter().map(pack).collect())
  })
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
      reset_ms: 0,
    };
    let v = pack(d) as u64;
    assert_eq!(v & 1, 1);
    assert_eq!((v >> 1) & ((1 << 24) - 1), (1 << 24) - 1);
    assert_eq!(v >> 25, (1 << 28) - 1);
  }

  #[test]
  fn a_refusal_carries_its_reset_in_milliseconds() {
    let window_ms = 366 * 24 * 3600 * 1000;
    let d = Decision {
      allowed: false,
      remaining: 0,
      reset_in_seconds: window_ms / 1000,
      reset_ms: window_ms,
    };
    let v = pack(d);
    assert_eq!(v as u64 % 2, 0);
    assert_eq!(v as u64 / 2, window_ms);
  }
}
