//! The Redis store's path: the same requests and replies as the memory store's
//! (`quota_decide`, `quota_settle`, `quota_pause`), as promises. quota.lua's arguments and
//! reply are store/redis/quota.rs's.

use std::sync::Arc;

use napi::bindgen_prelude::{External, Float64ArraySlice, PromiseRaw};
use napi::Env;
use napi_derive::napi;

use super::super::store::open_redis;
use super::{decision_numbers, keep_for, keys_from, QuotaCore};
use crate::engine::quota::Moment;
use crate::store::redis::{Pick, QuotaPick, QuotaSettle, Settle};

/// `check` (op 0), `reserve` (op 1) or `force` (op 2: a reservation granted in process while
/// Redis was away, recorded on the one key given without checking it) on Redis. Takes the
/// arguments of `quota_decide` but the store clock and `out`; resolves to `[numbers, prevId]`:
/// the numbers in `quota_decide`'s layout, and the previous hold id of the key reserved on
/// (when the numbers say there is one).
#[napi(
  ts_args_type = "core: ExternalObject<'QuotaCore'>, op: number, scope: string, names: string[], nums: Float64Array, tokens: number, holdId: string, now: number, day: string, resetAt: number",
  ts_return_type = "Promise<[number[], string | null]>"
)]
#[allow(clippy::too_many_arguments)]
pub fn quota_decide_async<'env>(
  env: &'env Env,
  core: &External<Arc<QuotaCore>>,
  op: u32,
  scope: String,
  names: Vec<String>,
  nums: Float64ArraySlice<'_>,
  tokens: f64,
  hold_id: String,
  now: f64,
  day: String,
  reset_at: f64,
) -> napi::Result<PromiseRaw<'env, (Vec<f64>, Option<String>)>> {
  let keys = keys_from(names, &nums)?;
  let redis = open_redis(&core.backend)?;
  let moment = Moment { now, day, reset_at };
  let p = QuotaPick {
    pick: match op {
      1 => Pick::Reserve,
      2 => Pick::Force,
      _ => Pick::Check,
    },
    scope,
    keys,
    tokens,
    hold_id,
    keep_ms: keep_for(&moment, &core.options),
    moment,
    options: core.options,
  };
  let core = Arc::clone(core);
  env.spawn_future(async move {
    let d = redis.quota_pick(&core.prefix, &p).await?;
    let prev_id = d.hold.as_ref().and_then(|h| h.prev_id.clone());
    Ok((decision_numbers(&d), prev_id))
  })
}

/// `commit` (op 0; `tokens` NaN keeps the estimate) or `rollback` (op 1) on Redis: the
/// arguments of `quota_settle` but the store clock.
#[napi(
  ts_args_type = "core: ExternalObject<'QuotaCore'>, op: number, scope: string, key: string, holdId: string, tokens: number, now: number, resetAt: number"
)]
#[allow(clippy::too_many_arguments)]
pub fn quota_settle_async<'env>(
  env: &'env Env,
  core: &External<Arc<QuotaCore>>,
  op: u32,
  scope: String,
  key: String,
  hold_id: String,
  tokens: f64,
  now: f64,
  reset_at: f64,
) -> napi::Result<PromiseRaw<'env, bool>> {
  let settle = if op == 1 {
    Settle::Rollback
  } else {
    Settle::Commit {
      tokens: (!tokens.is_nan()).then_some(tokens),
    }
  };
  // Kept until the day ends, as a reservation keeps it: a commit never shortens the scope's
  // life (its day's request count must outlive it).
  let moment = Moment {
    now,
    day: String::new(),
    reset_at,
  };
  settle_async(env, core, settle, scope, key, hold_id, moment, 0)
}

/// `pause` on Redis: the arguments of `quota_pause` but the store clock.
#[napi(
  ts_args_type = "core: ExternalObject<'QuotaCore'>, scope: string, key: string, until: number, now: number, day: string, resetAt: number"
)]
#[allow(clippy::too_many_arguments)]
pub fn quota_pause_async<'env>(
  env: &'env Env,
  core: &External<Arc<QuotaCore>>,
  scope: String,
  key: String,
  until: f64,
  now: f64,
  day: String,
  reset_at: f64,
) -> napi::Result<PromiseRaw<'env, bool>> {
  // The scope is kept at least until the pause ends.
  let at_least = if until.is_finite() {
    (until - now).max(0.0).min(u64::MAX as f64 / 4.0) as u64
  } else {
    0
  };
  let moment = Moment { now, day, reset_at };
  let settle = Settle::Pause { until };
  settle_async(
    env,
    core,
    settle,
    scope,
    key,
    String::new(),
    moment,
    at_least,
  )
}

#[allow(clippy::too_many_arguments)]
fn settle_async<'env>(
  env: &'env Env,
  core: &External<Arc<QuotaCore>>,
  settle: Settle,
  scope: String,
  key: String,
  hold_id: String,
  moment: Moment,
  keep_at_least: u64,
) -> napi::Result<PromiseRaw<'env, bool>> {
  let redis = open_redis(&core.backend)?;
  let s = QuotaSettle {
    settle,
    scope,
    key,
    hold_id,
    keep_ms: keep_for(&moment, &core.options).max(keep_at_least),
    moment,
    options: core.options,
  };
  let core = Arc::clone(core);
  env.spawn_future(async move { Ok(redis.quota_settle(&core.prefix, &s).await?) })
}
