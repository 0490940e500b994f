//! rate-budget's JSON shapes: a scope's state (`{ keys: { <id>: { day, used, hits, holds,
//! lastAt, lastId, pausedUntil? } } }`), the requests lib/quota.js sends and the results it
//! reads. Used by a user's `{ mutate(scope, fn) }` store (the state is a payload their store
//! keeps) and by `MemoryStore.get/set`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::super::error::{coded, INVALID_ARG};
use crate::engine::quota::{
  self, Decision, Hit, HitRef, Hold, Holds, KeyInput, KeyState, Moment, Options, QuotaState,
  Reason, TokenWindow,
};
use napi_derive::napi;

pub(super) fn bad(e: impl std::fmt::Display) -> napi::Error {
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
    // A state in rate-budget's shape names a hold's hit by the hold's id and time only: the
    // newest hit with both is the hold's.
    let (window, numbered) = TokenWindow::from_hits(hits);
    let by_hold: std::collections::HashMap<(&str, u64), HitRef> = numbered
      .iter()
      .map(|(hit, r)| ((hit.id.as_str(), hit.at.to_bits()), *r))
      .collect();
    let mut kept = Holds::default();
    for h in holds {
      let hit = by_hold
        .get(&(h.id.as_str(), h.at.to_bits()))
        .copied()
        .unwrap_or(HitRef::NONE);
      kept.insert(&h, hit);
    }
    state.keys.push((
      name.clone(),
      KeyState {
        day: str_of(k.get("day")).unwrap_or_default(),
        used: raw(k.get("used")),
        day_tokens: num(k.get("dayTokens")).unwrap_or(0.0),
        window,
        holds: kept,
        last_at,
        last_id: str_of(k.get("lastId")),
        paused_until: num(k.get("pausedUntil")),
      },
    ));
  }
  state
}

/// `s` in rate-budget's shape; holds carry `scope` and their key's name.
pub fn state_json(s: &QuotaState, scope: &str) -> Value {
  let mut keys = Map::new();
  for (name, k) in &s.keys {
    let mut m = Map::new();
    m.insert("day".into(), json!(k.day));
    m.insert("used".into(), json!(k.used));
    let hits: Vec<Value> = k
      .hits()
      .iter()
      .map(
        |h| json!({ "id": h.id, "at": finite_or_null(h.at), "tokens": finite_or_null(h.tokens) }),
      )
      .collect();
    m.insert("hits".into(), Value::Array(hits));
    let holds: Map<String, Value> = k
      .holds
      .list(scope, name)
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
    if let Some(until) = k.paused_until {
      m.insert("pausedUntil".into(), json!(until));
    }
    if k.day_tokens != 0.0 {
      m.insert("dayTokens".into(), json!(k.day_tokens));
    }
    keys.insert(name.clone(), Value::Object(m));
  }
  json!({ "keys": keys })
}

// ---- requests and results ----------------------------------------------------------------

pub(super) struct Request {
  pub(super) op: String,
  pub(super) scope: String,
  pub(super) keys: Vec<KeyInput>,
  pub(super) tokens: f64,
  pub(super) hold_id: String,
  pub(super) hold_key: String,
  pub(super) commit_tokens: Option<f64>,
  /// 'pause': until when `hold_key` is paused.
  pub(super) until: Option<f64>,
  pub(super) moment: Moment,
  pub(super) options: Options,
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
  #[serde(default)]
  until: Option<f64>,
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
  #[serde(default)]
  rpm_window: bool,
  hold_ttl_ms: Option<f64>,
}

pub(super) fn request_from(text: &str) -> napi::Result<Request> {
  let r: RequestJson = serde_json::from_str(text).map_err(bad)?;
  let o = r.options;
  let mut options = Options::new(o.window_ms, o.buffer_ms, o.threshold_pct);
  options.strict_tpm = o.strict_tpm;
  options.monotonic = o.monotonic;
  options.rpm_window = o.rpm_window;
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
    until: r.until,
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

pub(super) fn decision_text(d: &Decision) -> String {
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
pub(super) fn apply(state: &mut QuotaState, r: &Request) -> napi::Result<String> {
  let (m, o) = (&r.moment, &r.options);
  Ok(match r.op.as_str() {
    "check" => decision_text(&quota::check(state, &r.keys, r.tokens, m, o)),
    "reserve" => decision_text(&quota::reserve(
      state, &r.scope, &r.keys, r.tokens, &r.hold_id, m, o,
    )),
    "force" => match r.keys.first() {
      Some(key) => decision_text(&quota::force(
        state, &r.scope, key, r.tokens, &r.hold_id, m, o,
      )),
      None => return Err(bad("a forced reservation needs its key")),
    },
    "commit" => {
      quota::commit(state, &r.hold_key, &r.hold_id, r.commit_tokens, m.now, o).to_string()
    }
    "rollback" => quota::rollback(state, &r.hold_key, &r.hold_id, m.now, o).to_string(),
    "pause" => quota::pause(state, &r.hold_key, r.until.unwrap_or(f64::NAN), m, o).to_string(),
    other => return Err(bad(format!("unknown quota op {other:?}"))),
  })
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
    state_json(&s, &r.scope),
    result
  ))
}
