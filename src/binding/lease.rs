//! `leaseRun`: the one round trip of a lease (lib/lease.js), on a Redis store. The script's
//! arguments and reply are store/redis/lease.rs's; lib/ passes and gets numbers.

use napi::bindgen_prelude::PromiseRaw;
use napi::Env;
use napi_derive::napi;

use super::error::{coded, INVALID_ARG};
use super::id::Id;
use super::store::{on_redis, open_redis, NativeStore};
use crate::store::redis::{LeaseCall, LeaseMode};

/// Fields of `call` before its uses.
const CALL_FIELDS: usize = 11;

/// Gives back a lease on the limit of `id` under `prefix` and takes the next, for `holder`
/// (process-unique). `call`: mode (0 window | 1 budget), max, span (ms), lease time (ms), now
/// (ms; < 0: the server's clock), want, demand per window (< 0: none), share, the lease given
/// back (0: none), its start (window) or period (budget), the grid (window) or fewest units
/// worth a lease (budget), then the uses as `LeaseCall::uses` lays them out. Resolves to:
/// lease number (0: none), units, server now, expiry, ms until a unit frees, units left; for a
/// budget then period start, tokens used, tokens reserved, and the numbers of the holds made.
#[napi(
  ts_args_type = "store: NativeStore, prefix: string, id: string, holder: string, call: number[]"
)]
pub fn lease_run<'env>(
  env: &'env Env,
  store: &NativeStore,
  prefix: String,
  id: Id,
  holder: String,
  call: Vec<f64>,
) -> napi::Result<PromiseRaw<'env, Vec<f64>>> {
  if call.len() < CALL_FIELDS {
    return Err(coded(
      INVALID_ARG,
      "a lease call has 11 numbers before its uses",
    ));
  }
  let redis = open_redis(&store.backend)?;
  let key = format!("{}{}", prefix, id.as_str());
  env.spawn_future(async move {
    let c = &call;
    let mode = if c[0] == 1.0 {
      LeaseMode::Budget
    } else {
      LeaseMode::Window
    };
    let lease = LeaseCall {
      mode,
      max: c[1],
      span_ms: c[2],
      lease_ms: c[3],
      now: (c[4] >= 0.0).then_some(c[4]),
      holder: &holder,
      want: c[5],
      demand: (c[6] >= 0.0).then_some(c[6]),
      share: c[7],
      back: c[8],
      back_start: c[9],
      grid_or_least: c[10],
      uses: &c[CALL_FIELDS..],
    };
    let r = redis.lease(&key, &lease).await?;
    let mut out = vec![
      r.number as f64,
      r.units as f64,
      r.now as f64,
      r.expires as f64,
      r.wait as f64,
      r.left as f64,
    ];
    if let Some(b) = r.budget {
      out.extend([b.period as f64, b.used as f64, b.reserved as f64]);
      out.extend(b.holds.iter().map(|&h| h as f64));
    }
    Ok(out)
  })
}

/// Deletes the lease key of `id` under `prefix` (what every holder counted on it), for a
/// class's `reset`. Resolves to whether it existed; every failure rejects.
#[napi(ts_args_type = "store: NativeStore, prefix: string, id: string")]
pub fn lease_drop<'env>(
  env: &'env Env,
  store: &NativeStore,
  prefix: String,
  id: Id,
) -> napi::Result<PromiseRaw<'env, bool>> {
  let key = format!("{}{}", prefix, id.as_str());
  on_redis(env, &store.backend, move |redis| async move {
    Ok(redis.delete(&key, None).await?)
  })
}
