//! The multi-key quota engine behind `Quota` (rate-budget's API): for each request, pick the
//! API key of a scope that has RPM, TPM and RPD headroom, reserve on it, then commit the real
//! token count or roll back.
//!
//! The numbers match rate-budget exactly, including how it
//! sanitises bad numbers: every number is an `f64` handled in the same order of operations as
//! JavaScript. Two things come from the caller because JavaScript decides them: the UTC day
//! bucket and the next reset time (`dayKey(now)`, `resetAt(now)` may be user functions), and
//! each key's rank in `localeCompare` order (the last tie-break).
//!
//! Per key, three limits:
//! - RPM as spacing: `ceil(windowMs / rpm) + bufferMs` between two reservations;
//! - TPM as a sliding window of reserved token "hits", inclusive at both ends;
//! - RPD as a counter per day bucket, capped at `ceil(rpd * (thresholdPct / 100))`.
//!
//! Beyond rate-budget (each one off unless its option is set): holds that expire and roll
//! back by themselves (`hold_ttl_ms`), a tokens-per-day limit (`tpd`), `strict_tpm`, which
//! never admits a request over TPM when `bufferMs` is 0, and `rpm_window`: RPM as at most `rpm`
//! reservations in any window (what providers enforce) instead of rate-budget's spacing.
//!
//! Cost: every call costs the same however many requests the TPM window holds (amortised
//! O(1), O(log n) for the holds' expiry and a refused request's TPM wait; see [`window`] and
//! [`holds`]). rate-budget keeps one list of hits per key and scans, prunes and sums it whole
//! on every call; `reference` (tests only) keeps that model, and a property test proves the
//! two decide alike. A scope holds its keys' counters, the hits of the last window and the
//! outstanding holds, nothing more.

mod holds;
#[cfg(test)]
mod reference;
pub mod window;

pub use holds::Holds;
pub use window::{Hit, HitRef, Lane, TokenWindow};

/// `v` if finite, else `fb` (rate-budget's `finite`).
pub fn finite(v: Option<f64>, fb: f64) -> f64 {
  match v {
    Some(x) if x.is_finite() => x,
    _ => fb,
  }
}

/// Floor of `finite(v, fb)`.
pub fn int(v: Option<f64>, fb: f64) -> f64 {
  finite(v, fb).floor()
}

/// Floor, at least 1.
pub fn pos(v: Option<f64>, fb: f64) -> f64 {
  int(v, fb).max(1.0)
}

/// Floor, at least 0.
pub fn non_neg(v: Option<f64>, fb: f64) -> f64 {
  int(v, fb).max(0.0)
}

/// Clamped to [0, 100], not floored.
pub fn pct(v: Option<f64>, fb: f64) -> f64 {
  finite(v, fb).clamp(0.0, 100.0)
}

/// `used / limit`, or 1 when the limit is 0 or less (rate-budget's `ratio`).
pub fn ratio(used: f64, limit: f64) -> f64 {
  if limit <= 0.0 {
    1.0
  } else {
    used / limit
  }
}

pub const WINDOW_MS: f64 = 60_000.0;
pub const BUFFER_MS: f64 = 1_000.0;
pub const THRESHOLD_PCT: f64 = 100.0;

/// Spacing between two reservations on a key: `ceil(windowMs / pos(rpm)) + nonNeg(bufferMs)`.
/// `window_ms` is used as given (the `Quota` passes its sanitised value).
pub fn cooldown_ms(rpm: Option<f64>, buffer_ms: Option<f64>, window_ms: f64) -> f64 {
  (window_ms / pos(rpm, 1.0)).ceil() + non_neg(buffer_ms, 0.0)
}

/// Requests allowed per day: `ceil(pos(rpd) * (pct(thresholdPct) / 100))`, in that order of
/// floating-point operations (so `dailyCap(100, 7)` is 8, as in rate-budget).
pub fn daily_cap(rpd: Option<f64>, threshold_pct: Option<f64>) -> f64 {
  (pos(rpd, 1.0) * (pct(threshold_pct, THRESHOLD_PCT) / 100.0)).ceil()
}

/// Milliseconds until `tokens` more fit under `limit`, or `None` when they never can
/// (rate-budget's `tokenWaitMs`). `hits` are not pruned here.
pub fn token_wait_ms(
  used: Option<f64>,
  tokens: Option<f64>,
  limit: Option<f64>,
  hits: &[Hit],
  now: f64,
  window_ms: Option<f64>,
  buffer_ms: Option<f64>,
) -> Option<f64> {
  let limit = pos(limit, 1.0);
  let tokens = non_neg(tokens, 0.0);
  let used = non_neg(used, 0.0);
  let window_ms = pos(Some(window_ms.unwrap_or(WINDOW_MS)), WINDOW_MS);
  let buffer_ms = non_neg(Some(buffer_ms.unwrap_or(BUFFER_MS)), BUFFER_MS);
  if tokens > limit {
    return None;
  }
  let mut projected = used + tokens;
  if projected <= limit {
    return Some(0.0);
  }
  let mut sorted: Vec<&Hit> = hits.iter().collect();
  sorted.sort_by(|a, b| a.at.partial_cmp(&b.at).unwrap_or(std::cmp::Ordering::Equal));
  for hit in sorted {
    projected -= non_neg(Some(hit.tokens), 0.0);
    if projected <= limit {
      return Some((window_ms - (now - hit.at) + buffer_ms).max(0.0));
    }
  }
  Some(window_ms + buffer_ms)
}

/// The `Quota`'s options, sanitised as rate-budget does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Options {
  pub window_ms: f64,
  pub buffer_ms: f64,
  pub threshold_pct: f64,
  /// Never admit over TPM, also when `buffer_ms` is 0 (rate-budget admits at the window edge).
  pub strict_tpm: bool,
  /// RPM as a sliding window: at most `rpm` reservations in the last `window_ms` (the strict
  /// rule applies as for TPM). rate-budget spaces reservations `windowMs / rpm + bufferMs`
  /// apart instead, which with its default 1 s buffer gives far fewer than `rpm` a minute.
  pub rpm_window: bool,
  /// Uncommitted holds roll back by themselves after this long (rate-budget: never).
  pub hold_ttl_ms: Option<f64>,
  /// Time never goes backwards within a scope: a request whose clock is behind the scope's
  /// latest reservation is taken as happening at that reservation. rate-budget instead drops
  /// "future" hits, so with several processes (clocks read before the round trip) it forgets
  /// reservations and over-admits.
  pub monotonic: bool,
}

impl Options {
  /// From raw option values (`None` for undefined or null).
  pub fn new(window_ms: Option<f64>, buffer_ms: Option<f64>, threshold_pct: Option<f64>) -> Self {
    Options {
      window_ms: pos(Some(window_ms.unwrap_or(WINDOW_MS)), WINDOW_MS),
      buffer_ms: non_neg(Some(buffer_ms.unwrap_or(BUFFER_MS)), BUFFER_MS),
      threshold_pct: pct(Some(threshold_pct.unwrap_or(THRESHOLD_PCT)), THRESHOLD_PCT),
      strict_tpm: false,
      rpm_window: false,
      hold_ttl_ms: None,
      monotonic: false,
    }
  }
}

/// One key as the caller passed it, with raw numbers (`None` for a non-number).
#[derive(Clone, Debug, PartialEq)]
pub struct KeyInput {
  /// The id when it is a string; `None` otherwise (rate-budget then answers `no_key`).
  pub id: Option<String>,
  /// `String(key.id)`: the state entry's name (`"undefined"` for a missing id).
  pub name: String,
  pub rpm: Option<f64>,
  pub tpm: Option<f64>,
  pub rpd: Option<f64>,
  /// Tokens per day (tollgate's addition); `None` for no limit.
  pub tpd: Option<f64>,
  pub priority: Option<f64>,
  pub enabled: bool,
  /// Position of `name` in `localeCompare` order among the keys of this call.
  pub rank: u32,
}

/// An outstanding reservation.
#[derive(Clone, Debug, PartialEq)]
pub struct Hold {
  pub id: String,
  pub scope: String,
  pub key: String,
  pub tokens: f64,
  pub at: f64,
  pub day: String,
  pub prev_at: Option<f64>,
  pub prev_id: Option<String>,
}

/// A key's stored state within a scope.
#[derive(Clone, Debug, Default)]
pub struct KeyState {
  pub day: String,
  /// Requests counted for `day`.
  pub used: f64,
  /// Tokens counted for `day` (for `tpd`).
  pub day_tokens: f64,
  /// The TPM window's hits.
  pub window: TokenWindow,
  pub holds: Holds,
  pub last_at: Option<f64>,
  pub last_id: Option<String>,
  /// Until when (ms, the callers' clock) the provider said this key is exhausted
  /// ([`pause`]): no call is routed to it before then (tollgate's addition).
  pub paused_until: Option<f64>,
}

impl KeyState {
  /// The hits in the window, oldest first (rate-budget's `hits`).
  pub fn hits(&self) -> Vec<Hit> {
    self.window.hits()
  }
}

/// A scope's stored state: its keys in insertion order.
#[derive(Clone, Debug, Default)]
pub struct QuotaState {
  pub keys: Vec<(String, KeyState)>,
}

impl QuotaState {
  pub fn key(&self, name: &str) -> Option<&KeyState> {
    self.keys.iter().find(|(n, _)| n == name).map(|(_, k)| k)
  }

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
    // A scope has a few keys, and a key's state is a few hundred bytes: grow one at a time
    // (the default doubling would hold room for four from the first).
    self.keys.reserve_exact(1);
    self.keys.push((name.to_owned(), fresh));
    &mut self.keys.last_mut().expect("just pushed").1
  }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
  Rpm,
  Tpm,
  Rpd,
  Tpd,
  Off,
  NoKey,
  /// Paused ([`pause`]) until the provider's reset (tollgate's addition).
  Paused,
}

impl Reason {
  pub fn as_str(self) -> &'static str {
    match self {
      Reason::Rpm => "rpm",
      Reason::Tpm => "tpm",
      Reason::Rpd => "rpd",
      Reason::Tpd => "tpd",
      Reason::Off => "off",
      Reason::NoKey => "no_key",
      Reason::Paused => "paused",
    }
  }
}

/// One key's metrics and verdict (rate-budget's `KeyCheck`), before this request applies.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyCheck {
  pub key: String,
  pub ok: bool,
  pub reason: Option<Reason>,
  /// 0 when ok; `None` for `off` and for a request that can never fit.
  pub wait_ms: Option<f64>,
  pub priority: f64,
  pub rpm_ms: f64,
  pub tpm_ms: Option<f64>,
  pub token_used: f64,
  pub token_pct: f64,
  pub daily_used: f64,
  pub daily_cap: f64,
  pub daily_left: f64,
  pub daily_pct: f64,
}

/// The decision of `check` / `reserve`.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
  pub ok: bool,
  /// Index into the caller's key list of the chosen key.
  pub key: Option<usize>,
  pub reason: Option<Reason>,
  pub tokens: f64,
  pub wait_ms: Option<f64>,
  pub checks: Vec<KeyCheck>,
  pub hold: Option<Hold>,
}

/// What one call knows besides the state: the clock and what JavaScript computed from it.
#[derive(Clone, Debug, PartialEq)]
pub struct Moment {
  pub now: f64,
  /// `dayKey(now)`.
  pub day: String,
  /// `resetAt(now)`.
  pub reset_at: f64,
}

/// Rolls expired holds back (only with `hold_ttl_ms`).
fn expire_holds(state: &mut QuotaState, opts: &Options, now: f64) {
  let Some(ttl) = opts.hold_ttl_ms else { return };
  for (_, ks) in state.keys.iter_mut() {
    for (hold, hit) in ks.holds.expired(now, ttl) {
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
  // rate-budget's prune: hits outside `[now - window, now]` and hits of 0 tokens leave.
  ks.window.begin_check();
  ks.window.prune(now, window);

  let cap = daily_cap(key.rpd, Some(o.threshold_pct));
  let token_used = ks.window.total();
  let rpm_ms = if o.rpm_window {
    let waits = ks
      .window
      .wait_ms(Lane::Requests, 1.0, rpm, now, window, [o.buffer_ms, 1.0]);
    match waits {
      Some([0.0, _]) if o.strict_tpm && ks.window.requests() + 1.0 > rpm => {
        waits.map_or(0.0, |w| w[1])
      }
      Some([w, _]) => w,
      None => 0.0, // rpm is at least 1: one request always fits an empty window
    }
  } else {
    match ks.last_at {
      Some(last) => (cooldown_ms(Some(rpm), Some(o.buffer_ms), window) - (now - last)).max(0.0),
      None => 0.0,
    }
  };
  // The wait with the buffer, and with 1 ms for `strict_tpm`: with bufferMs 0, a hit exactly
  // `window` old still counts (the window is inclusive) but rate-budget's wait is 0, so it
  // admits over TPM. Strict: wait the 1 ms until it leaves.
  let waits = ks.window.wait_ms(
    Lane::Tokens,
    non_neg(Some(tokens), 0.0),
    tpm,
    now,
    window,
    [o.buffer_ms, 1.0],
  );
  let mut tpm_ms = waits.map(|w| w[0]);
  if o.strict_tpm && tpm_ms == Some(0.0) && token_used + tokens > tpm {
    tpm_ms = waits.map(|w| w[1]);
  }
  let daily_left = (cap - ks.used).max(0.0);
  let paused_until = ks.paused_until;
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
  if let Some(until) = paused_until {
    if until > now {
      waits.push((Reason::Paused, until - now));
    }
  }
  // The longest wait decides; ties keep the earlier reason (rpd, tpd, rpm, tpm, paused).
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

/// Chooses among the checks (rate-budget's `pick`): the best ok key, else the blocked key
/// that frees soonest, else the first blocked one, else `no_key`.
pub(crate) fn pick(checks: Vec<KeyCheck>, keys: &[KeyInput], tokens: f64) -> Decision {
  let mut ok: Vec<usize> = (0..checks.len()).filter(|&i| checks[i].ok).collect();
  ok.sort_by(|&a, &b| {
    let (x, y) = (&checks[a], &checks[b]);
    y.priority
      .partial_cmp(&x.priority)
      .unwrap_or(std::cmp::Ordering::Equal)
      .then(
        x.token_pct
          .partial_cmp(&y.token_pct)
          .unwrap_or(std::cmp::Ordering::Equal),
      )
      .then(
        x.daily_pct
          .partial_cmp(&y.daily_pct)
          .unwrap_or(std::cmp::Ordering::Equal),
      )
      .then(keys[a].rank.cmp(&keys[b].rank))
  });
  if let Some(&best) = ok.first() {
    // rate-budget looks the key up by its raw id: a non-string id is never found, and the
    // answer then comes from the blocked keys alone (`no_key` when there are none).
    let name = &checks[best].key;
    if let Some(found) = keys
      .iter()
      .position(|k| k.id.as_deref() == Some(name.as_str()))
    {
      return Decision {
        ok: true,
        key: Some(found),
        reason: None,
        tokens,
        wait_ms: Some(0.0),
        checks,
        hold: None,
      };
    }
  }
  let blocked = checks.iter().filter(|c| !c.ok);
  let soonest =
    blocked
      .clone()
      .filter(|c| c.wait_ms.is_some())
      .fold(None::<&KeyCheck>, |best, c| match best {
        Some(b) if b.wait_ms <= c.wait_ms => Some(b),
        _ => Some(c),
      });
  let chosen = soonest.or_else(|| blocked.clone().next());
  let (reason, wait_ms) = match chosen {
    Some(c) => (c.reason, c.wait_ms),
    None => (Some(Reason::NoKey), None),
  };
  Decision {
    ok: false,
    key: None,
    reason,
    tokens,
    wait_ms,
    checks,
    hold: None,
  }
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
  let hit = ks.window.push(&hold.id, m.now, tokens);
  ks.holds.insert(&hold, hit);
  hold
}

/// rate-budget's `commit` (on the hold's own hit: rate-budget charges the oldest hit with the
/// hold's id, another request's when ids repeat): the hold's hit takes the real token count (`None`: keep the
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
  let Some((hold, hit)) = ks.holds.remove(hold_id) else {
    return false;
  };
  if let Some(t) = tokens {
    ks.window.set_tokens(hit, t);
    if hold.day == ks.day {
      ks.day_tokens = (ks.day_tokens - hold.tokens + t).max(0.0);
    }
  }
  true
}

/// Marks `key` exhausted until `until` (the provider's reset, on the callers' clock): checks
/// refuse it with `paused` and the wait until then, whatever its own counters say. A later
/// mark never shortens an earlier one. Tollgate's addition, for provider feedback shared by
/// every process of a store.
pub fn pause(state: &mut QuotaState, key: &str, until: f64, m: &Moment, o: &Options) -> bool {
  if !until.is_finite() {
    return false;
  }
  expire_holds(state, o, m.now);
  let ks = state.entry(key, &m.day);
  ks.paused_until = Some(ks.paused_until.map_or(until, |u| u.max(until)));
  true
}

/// rate-budget's `rollback` (of the hold's own hit: rate-budget removes every hit with the hold's
/// id, other requests' tokens too when ids repeat): gives back the hit, the request of the day (same day only) and the
/// RPM spacing (when no later reservation exists). False when there is no such hold.
pub fn rollback(state: &mut QuotaState, key: &str, hold_id: &str, now: f64, o: &Options) -> bool {
  expire_holds(state, o, now);
  let Some(ks) = state.key_mut(key) else {
    return false;
  };
  let Some((hold, hit)) = ks.holds.get(hold_id).map(|(h, hit)| (h.clone(), hit)) else {
    return false;
  };
  roll_back(ks, &hold, hit);
  true
}

fn roll_back(ks: &mut KeyState, hold: &Hold, hit: HitRef) {
  ks.window.remove(hit);
  if ks.day == hold.day {
    ks.used = (ks.used - 1.0).max(0.0);
    ks.day_tokens = (ks.day_tokens - hold.tokens).max(0.0);
  }
  if ks.last_id.as_deref() == Some(hold.id.as_str()) {
    ks.last_at = hold.prev_at;
    ks.last_id = hold.prev_id.clone();
  }
  ks.holds.remove(&hold.id);
}

#[cfg(test)]
mod tests;
