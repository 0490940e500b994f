//! `tokenBudget*`: the token budget of one `TokenBudget` (lib/token-budget.js), over an
//! `External` handle (a free function costs less to call than a class method).
//!
//! A decision comes back as numbers, the same on both paths (written into the caller's
//! `Float64Array` in process, resolved as an array on Redis): `[allowed 0|1, used, reserved,
//! remaining, resetInSeconds, hold period start, hold sequence, hold expiresAt]`; the hold's id
//! is `<period start>-<sequence>`, and a sequence of -1 means no hold was made.

use std::sync::Arc;

use napi::bindgen_prelude::{External, Float64ArraySlice, PromiseRaw};
use napi::Env;
use napi_derive::napi;

use super::clock::{local, remote};
use super::error::ms;
use super::id::{with_key, Id};
use super::reply::write;
use super::store::{on_redis, Backend, NativeStore};
use crate::engine::token_budget::{Budget, Decision, Limit, Op};

/// Numbers in a reply.
const FIELDS: usize = 8;

fn reply(d: &Decision) -> [f64; FIELDS] {
  let (start, seq, expires) = match &d.hold {
    Some(h) => match h.id.split_once('-') {
      Some((a, b)) => (
        a.parse().unwrap_or(f64::NAN),
        b.parse().unwrap_or(f64::NAN),
        h.expires_at as f64,
      ),
      None => (f64::NAN, f64::NAN, h.expires_at as f64),
    },
    None => (0.0, -1.0, 0.0),
  };
  [
    f64::from(u8::from(d.allowed)),
    d.used as f64,
    d.reserved as f64,
    d.remaining as f64,
    d.reset_in_seconds as f64,
    start,
    seq,
    expires,
  ]
}

/// 0 check, 1 record, 2 reserve, 3 settle, 4 release.
fn op(code: u32, tokens: f64, hold_id: Option<String>) -> Op {
  let tokens = ms(tokens);
  let id = hold_id.unwrap_or_default();
  match code {
    0 => Op::Check,
    1 => Op::Record(tokens),
    2 => Op::Reserve(tokens),
    3 => Op::Settle { id, actual: tokens },
    _ => Op::Release { id },
  }
}

pub struct TokenBudgetCore {
  backend: Backend,
  prefix: String,
  limit: Limit,
}

#[napi(ts_return_type = "ExternalObject<'TokenBudgetCore'>")]
pub fn token_budget_new(
  store: &NativeStore,
  prefix: String,
  max: f64,
  period_ms: f64,
  hold_ms: f64,
) -> External<Arc<TokenBudgetCore>> {
  External::new(Arc::new(TokenBudgetCore {
    backend: store.backend.clone(),
    prefix,
    limit: Limit {
      max: ms(max),
      period_ms: ms(period_ms).max(1),
      hold_ms: ms(hold_ms).max(1),
    },
  }))
}

/// In-process decision, answered on the calling thread, written into `out`. `now` < 0 reads
/// the system clock.
#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'TokenBudgetCore'>, code: number, bucket: string, tokens: number, holdId: string | undefined, now: number, out: Float64Array"
)]
pub fn token_budget_run(
  core: &External<Arc<TokenBudgetCore>>,
  code: u32,
  bucket: Id,
  tokens: f64,
  hold_id: Option<String>,
  now: f64,
  mut out: Float64ArraySlice<'_>,
) -> napi::Result<u32> {
  let (limit, now, op) = (core.limit, local(now), op(code, tokens, hold_id));
  let store = core.backend.memory()?;
  let d = with_key(&core.prefix, bucket.as_str(), |key| {
    store.update(key, now, |b: &mut Box<Budget>| {
      let d = b.apply(limit, now, &op);
      (d, b.keep_until(limit).into())
    })
  })?;
  // SAFETY: `out` is a JS typed array borrowed for this synchronous call on the JS thread.
  write(unsafe { out.as_mut() }, &reply(&d))
}

/// Redis decision (one EVALSHA); resolves to the reply's numbers. `now` < 0 uses the Redis
/// server's clock.
#[napi(
  ts_args_type = "core: ExternalObject<'TokenBudgetCore'>, code: number, bucket: string, tokens: number, holdId: string | undefined, now: number"
)]
pub fn token_budget_run_async<'env>(
  env: &'env Env,
  core: &External<Arc<TokenBudgetCore>>,
  code: u32,
  bucket: Id,
  tokens: f64,
  hold_id: Option<String>,
  now: f64,
) -> napi::Result<PromiseRaw<'env, Vec<f64>>> {
  let key = format!("{}{}", core.prefix, bucket.as_str());
  let (limit, op) = (core.limit, op(code, tokens, hold_id));
  on_redis(env, &core.backend, move |redis| async move {
    let d = redis.budget(&key, limit, remote(now), &op).await?;
    Ok(reply(&d).to_vec())
  })
}
