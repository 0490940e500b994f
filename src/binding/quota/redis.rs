//! The Redis store's path: one EVALSHA of store/redis/scripts/quota.lua a call, atomic per
//! scope. The script runs the engine's steps; here its arguments are built and its reply read.

use std::sync::Arc;

use napi::bindgen_prelude::External;
use napi_derive::napi;

use super::super::error::coded;
use super::json::{decision_text, request_from, Request};
use super::{keep_for, QuotaCore};

/// How long the scope is kept after this call: a pause keeps it at least until its end.
fn keep_with_pause(r: &Request) -> u64 {
  let keep = keep_for(&r.moment, &r.options);
  match (r.op.as_str(), r.until) {
    ("pause", Some(until)) if until.is_finite() => {
      keep.max((until - r.moment.now).max(0.0).min(u64::MAX as f64 / 4.0) as u64)
    }
    _ => keep,
  }
}
use crate::engine::quota::{self, Decision, Hold, KeyCheck, Reason};

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
    // 'pause' sends its end where a commit sends its tokens.
    arg(if r.op == "pause" {
      r.until
    } else {
      r.commit_tokens
    }),
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
    (if o.rpm_window { "1" } else { "0" }).into(),
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
    "paused" => Reason::Paused,
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
  for i in 0..count {
    let key = next()?;
    let ok = next()? == "1";
    let reason = reason_of(&next()?);
    let wait_ms = number(next()?)?;
    let mut f = || number(next()?).map(|x| x.unwrap_or(0.0));
    let (priority, rpm_ms) = (f()?, f()?);
    let tpm_ms = number(next()?)?;
    let mut f = || number(next()?).map(|x| x.unwrap_or(0.0));
    let (token_used, daily_used, daily_cap, daily_left) = (f()?, f()?, f()?, f()?);
    // The percentages as check_key computes them (the script sends only their parts).
    let tpm = r.keys.get(i).map_or(1.0, |k| quota::pos(k.tpm, 1.0));
    checks.push(KeyCheck {
      key,
      ok,
      reason,
      wait_ms,
      priority,
      rpm_ms,
      tpm_ms,
      token_used,
      token_pct: token_used / tpm,
      daily_used,
      daily_cap,
      daily_left,
      daily_pct: quota::ratio(daily_used, daily_cap),
    });
  }
  let key = (index >= 0).then_some(index as usize);
  let hold = match (r.op.as_str(), ok, key) {
    ("reserve" | "force", true, Some(i)) => {
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
  let redis = super::super::store::open_redis(&core.backend)?;
  let key = crate::store::redis::quota_base(&core.prefix, &r.scope);
  let args = script_args(&r, keep_with_pause(&r));
  env.spawn_future(async move {
    let reply = redis.quota(&key, &args).await?;
    Ok(match r.op.as_str() {
      "commit" | "rollback" | "pause" => matches!(reply, redis::Value::Int(1)).to_string(),
      _ => {
        let strings: Vec<String> = redis::FromRedisValue::from_redis_value(reply)
          .map_err(|e| coded("ERR_TOLLGATE_STORE_ERROR", e))?;
        decision_text(&decision_from(strings, &r)?)
      }
    })
  })
}
