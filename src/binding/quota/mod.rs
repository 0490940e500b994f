//! The quota engine for `Quota` (lib/quota.js), in three forms:
//! - here, the memory store's hot path: keys and replies packed into numbers (JSON and JS
//!   objects built from Rust cost more than the decision), plus rate-budget's helpers and
//!   `MemoryStore.get/set/reset`;
//! - [`json`]: rate-budget's JSON shapes of requests, results and scope states, and a user's
//!   `{ mutate(scope, fn) }` store (the state lives in their object);
//! - [`redis`]: the Redis store (store/redis/quota.rs), taking and answering the same numbers
//!   as the memory store's path.

mod json;
mod redis;

use std::sync::Arc;

use napi::bindgen_prelude::{External, Float64ArraySlice};
use napi_derive::napi;

use super::clock::local;
use super::id::Text;
use super::store::{Backend, NativeStore};
use crate::engine::quota::{self, Decision, Hit, KeyInput, Moment, Options, QuotaState, Reason};
use crate::store::memory::Keep;
use json::{bad, state_from, state_json};

pub struct QuotaCore {
  backend: Backend,
  prefix: String,
  /// The memory path's options, fixed at construction (see `quota_decide`).
  options: Options,
  /// The previous hold id of the key the last `quota_decide` reserved on (read by
  /// `quota_last_prev_id`: a string does not fit the packed reply).
  last_prev_id: std::sync::Mutex<Option<String>>,
}

/// How long (ms) the memory store keeps a scope after this call: until its day ends, its
/// window and spacing have passed, and its holds have expired.
pub(crate) fn keep_for(m: &Moment, o: &Options) -> u64 {
  let longest = [
    m.reset_at - m.now,
    2.0 * o.window_ms + o.buffer_ms,
    o.hold_ttl_ms.unwrap_or(0.0),
  ]
  .into_iter()
  .filter(|x| x.is_finite())
  .fold(1.0, f64::max);
  longest.min(u64::MAX as f64 / 4.0) as u64
}

// ---- the memory store ------------------------------------------------------------------

/// `options`: windowMs, bufferMs, thresholdPct (NaN for "not a number"), strictTpm,
/// monotonic (0|1), holdTtlMs (NaN for none), rpmWindow (0|1).
#[napi(ts_return_type = "ExternalObject<'QuotaCore'>")]
pub fn quota_new(
  store: &NativeStore,
  prefix: String,
  options: Vec<f64>,
) -> External<Arc<QuotaCore>> {
  let at = |i: usize| options.get(i).copied().filter(|x| !x.is_nan());
  let mut o = Options::new(at(0), at(1), at(2));
  o.strict_tpm = at(3) == Some(1.0);
  o.monotonic = at(4) == Some(1.0);
  o.rpm_window = at(6) == Some(1.0);
  o.hold_ttl_ms = at(5);
  External::new(Arc::new(QuotaCore {
    backend: store.backend.clone(),
    prefix,
    options: o,
    last_prev_id: std::sync::Mutex::new(None),
  }))
}

/// Fields per key in `quota_decide`'s `nums`: rpm, tpm, rpd, tpd, priority, flags
/// (1 enabled | 2 id is a string), rank.
const KEY_FIELDS: usize = 7;
/// Fields per check in the packed reply.
const CHECK_FIELDS: usize = 12;

fn reason_code(r: Option<Reason>) -> f64 {
  match r {
    None => 0.0,
    Some(Reason::Rpm) => 1.0,
    Some(Reason::Tpm) => 2.0,
    Some(Reason::Rpd) => 3.0,
    Some(Reason::Tpd) => 4.0,
    Some(Reason::Off) => 5.0,
    Some(Reason::NoKey) => 6.0,
    Some(Reason::Paused) => 7.0,
  }
}

/// The keys of a decision from their names and `KEY_FIELDS` numbers each.
fn keys_from(names: Vec<String>, nums: &[f64]) -> napi::Result<Vec<KeyInput>> {
  if nums.len() != names.len() * KEY_FIELDS {
    return Err(bad("nums and names differ in length"));
  }
  let opt = |x: f64| (!x.is_nan()).then_some(x);
  Ok(
    names
      .into_iter()
      .enumerate()
      .map(|(i, name)| {
        let f = &nums[i * KEY_FIELDS..(i + 1) * KEY_FIELDS];
        let flags = f[5] as u32;
        KeyInput {
          id: (flags & 2 != 0).then(|| name.clone()),
          name,
          rpm: opt(f[0]),
          tpm: opt(f[1]),
          rpd: opt(f[2]),
          tpd: opt(f[3]),
          priority: opt(f[4]),
          enabled: flags & 1 != 0,
          rank: f[6] as u32,
        }
      })
      .collect(),
  )
}

/// A decision as numbers, the layout of `quota_decide`'s reply (on both stores).
fn decision_numbers(d: &Decision) -> Vec<f64> {
  let mut reply = Vec::with_capacity(5 + d.checks.len() * CHECK_FIELDS + 3);
  let nan_none = |x: Option<f64>| x.unwrap_or(f64::NAN);
  reply.extend([
    d.ok as u8 as f64,
    d.key.map_or(-1.0, |k| k as f64),
    reason_code(d.reason),
    nan_none(d.wait_ms),
    d.checks.len() as f64,
  ]);
  for c in &d.checks {
    reply.extend([
      c.ok as u8 as f64,
      reason_code(c.reason),
      nan_none(c.wait_ms),
      c.priority,
      c.rpm_ms,
      nan_none(c.tpm_ms),
      c.token_used,
      c.token_pct,
      c.daily_used,
      c.daily_cap,
      c.daily_left,
      c.daily_pct,
    ]);
  }
  if let Some(h) = &d.hold {
    reply.extend([h.at, nan_none(h.prev_at), h.prev_id.is_some() as u8 as f64]);
  }
  reply
}

/// The memory store's hot path: `check` (op 0) or `reserve` (op 1) with keys and reply packed
/// into numbers, because JSON and JS objects built from Rust cost more than the decision.
/// Keys: `names`, and `KEY_FIELDS` numbers each in `nums`. Reply (the Redis path's
/// `quotaDecideAsync` resolves to the same numbers): ok, key index (-1), reason, waitMs (NaN for null), check count, then per check: ok,
/// reason, waitMs, priority, rpmMs, tpmMs, tokenUsed, tokenPct, dailyUsed, dailyCap,
/// dailyLeft, dailyPct; then for a hold: at, prevAt (NaN for none), has a prevId (0|1).
/// The reply is written into `out` (reused by lib/quota.js; creating a typed array here costs
/// more than the decision); returns how many numbers were written.
#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'QuotaCore'>, op: number, scope: string, names: string[], nums: Float64Array, tokens: number, holdId: string, now: number, day: string, resetAt: number, storeNow: number, out: Float64Array"
)]
#[allow(clippy::too_many_arguments)]
pub fn quota_decide(
  core: &External<Arc<QuotaCore>>,
  op: u32,
  scope: Text,
  names: Vec<String>,
  nums: Float64ArraySlice<'_>,
  tokens: f64,
  hold_id: Text,
  now: f64,
  day: Text,
  reset_at: f64,
  store_now: f64,
  mut out: Float64ArraySlice<'_>,
) -> napi::Result<u32> {
  let store = core.backend.memory()?;
  let keys = keys_from(names, &nums)?;
  let (scope, hold_id) = (scope.as_str(), hold_id.as_str());
  let m = Moment {
    now,
    day: day.as_str().to_owned(),
    reset_at,
  };
  let o = &core.options;
  let keep = keep_for(&m, o);
  let key = format!("{}{}", core.prefix, scope);
  let snow = local(store_now);
  let d = store.update(&key, snow, |s| {
    let d = if op == 1 {
      quota::reserve(s, scope, &keys, tokens, hold_id, &m, o)
    } else {
      quota::check(s, &keys, tokens, &m, o)
    };
    (d, Keep::Until(snow + keep))
  })?;
  let reply = decision_numbers(&d);
  if let Some(h) = &d.hold {
    *core.last_prev_id.lock().unwrap_or_else(|p| p.into_inner()) = h.prev_id.clone();
  }
  // SAFETY: `out` is a JS typed array borrowed for this synchronous call on the JS thread;
  // nothing else can touch it meanwhile.
  let out = unsafe { out.as_mut() };
  if out.len() < reply.len() {
    return Err(bad(format!(
      "out holds {} numbers, the reply needs {}",
      out.len(),
      reply.len()
    )));
  }
  out[..reply.len()].copy_from_slice(&reply);
  Ok(reply.len() as u32)
}

/// The memory store's `commit` (op 0; `tokens` NaN keeps the estimate) and `rollback` (op 1).
#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'QuotaCore'>, op: number, scope: string, key: string, holdId: string, tokens: number, now: number, resetAt: number, storeNow: number"
)]
#[allow(clippy::too_many_arguments)]
pub fn quota_settle(
  core: &External<Arc<QuotaCore>>,
  op: u32,
  scope: Text,
  key: Text,
  hold_id: Text,
  tokens: f64,
  now: f64,
  reset_at: f64,
  store_now: f64,
) -> napi::Result<bool> {
  let store = core.backend.memory()?;
  let o = &core.options;
  let snow = local(store_now);
  // Kept until the day ends, as a reservation keeps it: a commit never shortens the scope's
  // life (its day's request count must outlive it).
  let keep = keep_for(
    &Moment {
      now,
      day: String::new(),
      reset_at,
    },
    o,
  );
  let (key, hold_id) = (key.as_str(), hold_id.as_str());
  Ok(
    store.update(&format!("{}{}", core.prefix, scope.as_str()), snow, |s| {
      let done = if op == 1 {
        quota::rollback(s, key, hold_id, now, o)
      } else {
        quota::commit(
          s,
          key,
          hold_id,
          (!tokens.is_nan()).then_some(tokens),
          now,
          o,
        )
      };
      (done, Keep::Until(snow + keep))
    })?,
  )
}

/// The memory store's `pause`: `key` of `scope` refused (`paused`) until `until`; the scope is
/// kept at least until then.
#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'QuotaCore'>, scope: string, key: string, until: number, now: number, day: string, resetAt: number, storeNow: number"
)]
#[allow(clippy::too_many_arguments)]
pub fn quota_pause(
  core: &External<Arc<QuotaCore>>,
  scope: Text,
  key: Text,
  until: f64,
  now: f64,
  day: Text,
  reset_at: f64,
  store_now: f64,
) -> napi::Result<bool> {
  let store = core.backend.memory()?;
  let m = Moment {
    now,
    day: day.as_str().to_owned(),
    reset_at,
  };
  let keep =
    keep_for(&m, &core.options).max((until - now).max(0.0).min(u64::MAX as f64 / 4.0) as u64);
  let snow = local(store_now);
  Ok(
    store.update(&format!("{}{}", core.prefix, scope.as_str()), snow, |s| {
      let done = quota::pause(s, key.as_str(), until, &m, &core.options);
      (done, Keep::Until(snow + keep))
    })?,
  )
}

/// The previous hold id of the last reservation `quota_decide` made.
#[napi(ts_args_type = "core: ExternalObject<'QuotaCore'>")]
pub fn quota_last_prev_id(core: &External<Arc<QuotaCore>>) -> Option<String> {
  core
    .last_prev_id
    .lock()
    .unwrap_or_else(|p| p.into_inner())
    .clone()
}

/// The engine's defaults, `[windowMs, bufferMs, thresholdPct]`: lib/ takes them from here.
#[napi]
pub fn quota_defaults() -> Vec<f64> {
  vec![quota::WINDOW_MS, quota::BUFFER_MS, quota::THRESHOLD_PCT]
}

/// The memory store's state of `scope` (rate-budget's `store.get(scope)`), or null.
#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'QuotaCore'>, scope: string, now: number"
)]
pub fn quota_get(
  core: &External<Arc<QuotaCore>>,
  scope: String,
  now: f64,
) -> napi::Result<Option<String>> {
  let store = core.backend.memory()?;
  let state = store.view(
    &format!("{}{}", core.prefix, scope),
    local(now),
    |s: &QuotaState| s.clone(),
  )?;
  Ok(state.map(|s| state_json(&s, &scope).to_string()))
}

/// Replaces the memory store's state of `scope` (rate-budget's `store.set`), kept a day.
#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'QuotaCore'>, scope: string, state: string, now: number"
)]
pub fn quota_set(
  core: &External<Arc<QuotaCore>>,
  scope: String,
  state: String,
  now: f64,
) -> napi::Result<()> {
  let store = core.backend.memory()?;
  let v: serde_json::Value = serde_json::from_str(&state).map_err(bad)?;
  let now = local(now);
  store.write(
    &format!("{}{}", core.prefix, scope),
    state_from(&v),
    now,
    now + 86_400_000,
  );
  Ok(())
}

/// Deletes one scope, or every scope of this prefix (rate-budget's `store.reset`).
#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'QuotaCore'>, scope?: string | undefined | null"
)]
pub fn quota_reset(core: &External<Arc<QuotaCore>>, scope: Option<String>) -> napi::Result<u32> {
  let store = core.backend.memory()?;
  Ok(match scope {
    Some(s) => store.delete(&format!("{}{}", core.prefix, s), 0) as u32,
    None => store.remove_prefix(&core.prefix) as u32,
  })
}

// ---- rate-budget's helpers ----------------------------------------------------------------
// lib/quota.js passes NaN for anything that is not a number, which sanitises the same way.

fn some(x: f64) -> Option<f64> {
  Some(x)
}

/// `cooldownMs(rpm, bufferMs, windowMs)`.
#[napi]
pub fn quota_cooldown_ms(rpm: f64, buffer_ms: f64, window_ms: f64) -> f64 {
  quota::cooldown_ms(some(rpm), some(buffer_ms), window_ms)
}

/// `dailyCap(rpd, thresholdPct)`.
#[napi]
pub fn quota_daily_cap(rpd: f64, threshold_pct: f64) -> f64 {
  quota::daily_cap(some(rpd), some(threshold_pct))
}

/// `tokenWaitMs({ used, tokens, limit, hits, now, windowMs, bufferMs })`, hits as two columns.
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn quota_token_wait_ms(
  used: f64,
  tokens: f64,
  limit: f64,
  hit_ats: Vec<f64>,
  hit_tokens: Vec<f64>,
  now: f64,
  window_ms: f64,
  buffer_ms: f64,
) -> Option<f64> {
  let hits: Vec<Hit> = hit_ats
    .iter()
    .zip(hit_tokens.iter())
    .map(|(&at, &tokens)| Hit {
      id: String::new(),
      at,
      tokens,
    })
    .collect();
  quota::token_wait_ms(
    some(used),
    some(tokens),
    some(limit),
    &hits,
    now,
    some(window_ms),
    some(buffer_ms),
  )
}
