//! The straightforward model the engine is checked against (tests only): the quota engine as it
//! was first written, one list of hits and one of holds per key, each scanned, pruned and
//! summed whole on every call, exactly as rate-budget does. `tests::properties` runs random
//! sequences through both and asserts identical decisions, waits, counters and states.
//! One deliberate change from rate-budget, made in both: a hold's commit and rollback touch its
//! own hit (rate-budget finds hits by hold id, so with a reused id a commit charged the oldest
//! hit of that id and a rollback removed every one, other requests' tokens included).

use super::{
  cooldown_ms, daily_cap, int, non_neg, pick, pos, ratio, token_wait_ms, Decision, Hit, Hold,
  KeyCheck, KeyInput, Moment, Options, Reason,
};

/// A key's stored state within a scope.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct KeyState {
  pub day: String,
  /// Requests counted for `day`.
  pub used: f64,
  /// Tokens counted for `day` (for `tpd`).
  pub day_tokens: f64,
  /// Each hit with its number.
  pub hits: Vec<(u64, Hit)>,
  pub next: u64,
  /// Each reservation not rolled back, with its number and time (RPM as a window).
  pub requests: Vec<(u64, f64)>,
  /// In insertion order, like the JS object rate-budget keeps; each with its hit's number.
  pub holds: Vec<(Hold, u64)>,
  pub last_at: Option<f64>,
  pub last_id: Option<String>,
}

/// A scope's stored state: its keys in insertion order.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct QuotaState {
  pub keys: Vec<(String, KeyState)>,
}

impl QuotaState {
  fn key_mut(&mut self, name: &str) -> Option<&mut KeyState> {
    self
      .keys
      .iter_mut()
      .find(|(n, _)| n == name)
      .map(|(_, k)| k)
  }

  fn entry(&mut self, name: &str, day: &str) -> &mut KeyState {
    if let Some(i) = self.keys.iter().position(|(n, _)| n == name) {
      return &mut self.keys[i].1;
    }
    let fresh = KeyState {
      day: day.to_owned(),
      ..KeyState::default()
    };
    self.keys.push((name.to_owned(), fresh));
    &mut self.keys.last_mut().expect("just pushed").1
  }
}

/// Rolls expired holds back (only with `hold_ttl_ms`).
fn expire_holds(state: &mut QuotaState, opts: &Options, now: f64) {
  let Some(ttl) = opts.hold_ttl_ms else { return };
  for (_, ks) in state.keys.iter_mut() {
    let expired: Vec<(Hold, u64)> = ks
      .holds
      .iter()
      .filter(|(h, _)| h.at + ttl <= now)
      .cloned()
      .collect();
    for (hold, hit) in expired {
      roll_back(ks, &hold, hit);
    }
  }
}

/// Evaluates one key (rate-budget's `checkKey`), normalising its state on the way.
fn check_key(
  state: &mut QuotaState,
  key: &KeyInput,
  tokens: f64,
  m: &Moment,
  o: &Options,
) -> KeyCheck {
  let rpm = pos(key.rpm, 1.0);
  let tpm = pos(key.tpm, 1.0);
  let priority = int(key.priority.or(Some(0.0)), 0.0);
  let ks = state.entry(&key.name, &m.day);
  ks.used = non_neg(Some(ks.used), 0.0);
  if ks.day != m.day {
    ks.day = m.day.clone();
    ks.used = 0.0;
    ks.day_tokens = 0.0;
  }
  let (now, window) = (m.now, o.window_ms);
  ks.hits.retain(|(_, h)| {
    h.at.is_finite() && now - window <= h.at && h.at <= now && non_neg(Some(h.tokens), 0.0) > 0.0
  });
  ks.requests
    .retain(|&(_, at)| now - window <= at && at <= now);

  let cap = daily_cap(key.rpd, Some(o.threshold_pct));
  // A fold from +0 (`sum()` of no f64s is -0.0, which JavaScript would show as -0).
  let token_used = ks
    .hits
    .iter()
    .map(|(_, h)| non_neg(Some(h.tokens), 0.0))
    .fold(0.0, |a, b| a + b);
  let rpm_ms = if o.rpm_window {
    // The oldest requests leave until one more fits: when the one that makes room leaves.
    let mut times: Vec<f64> = ks.requests.iter().map(|&(_, at)| at).collect();
    times.sort_by(f64::total_cmp);
    let count = times.len() as f64;
    if count + 1.0 <= rpm {
      0.0
    } else {
      let at = times[(count + 1.0 - rpm) as usize - 1];
      let wait = (window - (now - at) + o.buffer_ms).max(0.0);
      if wait == 0.0 && o.strict_tpm {
        (window - (now - at) + 1.0).max(0.0)
      } else {
        wait
      }
    }
  } else {
    match ks.last_at {
      Some(last) => (cooldown_ms(Some(rpm), Some(o.buffer_ms), window) - (now - last)).max(0.0),
      None => 0.0,
    }
  };
  let plain: Vec<Hit> = ks.hits.iter().map(|(_, h)| h.clone()).collect();
  let tpm_wait = |buffer_ms: f64| {
    token_wait_ms(
      Some(token_used),
      Some(tokens),
      Some(tpm),
      &plain,
      now,
      Some(window),
      Some(buffer_ms),
    )
  };
  let mut tpm_ms = tpm_wait(o.buffer_ms);
  if o.strict_tpm && tpm_ms == Some(0.0) && token_used + tokens > tpm {
    // With bufferMs 0, a hit exactly `window` old still counts (the window is inclusive) but
    // rate-budget's wait is 0, so it admits over TPM. Strict: wait the 1 ms until it leaves.
    tpm_ms = tpm_wait(1.0);
  }
  let daily_left = (cap - ks.used).max(0.0);
  let mut check = KeyCheck {
    key: key.name.clone(),
    ok: false,
    reason: None,
    wait_ms: None,
    priority,
    rpm_ms,
    tpm_ms,
    token_used,
    token_pct: token_used / tpm,
    daily_used: ks.used,
    daily_cap: cap,
    daily_left,
    daily_pct: ratio(ks.used, cap),
  };
  if !key.enabled {
    check.reason = Some(Reason::Off);
    return check;
  }
  let mut waits: Vec<(Reason, f64)> = Vec::new();
  if daily_left <= 0.0 {
    waits.push((Reason::Rpd, non_neg(Some(m.reset_at - now), 0.0).max(0.0)));
  }
  if let Some(tpd) = key.tpd {
    if ks.day_tokens + tokens > pos(Some(tpd), 1.0) {
      waits.push((Reason::Tpd, non_neg(Some(m.reset_at - now), 0.0).max(0.0)));
    }
  }
  if rpm_ms > 0.0 {
    waits.push((Reason::Rpm, rpm_ms));
  }
  match tpm_ms {
    None => {
      check.reason = Some(Reason::Tpm);
      return check;
    }
    Some(w) if w > 0.0 => waits.push((Reason::Tpm, w)),
    Some(_) => {}
  }
  // The longest wait decides; ties keep the earlier reason (rpd, tpd, rpm, tpm).
  let block = waits
    .into_iter()
    .fold(None::<(Reason, f64)>, |best, w| match best {
      Some(b) if b.1 >= w.1 => Some(b),
      _ => Some(w),
    });
  match block {
    None => {
      check.ok = true;
      check.wait_ms = Some(0.0);
    }
    Some((reason, wait)) => {
      check.reason = Some(reason);
      check.wait_ms = Some(wait);
    }
  }
  check
}

/// rate-budget's `check`: evaluates every key and picks one, creating no hold. It still
/// normalises state (creates key entries, prunes hits, rolls the day), as rate-budget does.
pub fn check(
  state: &mut QuotaState,
  keys: &[KeyInput],
  tokens: f64,
  m: &Moment,
  o: &Options,
) -> Decision {
  let m = &effective(state, m, o);
  expire_holds(state, o, m.now);
  let checks = keys
    .iter()
    .map(|k| check_key(state, k, tokens, m, o))
    .collect();
  pick(checks, keys, tokens)
}

/// The moment a request happens at: its own, or with `monotonic`, never before the scope's
/// latest reservation.
fn effective(state: &QuotaState, m: &Moment, o: &Options) -> Moment {
  let latest = state
    .keys
    .iter()
    .filter_map(|(_, k)| k.last_at)
    .fold(f64::NEG_INFINITY, f64::max);
  if o.monotonic && latest > m.now {
    Moment {
      now: latest,
      ..m.clone()
    }
  } else {
    m.clone()
  }
}

/// rate-budget's `reserve`: `check`, then on success a hold counted against RPM (`lastAt`),
/// TPM (a hit of `tokens`) and RPD (`used + 1`).
pub fn reserve(
  state: &mut QuotaState,
  scope: &str,
  keys: &[KeyInput],
  tokens: f64,
  hold_id: &str,
  m: &Moment,
  o: &Options,
) -> Decision {
  let mut d = check(state, keys, tokens, m, o);
  let Some(i) = d.key.filter(|_| d.ok) else {
    return d;
  };
  d.hold = Some(take(state, scope, &keys[i].name, tokens, hold_id, m, o));
  d
}

/// Records a reservation decided elsewhere — by an in-process twin while Redis was away — on
/// `key`, without checking its limits: the same tidying as `check`, then what `reserve` does
/// once it picked that key. A reservation is never lost, even when it no longer fits.
pub fn force(
  state: &mut QuotaState,
  scope: &str,
  key: &KeyInput,
  tokens: f64,
  hold_id: &str,
  m: &Moment,
  o: &Options,
) -> Decision {
  let mut d = check(state, std::slice::from_ref(key), tokens, m, o);
  d.ok = true;
  d.key = Some(0);
  d.reason = None;
  d.wait_ms = Some(0.0);
  d.hold = Some(take(state, scope, &key.name, tokens, hold_id, m, o));
  d
}

/// Counts one request and `tokens` on key `name` and holds them (at the scope's effective time).
fn take(
  state: &mut QuotaState,
  scope: &str,
  name: &str,
  tokens: f64,
  hold_id: &str,
  m: &Moment,
  o: &Options,
) -> Hold {
  let m = &effective(state, m, o);
  let name = name.to_owned();
  let ks = state.entry(&name, &m.day);
  let hold = Hold {
    id: hold_id.to_owned(),
    scope: scope.to_owned(),
    key: name,
    tokens,
    at: m.now,
    day: m.day.clone(),
    prev_at: ks.last_at,
    prev_id: ks.last_id.clone(),
  };
  ks.used += 1.0;
  ks.day_tokens += tokens;
  ks.last_at = Some(m.now);
  ks.last_id = Some(hold.id.clone());
  let seq = ks.next;
  ks.next += 1;
  ks.requests.push((seq, m.now));
  ks.hits.push((
    seq,
    Hit {
      id: hold.id.clone(),
      at: m.now,
      tokens,
    },
  ));
  match ks.holds.iter_mut().find(|(h, _)| h.id == hold.id) {
    Some(same) => *same = (hold.clone(), seq),
    None => ks.holds.push((hold.clone(), seq)),
  }
  hold
}

/// rate-budget's `commit`: the hold's hit takes the real token count (`None`: keep the
/// estimate) and the hold is released. False when there is no such hold.
pub fn commit(
  state: &mut QuotaState,
  key: &str,
  hold_id: &str,
  tokens: Option<f64>,
  now: f64,
  o: &Options,
) -> bool {
  expire_holds(state, o, now);
  let Some(ks) = state.key_mut(key) else {
    return false;
  };
  let Some(pos) = ks.holds.iter().position(|(h, _)| h.id == hold_id) else {
    return false;
  };
  if let Some(t) = tokens {
    let (estimate, seq) = (ks.holds[pos].0.tokens, ks.holds[pos].1);
    if let Some((_, hit)) = ks.hits.iter_mut().find(|(s, _)| *s == seq) {
      hit.tokens = t;
    }
    if ks.holds[pos].0.day == ks.day {
      ks.day_tokens = (ks.day_tokens - estimate + t).max(0.0);
    }
  }
  ks.holds.remove(pos);
  true
}

/// rate-budget's `rollback`: gives back the hit, the request of the day (same day only) and the
/// RPM spacing (when no later reservation exists). False when there is no such hold.
pub fn rollback(state: &mut QuotaState, key: &str, hold_id: &str, now: f64, o: &Options) -> bool {
  expire_holds(state, o, now);
  let Some(ks) = state.key_mut(key) else {
    return false;
  };
  let Some((hold, seq)) = ks.holds.iter().find(|(h, _)| h.id == hold_id).cloned() else {
    return false;
  };
  roll_back(ks, &hold, seq);
  true
}

fn roll_back(ks: &mut KeyState, hold: &Hold, seq: u64) {
  ks.hits.retain(|(s, _)| *s != seq);
  ks.requests.retain(|(s, _)| *s != seq);
  if ks.day == hold.day {
    ks.used = (ks.used - 1.0).max(0.0);
    ks.day_tokens = (ks.day_tokens - hold.tokens).max(0.0);
  }
  if ks.last_id.as_deref() == Some(hold.id.as_str()) {
    ks.last_at = hold.prev_at;
    ks.last_id = hold.prev_id.clone();
  }
  ks.holds.retain(|(h, _)| h.id != hold.id);
}
