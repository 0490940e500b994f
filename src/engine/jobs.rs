//! The limits behind `createLLMRateLimiter` (lib/jobs/): per model, requests and tokens per
//! minute and per UTC day in fixed windows aligned to the epoch, and a concurrency cap.
//!
//! A job reserves its estimate in the current windows before it runs ([`ModelState::reserve`])
//! and settles its real usage when it ends ([`ModelState::settle`]), window-aware: while the
//! window it reserved in is still current the difference is refunded or added; once that
//! window has ended nothing is refunded and only usage above the estimate counts in the new
//! one. Minute and day windows are judged separately.
//!
//! The Redis backend runs the same steps in `store/redis/scripts/jobs.lua` over one hash per
//! model, so the global limit holds exactly for any number of processes. Also here: the fair
//! share of a global limit per instance (reported, not enforced), the per-(model, job type)
//! slot count of the reference, and the job-type ratio adjustment.
//!
//! ```
//! use tollgate::engine::jobs::{Limits, ModelState, Usage};
//! let limits = Limits { tpm: 100, ..Limits::default() };
//! let mut m = ModelState::default();
//! let est = Usage { tokens: 60, requests: 1 };
//! let grant = m.reserve(limits, 0, est).unwrap();
//! assert!(m.reserve(limits, 1, est).is_err()); // 60 + 60 > 100
//! m.settle(0, grant, est, Usage { tokens: 10, requests: 1 }, true); // used 10, not 60
//! assert_eq!(m.minute.tokens, 10);
//! ```

pub const MINUTE_MS: u64 = 60_000;
pub const DAY_MS: u64 = 86_400_000;

/// A model's limits; 0 means "not enforced".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
  pub rpm: u64,
  pub rpd: u64,
  pub tpm: u64,
  pub tpd: u64,
  pub concurrency: u64,
}

impl Limits {
  /// `est` exceeds one of the limits by itself: no window will ever admit it.
  pub fn never_fits(&self, est: Usage) -> bool {
    let over = |e: u64, limit: u64| limit > 0 && e > limit;
    over(est.tokens, self.tpm)
      || over(est.tokens, self.tpd)
      || over(est.requests, self.rpm)
      || over(est.requests, self.rpd)
  }
}

/// Tokens and requests: an estimate or an actual usage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
  pub tokens: u64,
  pub requests: u64,
}

/// One fixed window's counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
  pub start: u64,
  pub tokens: u64,
  pub requests: u64,
}

impl Window {
  /// Moves to the window starting at `start` when it is a later one. A window never goes back:
  /// a call whose clock reads an earlier window (a clock stepped back, a release sent again
  /// later with the time it was first made) counts in the newer window it finds, as jobs.lua
  /// does. Starting the earlier window afresh would forget what the newer one counted, and
  /// admit it again once the clock came back.
  fn roll(&mut self, start: u64) {
    if start > self.start {
      *self = Window {
        start,
        tokens: 0,
        requests: 0,
      };
    }
  }

  /// Applies a settled job to this window: within the reserved window the difference
  /// (refund or overage), in a later window only the overage.
  fn settle(&mut self, reserved_in: u64, est: Usage, actual: Usage) {
    if self.start == reserved_in {
      self.tokens = (self.tokens + actual.tokens).saturating_sub(est.tokens);
      self.requests = (self.requests + actual.requests).saturating_sub(est.requests);
    } else {
      self.tokens += actual.tokens.saturating_sub(est.tokens);
      self.requests += actual.requests.saturating_sub(est.requests);
    }
  }
}

/// Start of the minute / UTC day that holds `now`.
pub fn minute_start(now: u64) -> u64 {
  now - now % MINUTE_MS
}

pub fn day_start(now: u64) -> u64 {
  now - now % DAY_MS
}

/// What a reservation holds on to: the minute it was made in (the day follows from it).
pub type Grant = u64;

/// Why a reservation was refused, and when to try again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
  /// The estimate is above a configured limit: it can never fit.
  Never,
  /// Only the concurrency cap is full: wait for a job to end.
  Concurrency,
  /// A window is full: try again at `at` (the latest reset among the full windows).
  Until { at: u64 },
}

/// `count + est` fits `limit` (0 = no limit); a full window refuses even an estimate of 0.
fn fits(count: u64, est: u64, limit: u64) -> bool {
  limit == 0 || (count < limit && count + est <= limit)
}

/// A model's counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelState {
  pub minute: Window,
  pub day: Window,
  pub in_flight: u64,
}

impl ModelState {
  pub fn roll(&mut self, now: u64) {
    self.minute.roll(minute_start(now));
    self.day.roll(day_start(now));
  }

  /// The counts as of `now`, without moving the stored windows: looking must not change what
  /// a later call (whose clock may read earlier) decides.
  pub fn view(&self, now: u64) -> ModelState {
    let mut m = *self;
    m.roll(now);
    m
  }

  /// Reserves `est` in the current windows and one concurrency slot, or says why not.
  /// A refusal changes nothing, not even the windows' start (as jobs.lua writes only what it
  /// grants): a later call whose clock reads earlier finds the windows as they were.
  pub fn reserve(&mut self, l: Limits, now: u64, est: Usage) -> Result<Grant, Denied> {
    let mut m = self.view(now);
    check(l, now, est, &m.minute, &m.day, m.in_flight)?;
    m.minute.tokens += est.tokens;
    m.minute.requests += est.requests;
    m.day.tokens += est.tokens;
    m.day.requests += est.requests;
    m.in_flight += 1;
    *self = m;
    Ok(self.minute.start)
  }

  /// Settles a job reserved at `grant` with estimate `est`: counts `actual` instead,
  /// window-aware, and gives the concurrency slot back when `release`.
  pub fn settle(&mut self, now: u64, grant: Grant, est: Usage, actual: Usage, release: bool) {
    self.roll(now);
    self.minute.settle(grant, est, actual);
    self.day.settle(day_start(grant), est, actual);
    if release {
      self.in_flight = self.in_flight.saturating_sub(1);
    }
  }
}

/// The admission rule, shared with jobs.lua: every configured limit must fit.
pub fn check(
  l: Limits,
  now: u64,
  est: Usage,
  minute: &Window,
  day: &Window,
  in_flight: u64,
) -> Result<(), Denied> {
  if l.never_fits(est) {
    return Err(Denied::Never);
  }
  let minute_ok =
    fits(minute.tokens, est.tokens, l.tpm) && fits(minute.requests, est.requests, l.rpm);
  let day_ok = fits(day.tokens, est.tokens, l.tpd) && fits(day.requests, est.requests, l.rpd);
  // Full until the window in force ends: the newer one when the clock reads an earlier one.
  if !day_ok {
    return Err(Denied::Until {
      at: day.start.max(day_start(now)) + DAY_MS,
    });
  }
  if !minute_ok {
    return Err(Denied::Until {
      at: minute.start.max(minute_start(now)) + MINUTE_MS,
    });
  }
  if l.concurrency > 0 && in_flight >= l.concurrency {
    return Err(Denied::Concurrency);
  }
  Ok(())
}

/// The default patience on a model: until the next minute plus 5 s (6–65 s).
pub fn default_max_wait_ms(now: u64) -> u64 {
  let second = (now % MINUTE_MS) / 1000;
  (60 - second + 5) * 1000
}

/// A model's fair share per instance (informational: admission is global), as LLM Rate
/// Limiter's distributed mode computes it: `floor(max(0, limit − used) / instances)` per dimension, and
/// `total_slots = min(floor(concurrency / N), floor(share / average estimate) …)`, 100 when
/// nothing is configured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pool {
  pub total_slots: u64,
  pub tpm: u64,
  pub rpm: u64,
  pub tpd: u64,
  pub rpd: u64,
}

pub fn pool(l: Limits, minute: Usage, day: Usage, instances: u64, avg: Usage) -> Pool {
  let n = instances.max(1);
  let share = |limit: u64, used: u64| limit.saturating_sub(used) / n;
  let p = Pool {
    total_slots: 0,
    tpm: share(l.tpm, minute.tokens),
    rpm: share(l.rpm, minute.requests),
    tpd: share(l.tpd, day.tokens),
    rpd: share(l.rpd, day.requests),
  };
  let avg_t = avg.tokens.max(1);
  let avg_r = avg.requests.max(1);
  let candidates = [
    (l.concurrency > 0).then(|| l.concurrency / n),
    (l.tpm > 0).then(|| p.tpm / avg_t),
    (l.rpm > 0).then(|| p.rpm / avg_r),
    (l.tpd > 0).then(|| p.tpd / avg_t),
    (l.rpd > 0).then(|| p.rpd / avg_r),
  ];
  Pool {
    total_slots: candidates.into_iter().flatten().min().unwrap_or(100),
    ..p
  }
}

/// Slots of one job type on one model from a pool (LLM Rate Limiter's rule): the smallest of
/// `floor(pool × ratio / estimate)` over the dimensions where both are above 0, and
/// `floor(total_slots × ratio)`; at least `min_capacity`.
pub fn model_job_type_slots(p: Pool, ratio: f64, est: Usage, min_capacity: u64) -> u64 {
  let cand = |pool: u64, e: u64| {
    (pool > 0 && e > 0).then(|| (pool as f64 * ratio / e as f64).floor() as u64)
  };
  let best = [
    cand(p.tpm, est.tokens),
    cand(p.rpm, est.requests),
    cand(p.tpd, est.tokens),
    cand(p.rpd, est.requests),
    cand(p.total_slots, 1),
  ]
  .into_iter()
  .flatten()
  .min()
  .unwrap_or(0);
  best.max(min_capacity)
}

/// One job type as the ratio adjustment sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TypeLoad {
  pub ratio: f64,
  pub flexible: bool,
  /// in flight / allocated slots (0 when no slots).
  pub load: f64,
}

/// Ratio adjustment thresholds (the reference's defaults: 0.7, 0.3, 0.2, 0.01).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RatioConfig {
  pub high: f64,
  pub low: f64,
  pub max_adjustment: f64,
  pub min_ratio: f64,
}

/// Ratio adjustment (LLM Rate Limiter's rule): flexible types under `low` load give `min(ratio − min_ratio, max_adjustment) ×
/// (1 − load)`; flexible types above `high` share the total in proportion to their load;
/// then all ratios are normalised to sum to 1. Returns `None` when nothing changes.
pub fn adjust_ratios(types: &[TypeLoad], c: RatioConfig) -> Option<Vec<f64>> {
  let donor = |t: &TypeLoad| t.flexible && t.load < c.low && t.ratio > c.min_ratio;
  let receiver = |t: &TypeLoad| t.flexible && t.load > c.high;
  let receivers_load: f64 = types.iter().filter(|t| receiver(t)).map(|t| t.load).sum();
  if !types.iter().any(donor) || !types.iter().any(receiver) || receivers_load <= 0.0 {
    return None;
  }
  let mut out: Vec<f64> = types.iter().map(|t| t.ratio).collect();
  let mut given = 0.0;
  for (i, t) in types.iter().enumerate() {
    if donor(t) {
      let g = (t.ratio - c.min_ratio).min(c.max_adjustment) * (1.0 - t.load);
      out[i] -= g;
      given += g;
    }
  }
  for (i, t) in types.iter().enumerate() {
    if receiver(t) {
      out[i] += t.load / receivers_load * given;
    }
  }
  let sum: f64 = out.iter().sum();
  if sum > 0.0 {
    for r in &mut out {
      *r /= sum;
    }
  }
  Some(out)
}

/// What a limiter with a Redis backend shows of a model between its calls: the windows jobs.lua
/// last replied with, as they stand at `now`, in [`Counts::counts`]' layout. Fixed windows roll
/// as the model's own would ([`ModelState::view`]): the reply holds the windows as stored and
/// the minute they are of (their day is that minute's). Sliding windows are shown as replied
/// (rolling them would take every bucket), each dropping a full span later.
pub fn last_seen(
  minute: Usage,
  day: Usage,
  in_flight: u64,
  minute_start: u64,
  sliding: bool,
  now: u64,
) -> Vec<u64> {
  if sliding {
    return vec![
      minute.tokens,
      minute.requests,
      day.tokens,
      day.requests,
      in_flight,
      now,
      MINUTE_MS,
      DAY_MS,
    ];
  }
  let window = |start, u: Usage| Window {
    start,
    tokens: u.tokens,
    requests: u.requests,
  };
  Counts::Fixed(ModelState {
    minute: window(minute_start, minute),
    day: window(day_start(minute_start), day),
    in_flight,
  })
  .counts(now)
}

/// A model's counts in one process (the local job limiter): fixed windows, or sliding ones.
pub enum Counts {
  Fixed(ModelState),
  Sliding(SlidingState),
}

impl Counts {
  pub fn reserve(&mut self, l: Limits, now: u64, est: Usage) -> Result<u64, Denied> {
    match self {
      Counts::Fixed(m) => m.reserve(l, now, est),
      Counts::Sliding(m) => m.reserve(l, now, est),
    }
  }

  pub fn settle(&mut self, now: u64, grant: u64, est: Usage, actual: Usage, release: bool) {
    match self {
      Counts::Fixed(m) => m.settle(now, grant, est, actual, release),
      Counts::Sliding(m) => m.settle(now, grant, est, actual, release),
    }
  }

  /// `[minute tokens, minute requests, day tokens, day requests, in flight, now, ms until the
  /// minute count drops, ms until the day count drops]`.
  pub fn counts(&self, now: u64) -> Vec<u64> {
    match self {
      Counts::Fixed(m) => {
        let m = m.view(now);
        vec![
          m.minute.tokens,
          m.minute.requests,
          m.day.tokens,
          m.day.requests,
          m.in_flight,
          now,
          m.minute.start + MINUTE_MS - now,
          m.day.start + DAY_MS - now,
        ]
      }
      Counts::Sliding(m) => {
        let (a, b) = (m.minute.totals_at(now), m.day.totals_at(now));
        vec![
          a.tokens,
          a.requests,
          b.tokens,
          b.requests,
          m.in_flight,
          now,
          m.minute.drops_in(now),
          m.day.drops_in(now),
        ]
      }
    }
  }
}

pub mod sliding;
use sliding::SlidingState;

#[cfg(test)]
mod tests;
