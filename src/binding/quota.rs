//! The quota engine for `Quota` (lib/quota.js). Requests, results and scope states cross the
//! boundary as JSON in rate-budget's own shapes, so the same functions serve the memory store
//! (state kept here) and a user's `{ mutate(scope, fn) }` store (state kept in their object).

use std::sync::Arc;

use napi::bindgen_prelude::{External, Float64ArraySlice};
use napi_derive::napi;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::clock::local;
use super::error::{coded, INVALID_ARG};
use super::store::{Backend, NativeStore};
use crate::engine::quota::{
  self, Decision, Hit, Hold, KeyCheck, KeyInput, KeyState, Moment, Options, QuotaState, Reason,
};

pub struct QuotaCore {
  backend: Backend,
  prefix: String,
  /// The memory path's options, fixed at construction (see `quota_decide`).
  options: Options,
  /// The previous hold id of the key the last `quota_decide` reserved on (read by
  /// `quota_last_prev_id`: a string does not fit the packed reply).
  last_prev_id: std::sync::Mutex<Option<String>>,
}

fn bad(e: impl std::fmt::Display) -> napi::Error {
  coded(INVALID_ARG, e)
}

fn num(v: Option<&Value>) -> Option<f64> {
  v.and_then(Value::as_f64)
}

/// A number as rate-budget reads it: a non-number is NaN (so it sanitises to the fallback).
fn raw(v: Option<&Value>) -> f64 {
  num(v).unwrap_or(f64::NAN)
}

fn str_of(v: Option<&Value>) -> Option<String> {
  v.and_then(Value::as_str).map(str::to_owned)
}

fn finite_or_null(x: f64) -> Value {
  if x.is_finite() {
    json!(x)
  } else {
    Value::Null
  }
}

// ---- scope state: rate-budget's { keys: { <id>: { day, used, hits, holds, lastAt, lastId } } }

fn hold_from(v: &Value) -> Hold {
  Hold {
    id: str_of(v.get("id")).unwrap_or_default(),
    scope: str_of(v.get("scope")).unwrap_or_default(),
    key: str_of(v.get("key")).unwrap_or_default(),
    tokens: raw(v.get("tokens")),
    at: raw(v.get("at")),
    day: str_of(v.get("day")).unwrap_or_default(),
    prev_at: num(v.get("prevAt")),
    prev_id: str_of(v.get("prevId")),
  }
}

fn hold_json(h: &Hold) -> Value {
  let mut m = Map::new();
  m.insert("id".into(), json!(h.id));
  m.insert("scope".into(), json!(h.scope));
  m.insert("key".into(), json!(h.key));
  m.insert("tokens".into(), json!(h.tokens));
  m.insert("at".into(), json!(h.at));
  m.insert("day".into(), json!(h.day));
  if let Some(p) = h.prev_at {
    m.insert("prevAt".into(), json!(p));
  }
  if let Some(p) = &h.prev_id {
    m.insert("prevId".into(), json!(p));
  }
  Value::Object(m)
}

pub fn state_from(v: &Value) -> QuotaState {
  let mut state = QuotaState::default();
  let Some(keys) = v.get("keys").and_then(Value::as_object) else {
    return state;
  };
  for (name, k) in keys {
    let hits = k
      .get("hits")
      .and_then(Value::as_array)
      .map_or_else(Vec::new, |hits| {
        hits
          .iter()
          .map(|h| Hit {
            id: str_of(h.get("id")).unwrap_or_default(),
            at: raw(h.get("at")),
            tokens: raw(h.get("tokens")),
          })
          .collect()
      });
    let holds = k
      .get("holds")
      .and_then(Value::as_object)
      .map_or_else(Vec::new, |holds| holds.values().map(hold_from).collect());
    let last_at = match k.get("lastAt") {
      None => None,
      Some(Value::Null) => Some(0.0), // rate-budget: `null - x` is `-x`
      Some(v) => Some(v.as_f64().unwrap_or(f64::NAN)),
    };
    state.keys.push((
      name.clone(),
      KeyState {
        day: str_of(k.get("day")).unwrap_or_default(),
        used: raw(k.get("used")),
        day_tokens: num(k.get("dayTokens")).unwrap_or(0.0),
        hits,
        holds,
        last_at,
        last_id: str_of(k.get("lastId")),
      },
    ));
  }
  state
}

pub fn state_json(s: &QuotaState) -> Value {
  let mut keys = Map::new();
  for (name, k) in &s.keys {
    let mut m = Map::new();
    m.insert("day".into(), json!(k.day));
    m.insert("used".into(), json!(k.used));
    let hits: Vec<Value> = k
      .hits
      .iter()
      .map(
        |h| json!({ "id": h.id, "at": finite_or_null(h.at), "tokens": finite_or_null(h.tokens) }),
      )
      .collect();
    m.insert("hits".into(), Value::Array(hits));
    let holds: Map<String, Value> = k
      .holds
      .iter()
      .map(|h| (h.id.clone(), hold_json(h)))
      .collect();
    m.insert("holds".into(), Value::Object(holds));
    if let Some(at) = k.last_at {
      m.insert("lastAt".into(), json!(at));
    }
    if let Some(id) = &k.last_id {
      m.insert("lastId".into(), json!(id));
    }
    if k.day_tokens != 0.0 {
      m.insert("dayTokens".into(), json!(k.day_tokens));
    }
    keys.insert(name.clone(), Value::Object(m));
  }
  json!({ "keys": keys })
}

// ---- requests and results ----------------------------------------------------------------

struct Request {
  op: String,
  scope: String,
  keys: Vec<KeyInput>,
  tokens: f64,
  hold_id: String,
  hold_key: String,
  commit_tokens: Option<f64>,
  moment: Moment,
  options: Options,
}

// lib/quota.js sends numbers or null (never NaN or text), so the request parses into typed
// structs: no intermediate JSON tree on the hot path.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestJson {
  op: String,
  #[serde(default)]
  scope: String,
  #[serde(default)]
  keys: Vec<KeyJson>,
  #[serde(default)]
  tokens: Option<f64>,
  #[serde(default)]
  hold_id: String,
  #[serde(default)]
  hold_key: String,
  #[serde(default)]
  commit_tokens: Option<f64>,
  now: Option<f64>,
  #[serde(default)]
  day: String,
  #[serde(default)]
  reset_at: Option<f64>,
  options: OptionsJson,
}

#[derive(Deserialize)]
struct KeyJson {
  id: Option<String>,
  name: String,
  rpm: Option<f64>,
  tpm: Option<f64>,
  rpd: Option<f64>,
  tpd: Option<f64>,
  priority: Option<f64>,
  enabled: bool,
  rank: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OptionsJson {
  window_ms: Option<f64>,
  buffer_ms: Option<f64>,
  threshold_pct: Option<f64>,
  strict_tpm: bool,
  monotonic: bool,
  hold_ttl_ms: Option<f64>,
}

fn request_from(text: &str) -> napi::Result<Request> {
  let r: RequestJson = serde_json::from_str(text).map_err(bad)?;
  let o = r.options;
  let mut options = Options::new(o.window_ms, o.buffer_ms, o.threshold_pct);
  options.strict_tpm = o.strict_tpm;
  options.monotonic = o.monotonic;
  options.hold_ttl_ms = o.hold_ttl_ms;
  let keys = r
    .keys
    .into_iter()
    .map(|k| KeyInput {
      id: k.id,
      name: k.name,
      rpm: k.rpm,
      tpm: k.tpm,
      rpd: k.rpd,
      tpd: k.tpd,
      priority: k.priority,
      enabled: k.enabled,
      rank: k.rank,
    })
    .collect();
  Ok(Request {
    op: r.op,
    scope: r.scope,
    keys,
    tokens: r.tokens.unwrap_or(f64::NAN),
    hold_id: r.hold_id,
    hold_key: r.hold_key,
    commit_tokens: r.commit_tokens,
    moment: Moment {
      now: r.now.unwrap_or(f64::NAN),
      day: r.day,
      reset_at: r.reset_at.unwrap_or(f64::NAN),
    },
    options,
  })
}

// Results, written straight to JSON text.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CheckJson<'a> {
  key: &'a str,
  ok: bool,
  reason: Option<&'static str>,
  wait_ms: Option<f64>,
  priority: f64,
  rpm_ms: f64,
  tpm_ms: Option<f64>,
  token_used: f64,
  token_pct: f64,
  daily_used: f64,
  daily_cap: f64,
  daily_left: f64,
  daily_pct: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HoldJson<'a> {
  id: &'a str,
  scope: &'a str,
  key: &'a str,
  tokens: f64,
  at: f64,
  day: &'a str,
  #[serde(skip_serializing_if = "Option::is_none")]
  prev_at: Option<f64>,
  #[serde(skip_serializing_if = "Option::is_none")]
  prev_id: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DecisionJson<'a> {
  ok: bool,
  key: Option<usize>,
  reason: Option<&'static str>,
  tokens: f64,
  wait_ms: Option<f64>,
  checks: Vec<CheckJson<'a>>,
  hold: Option<HoldJson<'a>>,
}

fn decision_text(d: &Decision) -> String {
  let out = DecisionJson {
    ok: d.ok,
    key: d.key,
    reason: d.reason.map(Reason::as_str),
    tokens: d.tokens,
    wait_ms: d.wait_ms,
    checks: d
      .checks
      .iter()
      .map(|c| CheckJson {
        key: &c.key,
        ok: c.ok,
        reason: c.reason.map(Reason::as_str),
        wait_ms: c.wait_ms,
        priority: c.priority,
        rpm_ms: c.rpm_ms,
        tpm_ms: c.tpm_ms,
        token_used: c.token_used,
        token_pct: c.token_pct,
        daily_used: c.daily_used,
        daily_cap: c.daily_cap,
        daily_left: c.daily_left,
        daily_pct: c.daily_pct,
      })
      .collect(),
    hold: d.hold.as_ref().map(|h| HoldJson {
      id: &h.id,
      scope: &h.scope,
      key: &h.key,
      tokens: h.tokens,
      at: h.at,
      day: &h.day,
      prev_at: h.prev_at,
      prev_id: h.prev_id.as_deref(),
    }),
  };
  serde_json::to_string(&out).unwrap_or_else(|_| "null".into())
}

/// Runs one request on `state`; the result as JSON text.
fn apply(state: &mut QuotaState, r: &Request) -> napi::Result<String> {
  let (m, o) = (&r.moment, &r.options);
  Ok(match r.op.as_str() {
    "check" => decision_text(&quota::check(state, &r.keys, r.tokens, m, o)),
    "reserve" => decision_text(&quota::reserve(
      state, &r.scope, &r.keys, r.tokens, &r.hold_id, m, o,
    )),
    "commit" => {
      quota::commit(state, &r.hold_key, &r.hold_id, r.commit_tokens, m.now, o).to_string()
    }
    "rollback" => quota::rollback(state, &r.hold_key, &r.hold_id, m.now, o).to_string(),
    other => return Err(bad(format!("unknown quota op {other:?}"))),
  })
}

/// How long (ms) the memory store keeps a scope after this call: until its day ends, its
/// window and spacing have passed, and its holds have expired.
fn keep_for(m: &Moment, o: &Options) -> u64 {
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

// ---- exports -----------------------------------------------------------------------------

/// `options`: windowMs, bufferMs, thresholdPct (NaN for "not a number"), strictTpm,
/// monotonic (0|1), holdTtlMs (NaN for none).
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
  }
}

/// The memory store's hot path: `check` (op 0) or `reserve` (op 1) with keys and reply packed
/// into numbers, because JSON and JS objects built from Rust cost more than the decision.
/// Reply: ok, key index (-1), reason, waitMs (NaN for null), check count, then per check: ok,
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
  scope: String,
  names: Vec<String>,
  nums: Float64ArraySlice<'_>,
  tokens: f64,
  hold_id: String,
  now: f64,
  day: String,
  reset_at: f64,
  store_now: f64,
  mut out: Float64ArraySlice<'_>,
) -> napi::Result<u32> {
  let store = core.backend.memory()?;
  let nums: &[f64] = &nums;
  if nums.len() != names.len() * KEY_FIELDS {
    return Err(bad("nums and names differ in length"));
  }
  let opt = |x: f64| (!x.is_nan()).then_some(x);
  let keys: Vec<KeyInput> = names
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
    .collect();
  let m = Moment { now, day, reset_at };
  let o = &core.options;
  let keep = keep_for(&m, o);
  let key = format!("{}{}", core.prefix, scope);
  let snow = local(store_now);
  let d = store.quota(&key, snow, snow + keep, |s| {
    if op == 1 {
      quota::reserve(s, &scope, &keys, tokens, &hold_id, &m, o)
    } else {
      quota::check(s, &keys, tokens, &m, o)
    }
  })?;
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
  ts_args_type = "core: ExternalObject<'QuotaCore'>, op: number, scope: string, key: string, holdId: string, tokens: number, now: number, storeNow: number"
)]
#[allow(clippy::too_many_arguments)]
pub fn quota_settle(
  core: &External<Arc<QuotaCore>>,
  op: u32,
  scope: String,
  key: String,
  hold_id: String,
  tokens: f64,
  now: f64,
  store_now: f64,
) -> napi::Result<bool> {
  let store = core.backend.memory()?;
  let o = &core.options;
  let snow = local(store_now);
  let keep = keep_for(
    &Moment {
      now,
      day: String::new(),
      reset_at: f64::NAN,
    },
    o,
  );
  Ok(store.quota(
    &format!("{}{}", core.prefix, scope),
    snow,
    snow + keep,
    |s| {
      if op == 1 {
        quota::rollback(s, &key, &hold_id, now, o)
      } else {
        quota::commit(
          s,
          &key,
          &hold_id,
          (!tokens.is_nan()).then_some(tokens),
          now,
          o,
        )
      }
    },
  )?)
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

/// A user's store: `{"state": <the new state>, "result": …}` for `request` on `state`.
#[napi(catch_unwind)]
pub fn quota_apply(state: String, request: String) -> napi::Result<String> {
  let r = request_from(&request)?;
  let v: Value = serde_json::from_str(&state).map_err(bad)?;
  let mut s = state_from(&v);
  let result = apply(&mut s, &r)?;
  Ok(format!(
    "{{\"state\":{},\"result\":{}}}",
    state_json(&s),
    result
  ))
}

/// The memory store: runs `request` on the scope's state kept in the store. `store_now` is the
/// store's clock, which decides when the scope's entry expires (the request carries the
/// Quota's own clock).
#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'QuotaCore'>, request: string, storeNow: number"
)]
pub fn quota_run(
  core: &External<Arc<QuotaCore>>,
  request: String,
  store_now: f64,
) -> napi::Result<String> {
  let r = request_from(&request)?;
  let store = core.backend.memory()?;
  let key = format!("{}{}", core.prefix, r.scope);
  let now = local(store_now);
  store.quota(&key, now, now + keep_for(&r.moment, &r.options), |s| {
    apply(s, &r)
  })?
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
  let state = store.quota_state(&format!("{}{}", core.prefix, scope), local(now))?;
  Ok(state.map(|s| state_json(&s).to_string()))
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
  let v: Value = serde_json::from_str(&state).map_err(bad)?;
  let now = local(now);
  store.set_quota_state(
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

// ---- Redis: quota.lua -----------------------------------------------------------------------

/// A number as quota.lua reads it: exact decimal text, or '' for "not a number".
fn arg(x: Option<f64>) -> String {
  match x {
    Some(v) if v.is_finite() => format!("{v:?}"),
    Some(v) if v.is_nan() => String::new(),
    Some(v) => {
      if v > 0.0 {
        "inf".into()
      } else {
        "-inf".into()
      }
    }
    None => String::new(),
  }
}

fn script_args(r: &Request, keep_ms: u64) -> Vec<String> {
  let o = &r.options;
  let mut a = vec![
    r.op.clone(),
    r.scope.clone(),
    arg(Some(r.tokens)),
    r.hold_id.clone(),
    r.hold_key.clone(),
    arg(r.commit_tokens),
    arg(Some(r.moment.now)),
    r.moment.day.clone(),
    arg(Some(r.moment.reset_at)),
    arg(Some(o.window_ms)),
    arg(Some(o.buffer_ms)),
    arg(Some(o.threshold_pct)),
    (if o.strict_tpm { "1" } else { "0" }).into(),
    arg(o.hold_ttl_ms),
    (if o.monotonic { "1" } else { "0" }).into(),
    keep_ms.to_string(),
    r.keys.len().to_string(),
  ];
  for k in &r.keys {
    a.push((if k.id.is_some() { "1" } else { "0" }).into());
    a.push(k.name.clone());
    for x in [k.rpm, k.tpm, k.rpd, k.tpd, k.priority] {
      a.push(arg(x));
    }
    a.push((if k.enabled { "1" } else { "0" }).into());
    a.push(k.rank.to_string());
  }
  a
}

fn reason_of(s: &str) -> Option<Reason> {
  Some(match s {
    "rpm" => Reason::Rpm,
    "tpm" => Reason::Tpm,
    "rpd" => Reason::Rpd,
    "tpd" => Reason::Tpd,
    "off" => Reason::Off,
    "no_key" => Reason::NoKey,
    _ => return None,
  })
}

/// quota.lua's reply to a check or reserve, as the engine's `Decision`.
fn decision_from(reply: Vec<String>, r: &Request) -> napi::Result<Decision> {
  let bad_reply = || {
    coded(
      "ERR_TOLLGATE_STORE_ERROR",
      "quota.lua returned an unexpected reply",
    )
  };
  let mut it = reply.into_iter();
  let mut next = || it.next().ok_or_else(bad_reply);
  let number = |s: String| {
    if s.is_empty() {
      Ok(None)
    } else {
      s.parse::<f64>().map(Some).map_err(|_| bad_reply())
    }
  };
  let ok = next()? == "1";
  let index: i64 = next()?.parse().map_err(|_| bad_reply())?;
  let reason = reason_of(&next()?);
  let tokens = number(next()?)?.unwrap_or(0.0);
  let wait_ms = number(next()?)?;
  let count: usize = next()?.parse().map_err(|_| bad_reply())?;
  let mut checks = Vec::with_capacity(count);
  for _ in 0..count {
    let key = next()?;
    let ok = next()? == "1";
    let reason = reason_of(&next()?);
    let wait_ms = number(next()?)?;
    let mut f = || number(next()?).map(|x| x.unwrap_or(0.0));
    let (priority, rpm_ms) = (f()?, f()?);
    let tpm_ms = number(next()?)?;
    let mut f = || number(next()?).map(|x| x.unwrap_or(0.0));
    checks.push(KeyCheck {
      key,
      ok,
      reason,
      wait_ms,
      priority,
      rpm_ms,
      tpm_ms,
      token_used: f()?,
      token_pct: f()?,
      daily_used: f()?,
      daily_cap: f()?,
      daily_left: f()?,
      daily_pct: f()?,
    });
  }
  let key = (index >= 0).then_some(index as usize);
  let hold = match (r.op.as_str(), ok, key) {
    ("reserve", true, Some(i)) => {
      let id = next()?;
      let at = number(next()?)?.unwrap_or(r.moment.now);
      let prev_at = number(next()?)?;
      let prev_id = next()?.strip_prefix('i').map(str::to_owned);
      Some(Hold {
        id,
        scope: r.scope.clone(),
        key: r.keys[i].name.clone(),
        tokens,
        at,
        day: r.moment.day.clone(),
        prev_at,
        prev_id,
      })
    }
    _ => None,
  };
  Ok(Decision {
    ok,
    key,
    reason,
    tokens,
    wait_ms,
    checks,
    hold,
  })
}

/// The Redis store: one EVALSHA of quota.lua, atomic per scope.
#[napi(ts_args_type = "core: ExternalObject<'QuotaCore'>, request: string")]
pub fn quota_run_async<'env>(
  env: &'env napi::Env,
  core: &External<Arc<QuotaCore>>,
  request: String,
) -> napi::Result<napi::bindgen_prelude::PromiseRaw<'env, String>> {
  let r = request_from(&request)?;
  let redis = super::store::open_redis(&core.backend)?;
  let key = format!("{}{}", core.prefix, r.scope);
  let args = script_args(&r, keep_for(&r.moment, &r.options));
  env.spawn_future(async move {
    let reply = redis.quota(&key, &args).await?;
    Ok(match r.op.as_str() {
      "commit" | "rollback" => matches!(reply, redis::Value::Int(1)).to_string(),
      _ => {
        let strings: Vec<String> = redis::FromRedisValue::from_redis_value(reply)
          .map_err(|e| coded("ERR_TOLLGATE_STORE_ERROR", e))?;
        decision_text(&decision_from(strings, &r)?)
      }
    })
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
