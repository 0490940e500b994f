//! Quota on Redis: `scripts/quota.lua`, one EVALSHA per call over a scope's three keys (one
//! hash tag, so one slot: atomic per scope). The script runs the engine's steps
//! (engine/quota) in the same floating-point order; here its ARGV are laid out and its reply
//! read back into the engine's types, so nothing above this file knows either format.

use super::{scripts, RedisStore, StoreError};
use crate::engine::quota::{self, Decision, Hold, KeyCheck, KeyInput, Moment, Options, Reason};

/// The suffixes of a Quota scope's three keys (quota.lua's KEYS).
const QUOTA_KEYS: [&str; 3] = [":k", ":h", ":x"];

/// Where a Quota scope's keys start: the prefix, then the scope as the hash tag, so that all
/// three keys of a decision share one slot. The scope is escaped (`%`, `{`, `}`) and led by a
/// `q`, so the tag is never empty and never ends early: distinct scopes, distinct keys.
pub fn quota_base(prefix: &str, scope: &str) -> String {
  let mut out = String::with_capacity(prefix.len() + scope.len() + 3);
  out.push_str(prefix);
  out.push_str("{q");
  for c in scope.chars() {
    match c {
      '%' => out.push_str("%25"),
      '{' => out.push_str("%7B"),
      '}' => out.push_str("%7D"),
      c => out.push(c),
    }
  }
  out.push('}');
  out
}

/// What a decision call does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
  /// Picks a key without reserving (the scope's state is still tidied).
  Check,
  /// Picks a key and reserves on it.
  Reserve,
  /// Records a reservation an in-process twin granted while Redis was away, on the one key
  /// given, without checking its limits.
  Force,
}

/// What a call on one hold or key of a scope does; each answers true when it applied.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Settle {
  /// Replaces the hold's estimate by `tokens` (None keeps it) and releases it.
  Commit { tokens: Option<f64> },
  /// Gives back what the hold took.
  Rollback,
  /// Marks the key exhausted until `until` (epoch ms, the callers' clock).
  Pause { until: f64 },
}

/// One decision on a scope: its keys, the estimate, the hold id (reserve, force), the
/// callers' moment and the quota's options; `keep_ms` is how long the scope must live at least
/// (its day's end, its window and spacing, its holds' TTL).
pub struct QuotaPick {
  pub pick: Pick,
  pub scope: String,
  pub keys: Vec<KeyInput>,
  pub tokens: f64,
  pub hold_id: String,
  pub moment: Moment,
  pub options: Options,
  pub keep_ms: u64,
}

/// One call on hold `hold_id` of key `key` (a pause names no hold).
pub struct QuotaSettle {
  pub settle: Settle,
  pub scope: String,
  pub key: String,
  pub hold_id: String,
  pub moment: Moment,
  pub options: Options,
  pub keep_ms: u64,
}

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

fn flag(b: bool) -> &'static str {
  if b {
    "1"
  } else {
    "0"
  }
}

/// The script's ARGV (see its header): the call's own fields, then the moment, the options,
/// `keep` and the keys.
#[allow(clippy::too_many_arguments)]
fn script_args(
  op: &str,
  scope: &str,
  tokens: f64,
  hold_id: &str,
  hold_key: &str,
  // commit's tokens, or pause's end.
  amount: Option<f64>,
  m: &Moment,
  o: &Options,
  keep_ms: u64,
  keys: &[KeyInput],
) -> Vec<String> {
  let mut a = Vec::with_capacity(18 + keys.len() * 9);
  a.extend([
    op.to_owned(),
    scope.to_owned(),
    arg(Some(tokens)),
    hold_id.to_owned(),
    hold_key.to_owned(),
    arg(amount),
    arg(Some(m.now)),
    m.day.clone(),
    arg(Some(m.reset_at)),
    arg(Some(o.window_ms)),
    arg(Some(o.buffer_ms)),
    arg(Some(o.threshold_pct)),
    flag(o.strict_tpm).into(),
    arg(o.hold_ttl_ms),
    flag(o.monotonic).into(),
    keep_ms.to_string(),
    flag(o.rpm_window).into(),
    keys.len().to_string(),
  ]);
  for k in keys {
    a.push(flag(k.id.is_some()).into());
    a.push(k.name.clone());
    for x in [k.rpm, k.tpm, k.rpd, k.tpd, k.priority] {
      a.push(arg(x));
    }
    a.push(flag(k.enabled).into());
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

fn bad_reply() -> StoreError {
  StoreError::Command("quota.lua returned an unexpected reply".into())
}

/// quota.lua's reply to a check, reserve or force, as the engine's `Decision`.
fn decision_from(reply: Vec<String>, p: &QuotaPick) -> Result<Decision, StoreError> {
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
  let mut checks = Vec::with_capacity(count.min(p.keys.len()));
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
    let tpm = p.keys.get(i).map_or(1.0, |k| quota::pos(k.tpm, 1.0));
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
  let hold = match (p.pick, ok, key) {
    (Pick::Reserve | Pick::Force, true, Some(i)) => {
      let id = next()?;
      let at = number(next()?)?.unwrap_or(p.moment.now);
      let prev_at = number(next()?)?;
      let prev_id = next()?.strip_prefix('i').map(str::to_owned);
      Some(Hold {
        id,
        scope: p.scope.clone(),
        key: p.keys.get(i).ok_or_else(bad_reply)?.name.clone(),
        tokens,
        at,
        day: p.moment.day.clone(),
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

impl RedisStore {
  /// One run of quota.lua on the scope's keys under `prefix`.
  async fn quota(
    &self,
    prefix: &str,
    scope: &str,
    args: Vec<String>,
  ) -> Result<redis::Value, StoreError> {
    let base = quota_base(prefix, scope);
    let mut inv = scripts::QUOTA.prepare_invoke();
    for part in QUOTA_KEYS {
      inv.key(format!("{base}{part}"));
    }
    for a in &args {
      inv.arg(a);
    }
    self.run(inv).await
  }

  /// A check, reserve or force on the scope of `p` under `prefix`: the engine's decision.
  pub async fn quota_pick(&self, prefix: &str, p: &QuotaPick) -> Result<Decision, StoreError> {
    let op = match p.pick {
      Pick::Check => "check",
      Pick::Reserve => "reserve",
      Pick::Force => "force",
    };
    let args = script_args(
      op, &p.scope, p.tokens, &p.hold_id, "", None, &p.moment, &p.options, p.keep_ms, &p.keys,
    );
    let reply = self.quota(prefix, &p.scope, args).await?;
    let strings: Vec<String> =
      redis::FromRedisValue::from_redis_value(reply).map_err(|_| bad_reply())?;
    decision_from(strings, p)
  }

  /// A commit, rollback or pause on the scope of `s` under `prefix`: true when it applied
  /// (the hold was there; the pause's end is a time).
  pub async fn quota_settle(&self, prefix: &str, s: &QuotaSettle) -> Result<bool, StoreError> {
    let (op, amount) = match s.settle {
      Settle::Commit { tokens } => ("commit", tokens),
      Settle::Rollback => ("rollback", None),
      Settle::Pause { until } => ("pause", Some(until)),
    };
    let args = script_args(
      op,
      &s.scope,
      f64::NAN,
      &s.hold_id,
      &s.key,
      amount,
      &s.moment,
      &s.options,
      s.keep_ms,
      &[],
    );
    let reply = self.quota(prefix, &s.scope, args).await?;
    Ok(matches!(reply, redis::Value::Int(1)))
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn key(name: &str, tpm: Option<f64>) -> KeyInput {
    KeyInput {
      id: Some(name.into()),
      name: name.into(),
      rpm: Some(60.0),
      tpm,
      rpd: Some(1000.0),
      tpd: None,
      priority: None,
      enabled: true,
      rank: 0,
    }
  }

  fn pick(p: Pick) -> QuotaPick {
    QuotaPick {
      pick: p,
      scope: "s".into(),
      keys: vec![key("a", Some(100.0)), key("b", None)],
      tokens: 10.0,
      hold_id: "h1".into(),
      moment: Moment {
        now: 1000.0,
        day: "2026-01-01".into(),
        reset_at: 86_400_000.0,
      },
      options: Options::new(None, None, None),
      keep_ms: 5,
    }
  }

  fn strings(x: &[&str]) -> Vec<String> {
    x.iter().map(|s| s.to_string()).collect()
  }

  #[test]
  fn numbers_are_exact_text_and_not_a_number_is_empty() {
    assert_eq!(arg(Some(0.1)), "0.1");
    assert_eq!(arg(Some(3.0)), "3.0");
    assert_eq!(arg(Some(f64::NAN)), "");
    assert_eq!(arg(Some(f64::INFINITY)), "inf");
    assert_eq!(arg(Some(f64::NEG_INFINITY)), "-inf");
    assert_eq!(arg(None), "");
  }

  #[test]
  fn argv_follows_the_script_header() {
    let p = pick(Pick::Reserve);
    let a = script_args(
      "reserve", &p.scope, p.tokens, &p.hold_id, "", None, &p.moment, &p.options, 5, &p.keys,
    );
    assert_eq!(
      &a[..9],
      &strings(&[
        "reserve",
        "s",
        "10.0",
        "h1",
        "",
        "",
        "1000.0",
        "2026-01-01",
        "86400000.0"
      ])
    );
    assert_eq!(&a[15..18], &strings(&["5", "0", "2"]));
    assert_eq!(
      &a[18..27],
      &strings(&["1", "a", "60.0", "100.0", "1000.0", "", "", "1", "0"])
    );
    assert_eq!(a.len(), 18 + 2 * 9);
  }

  #[test]
  fn a_reserve_reply_becomes_the_engines_decision() {
    let p = pick(Pick::Reserve);
    let check = |k: &str, ok: &str, reason: &str, wait: &str, used: &str| {
      strings(&[k, ok, reason, wait, "0", "0", "0", used, "1", "1000", "999"])
    };
    let mut reply = strings(&["1", "1", "", "10", "0", "2"]);
    reply.extend(check("a", "0", "tpm", "500", "95"));
    reply.extend(check("b", "1", "", "0", "0"));
    reply.extend(strings(&["h1", "1000", "", "iprev"]));
    let d = decision_from(reply, &p).unwrap();
    assert!(d.ok);
    assert_eq!(d.key, Some(1));
    assert_eq!(d.checks[0].reason, Some(Reason::Tpm));
    assert_eq!(d.checks[0].wait_ms, Some(500.0));
    assert_eq!(d.checks[0].token_pct, 0.95);
    // A key without a tpm divides by 1, as the engine does.
    assert_eq!(d.checks[1].token_pct, 0.0);
    assert_eq!(d.checks[1].daily_pct, 0.001);
    let h = d.hold.unwrap();
    assert_eq!((h.key.as_str(), h.at, h.prev_at), ("b", 1000.0, None));
    assert_eq!(h.prev_id.as_deref(), Some("prev"));
    assert_eq!(h.day, "2026-01-01");
  }

  #[test]
  fn a_short_or_garbled_reply_is_a_store_error() {
    let p = pick(Pick::Check);
    assert_eq!(decision_from(strings(&["1", "0"]), &p), Err(bad_reply()));
    assert_eq!(
      decision_from(strings(&["1", "x", "", "10", "", "0"]), &p),
      Err(bad_reply())
    );
  }
}
