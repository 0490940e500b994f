//! `Guard`'s meters (lib/guard.js): one decision over many limits.
//!
//! Crossing napi: the meters of a call come as one string of `limit id \0 scope` pairs (one
//! string read instead of one per part; lib/ refuses NUL and lone surrogates in scopes) and a
//! `Float64Array` of seven numbers per meter — kind (0 window, 1 period, 2 concurrent), max,
//! window ms or period id, period end, amount (the estimate; when ending a hold, the real
//! amount, or -1 to cancel), hold number, hold expiry. The memory path writes its reply into
//! the `Float64Array` it is given (reused by lib/, so no array is made per call) and answers
//! on the calling thread; the Redis path resolves to an array of the same layout.
//!
//! Replies: acquire → ok, first refusing meter (-1), wait ms (-1: never fits), holds' expiry,
//! then the remaining of each meter, then (when ok) each meter's hold number. End → 1 or 0 per
//! meter (was the hold outstanding). Peek → the remaining of each meter. Reset (op 4) → 1
//! per meter, deleted (its usage and holds gone; a later settle of one of its holds changes
//! nothing).

use std::sync::Arc;

use napi::bindgen_prelude::{External, Float64ArraySlice};
use napi_derive::napi;

use super::error::{coded, ms, INVALID_ARG};
use super::id::Text;
use super::reply::write;
use super::store::{open_redis, Backend, NativeStore};
use crate::engine::guard::{self, Acquired, Kind, Spec};
use crate::store::key;
use crate::store::memory::{Keep, MemoryStore, WrongType};

pub struct GuardCore {
  backend: Backend,
  prefix: String,
  hold_ms: u64,
}

/// Numbers per meter in a request.
const FIELDS: usize = 7;

#[napi(ts_return_type = "ExternalObject<'GuardCore'>")]
pub fn guard_new(store: &NativeStore, prefix: String, hold_ms: f64) -> External<Arc<GuardCore>> {
  External::new(Arc::new(GuardCore {
    backend: store.backend.clone(),
    prefix,
    hold_ms: ms(hold_ms).max(1),
  }))
}

/// The meters of a request: the key base of each (`prefix{g<id>:<scope>}`, the hash tag
/// naming the meter) and its numbers.
struct Meters {
  bases: Vec<String>,
  kinds: Vec<Kind>,
  amounts: Vec<f64>,
  holds: Vec<(u64, u64)>,
}

/// Runs `step` over the decision's meters on the memory store, under one lock; a meter holding
/// nothing is dropped, the others kept until their last entry or hold can matter.
fn with_meters<T>(
  store: &MemoryStore,
  m: &Meters,
  now: u64,
  step: impl FnOnce(&mut [&mut guard::Meter]) -> T,
) -> Result<T, WrongType> {
  store.update_all(
    &m.bases,
    now,
    |boxes: &mut [Box<guard::Meter>]| {
      let mut meters: Vec<&mut guard::Meter> = boxes.iter_mut().map(|b| &mut **b).collect();
      step(&mut meters)
    },
    |i, meter| {
      if meter.is_empty() {
        Keep::Drop
      } else {
        Keep::Until(meter.keep_until(&m.kinds[i]).max(now + 1))
      }
    },
  )
}

fn meters(core: &GuardCore, names: &str, nums: &[f64]) -> napi::Result<Meters> {
  let n = nums.len() / FIELDS;
  let mut parts = names.split('\0');
  let mut m = Meters {
    bases: Vec::with_capacity(n),
    kinds: Vec::with_capacity(n),
    amounts: Vec::with_capacity(n),
    holds: Vec::with_capacity(n),
  };
  for f in nums.chunks_exact(FIELDS) {
    let (Some(id), Some(scope)) = (parts.next(), parts.next()) else {
      return Err(coded(INVALID_ARG, "guard: fewer names than meters"));
    };
    let mut base = String::with_capacity(core.prefix.len() + id.len() + scope.len() + 4);
    base.push_str(&core.prefix);
    base.push_str("{g");
    key::push_parts(&mut base, &[&key::escape(id), &key::escape(scope)]);
    base.push('}');
    m.bases.push(base);
    let max = ms(f[1]);
    m.kinds.push(match f[0] as u32 {
      0 => Kind::Window {
        max,
        window_ms: ms(f[2]).max(1),
      },
      1 => Kind::Period {
        max,
        id: ms(f[2]),
        end_ms: ms(f[3]),
      },
      _ => Kind::Concurrent { max },
    });
    m.amounts.push(f[4]);
    m.holds.push((ms(f[5]), ms(f[6])));
  }
  Ok(m)
}

fn specs(m: &Meters) -> Vec<Spec> {
  m.kinds
    .iter()
    .zip(&m.amounts)
    .map(|(&kind, &a)| Spec {
      kind,
      amount: ms(a),
    })
    .collect()
}

fn acquired_reply(a: &Acquired) -> Vec<f64> {
  let mut out = Vec::with_capacity(4 + 2 * a.remaining.len());
  out.push(if a.ok { 1.0 } else { 0.0 });
  out.push(a.refused.map_or(-1.0, |i| i as f64));
  out.push(a.wait_ms.map_or(-1.0, |w| w as f64));
  out.push(a.expires_at as f64);
  out.extend(a.remaining.iter().map(|&x| x as f64));
  out.extend(a.holds.iter().map(|&x| x as f64));
  out
}

/// Memory path: op 0 acquire, 1 end holds, 2 peek, 3 record (`now` is when the call was made), 4 reset. Writes the reply into `out`, returns its
/// length.
#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'GuardCore'>, op: number, names: string, nums: Float64Array, now: number, out: Float64Array"
)]
pub fn guard_run(
  core: &External<Arc<GuardCore>>,
  op: u32,
  names: Text,
  nums: Float64ArraySlice<'_>,
  now: f64,
  mut out: Float64ArraySlice<'_>,
) -> napi::Result<u32> {
  let store = core.backend.memory()?;
  let m = meters(core, names.as_str(), &nums)?;
  let now = ms(now);
  let hold_ms = core.hold_ms;
  let reply: Vec<f64> = match op {
    0 => {
      let specs = specs(&m);
      let a = with_meters(store, &m, now, |meters| {
        guard::acquire(meters, &specs, now, hold_ms)
      })?;
      acquired_reply(&a)
    }
    1 => with_meters(store, &m, now, |meters| {
      meters
        .iter_mut()
        .enumerate()
        .map(|(i, meter)| {
          let done = if m.amounts[i] < 0.0 {
            guard::cancel(meter, &m.kinds[i], m.holds[i], now)
          } else {
            guard::settle(meter, &m.kinds[i], m.holds[i], ms(m.amounts[i]), now)
          };
          if done {
            1.0
          } else {
            0.0
          }
        })
        .collect()
    })?,
    4 => m
      .bases
      .iter()
      .map(|b| {
        store.delete(b, now);
        1.0
      })
      .collect(),
    _ => with_meters(store, &m, now, |meters| guard::peek(meters, &m.kinds, now))?
      .into_iter()
      .map(|x| x as f64)
      .collect(),
  };
  // SAFETY: `out` is a JS typed array borrowed for this synchronous call on the JS thread.
  write(unsafe { out.as_mut() }, &reply)
}

/// Redis path: as `guard_run`, resolving to the reply (one script call on a single server).
#[napi(
  ts_args_type = "core: ExternalObject<'GuardCore'>, op: number, names: string, nums: Float64Array, now: number"
)]
pub fn guard_run_async<'env>(
  env: &'env napi::Env,
  core: &External<Arc<GuardCore>>,
  op: u32,
  names: Text,
  nums: Float64ArraySlice<'_>,
  now: f64,
) -> napi::Result<napi::bindgen_prelude::PromiseRaw<'env, Vec<f64>>> {
  let redis = open_redis(&core.backend)?;
  let m = meters(core, names.as_str(), &nums)?;
  let (now, hold_ms) = (ms(now), core.hold_ms);
  env.spawn_future(async move {
    let bases: Vec<&str> = m.bases.iter().map(String::as_str).collect();
    Ok(match op {
      0 => acquired_reply(
        &redis
          .guard_acquire(&bases, &specs(&m), now, hold_ms)
          .await?,
      ),
      1 => {
        let amounts: Vec<i64> = m
          .amounts
          .iter()
          .map(|&a| if a < 0.0 { -1 } else { ms(a) as i64 })
          .collect();
        redis
          .guard_end(&bases, &m.kinds, &m.holds, &amounts, now)
          .await?
          .into_iter()
          .map(|d| if d { 1.0 } else { 0.0 })
          .collect()
      }
      4 => {
        // Each meter's two keys, deleted (a meter per slot on a Cluster: sent at once).
        let keys: Vec<String> = bases
          .iter()
          .flat_map(|b| [format!("{b}:m"), format!("{b}:x")])
          .collect();
        for r in futures_util::future::join_all(keys.iter().map(|k| redis.delete(k, None))).await {
          r?;
        }
        vec![1.0; bases.len()]
      }
      3 => redis
        .guard_record(&bases, &specs(&m), now)
        .await?
        .into_iter()
        .map(|x| x as f64)
        .collect(),
      _ => redis
        .guard_peek(&bases, &m.kinds, now)
        .await?
        .into_iter()
        .map(|x| x as f64)
        .collect(),
    })
  })
}
