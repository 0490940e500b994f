//! The spend ledger behind `CostTracker`: dollars spent per UTC day and per UTC month, per tag,
//! with budgets, reservations and alert thresholds.
//!
//! Amounts are integers of nano-dollars (1e-9 USD), so totals add exactly and match to the
//! 1e-9 USD the price tests ask for; a `u64` holds 18 billion dollars.
//!
//! A decision touches two buckets: the day's and the month's, each named by its calendar label
//! (`2026-11-25`, `2026-11`). A bucket is only ever read under its own label, so a counter from
//! an earlier day can never be enforced today (the cost patterns article's "stale budget after a restart"), and
//! the day turns over exactly at UTC midnight whatever the bucket's TTL.
//!
//! - `record` adds what a finished call cost (always counts);
//! - `reserve` holds an estimate when `spent + reserved + estimate ≤ budget` for every period
//!   that has a budget; holds expire after `hold_ms` if never settled;
//! - `settle` replaces a hold by the real cost (into the current buckets, so a call that ran
//!   across midnight counts in the new day); `release` drops it;
//! - after each spend, every alert threshold the spend rose above (`spent > budget × t`) and
//!   that this bucket has not alerted yet is returned once; the bucket remembers it, so each
//!   threshold alerts once per period however many processes share the bucket.
//!
//! Spend is also kept as history for charts: each day's bucket (its total, per model and per
//! tag) is kept `Config::history_ms` after the day ends (35 days unless configured), and each
//! UTC hour's total and per-model spend in an hour bucket kept [`HOUR_KEEP_MS`] (48 h) after
//! the hour ends. The hour's bucket is written by the same call that records the spend (one
//! more key of the same decision), so history costs no extra round trip, and every bucket is a
//! flat set of counters: a call adds to a few of them, never rewrites a list. [`history`]
//! reads it back.
//!
//! The Redis store runs the same steps in `store/redis/scripts/spend.lua`.
//!
//! ```
//! use tollgate::engine::spend::{apply, Bucket, Config, Op, Period};
//! let cfg = Config { daily_budget: Some(1_000), monthly_budget: None, hold_ms: 60_000, thresholds: vec![0.5], history_ms: 0 };
//! let (mut day, mut month) = (Bucket::default(), Bucket::default());
//! let d = apply(&cfg, 0, &mut day, &mut month, &Op::Reserve { nano: 800 });
//! let hold = d.hold.unwrap();
//! assert!(!apply(&cfg, 1, &mut day, &mut month, &Op::Reserve { nano: 300 }).allowed);
//! let d = apply(&cfg, 2, &mut day, &mut month, &Op::Settle { id: hold.id, nano: 600, tags: vec![], model: None });
//! assert_eq!((d.day.spent, d.day.reserved), (600, 0));
//! assert_eq!(d.alerts, vec![(Period::Day, 0.5)]);
//! ```

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use hashbrown::HashMap;

/// Which calendar bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
  Day,
  Month,
}

/// The day, month and hour `now` falls in: labels and the instants they end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Calendar {
  pub day: String,
  pub day_ends_at: u64,
  pub month: String,
  pub month_ends_at: u64,
  /// `2026-11-25T13`.
  pub hour: String,
  pub hour_ends_at: u64,
}

/// How long a bucket is kept after its period ended. A bucket is only ever read under its own
/// date, so keeping it longer never enforces a stale counter; it keeps yesterday's totals
/// readable, and a process whose clock lags a little still finds the day it is in.
pub const KEEP_AFTER_MS: u64 = 86_400_000;

/// How long an hour's bucket is kept after the hour ended: today's and yesterday's hours.
pub const HOUR_KEEP_MS: u64 = 48 * 3_600_000;

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 86_400_000;

impl Calendar {
  /// Until when the day's, the month's and the hour's buckets are kept: the day's
  /// `history_ms` after it ends (at least a day), the month's a day after it ends, the hour's
  /// [`HOUR_KEEP_MS`].
  pub fn keep_until(&self, history_ms: u64) -> (u64, u64, u64) {
    (
      self
        .day_ends_at
        .saturating_add(history_ms.max(KEEP_AFTER_MS)),
      self.month_ends_at.saturating_add(KEEP_AFTER_MS),
      self.hour_ends_at.saturating_add(HOUR_KEEP_MS),
    )
  }
}

/// The label of the UTC hour starting at `start` (a multiple of an hour): `2026-11-25T13`.
fn hour_label(start: u64) -> String {
  let t = DateTime::<Utc>::from_timestamp_millis(start.min(i64::MAX as u64) as i64)
    .unwrap_or(DateTime::<Utc>::MAX_UTC);
  t.format("%Y-%m-%dT%H").to_string()
}

/// Buckets a history read covers, oldest first: `(label, start in ms)`.
pub type Labels = Vec<(String, u64)>;

/// The buckets a history read covers: the last `days` UTC days and the last `hours` UTC
/// hours up to the one holding `now`, oldest first, each as `(label, start in ms)`.
pub fn history_labels(now: u64, days: u32, hours: u32) -> (Labels, Labels) {
  let today = now / DAY_MS * DAY_MS;
  let day_list = (0..u64::from(days))
    .rev()
    .filter_map(|i| today.checked_sub(i * DAY_MS))
    .map(|start| (calendar(start).day, start))
    .collect();
  let hour = now / HOUR_MS * HOUR_MS;
  let hour_list = (0..u64::from(hours))
    .rev()
    .filter_map(|i| hour.checked_sub(i * HOUR_MS))
    .map(|start| (hour_label(start), start))
    .collect();
  (day_list, hour_list)
}

/// Whether the day starting at `start` is still kept at `now` (its bucket lives `history_ms`,
/// at least a day, after it ends). History reads only kept days, so an answer never depends on
/// when a store reclaims a bucket that is due (nor on a hold keeping it a little longer).
pub fn day_kept(start: u64, now: u64, history_ms: u64) -> bool {
  start
    .saturating_add(DAY_MS)
    .saturating_add(history_ms.max(KEEP_AFTER_MS))
    > now
}

/// One day's or hour's spend as history shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spent {
  pub spent: u64,
  /// Per model, sorted by name.
  pub models: Vec<(String, u64)>,
  /// Per tag (`key=value`), sorted; empty for an hour.
  pub tags: Vec<(String, u64)>,
}

/// What history shows of a stored bucket (`None`: nothing stored).
pub fn spent_of(b: Option<&Bucket>, with_tags: bool) -> Spent {
  let Some(b) = b else {
    return Spent::default();
  };
  let sorted = |m: &HashMap<String, u64>| {
    let mut v: Vec<(String, u64)> = m.iter().map(|(k, n)| (k.clone(), *n)).collect();
    v.sort();
    v
  };
  Spent {
    spent: b.spent,
    models: sorted(&b.models),
    tags: if with_tags {
      sorted(&b.tags)
    } else {
      Vec::new()
    },
  }
}

/// The UTC day and month of `now` (ms since the epoch).
pub fn calendar(now: u64) -> Calendar {
  let t = DateTime::<Utc>::from_timestamp_millis(now.min(i64::MAX as u64) as i64)
    .unwrap_or(DateTime::<Utc>::MAX_UTC);
  let hour_start = now / HOUR_MS * HOUR_MS;
  let date = t.date_naive();
  let start_of = |d: NaiveDate| {
    d.and_hms_opt(0, 0, 0)
      .map(|t| t.and_utc().timestamp_millis().max(0) as u64)
      .unwrap_or(u64::MAX)
  };
  let next_day = date.succ_opt().map(start_of).unwrap_or(u64::MAX);
  let (y, m) = (date.year(), date.month());
  let next_month = if m == 12 {
    NaiveDate::from_ymd_opt(y + 1, 1, 1)
  } else {
    NaiveDate::from_ymd_opt(y, m + 1, 1)
  };
  Calendar {
    day: date.format("%Y-%m-%d").to_string(),
    day_ends_at: next_day,
    month: date.format("%Y-%m").to_string(),
    month_ends_at: next_month.map(start_of).unwrap_or(u64::MAX),
    hour: hour_label(hour_start),
    hour_ends_at: hour_start.saturating_add(HOUR_MS),
  }
}

/// Budgets in nano-dollars (`None`: no budget for that period), hold lifetime, alert
/// thresholds as fractions of a budget.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
  pub daily_budget: Option<u64>,
  pub monthly_budget: Option<u64>,
  pub hold_ms: u64,
  pub thresholds: Vec<f64>,
  /// How long a day's bucket (its history) is kept after the day ends, in ms (at least a
  /// day: [`KEEP_AFTER_MS`]).
  pub history_ms: u64,
}

impl Config {
  fn budget(&self, p: Period) -> Option<u64> {
    match p {
      Period::Day => self.daily_budget,
      Period::Month => self.monthly_budget,
    }
  }
}

/// What a call asks.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
  /// Totals only.
  Check,
  /// A finished call's cost, counted under each tag and its model too.
  Record {
    nano: u64,
    tags: Vec<String>,
    model: Option<String>,
  },
  Reserve {
    nano: u64,
  },
  Settle {
    id: String,
    nano: u64,
    tags: Vec<String>,
    model: Option<String>,
  },
  Release {
    id: String,
  },
}

/// One outstanding reservation (kept in both buckets under the same id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
  /// Unique: `<day>#<sequence>`.
  pub id: String,
  pub nano: u64,
  pub expires_at: u64,
}

/// One period's state. `Bucket::default()` was never written.
///
/// O(1) per call however many holds and tags it has: holds are found by id, their total and
/// earliest and latest expiries are kept beside them (the holds are walked only once the
/// earliest may have expired), as spend.lua keeps them in its hash.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bucket {
  pub spent: u64,
  holds: HashMap<String, Hold>,
  reserved: u64,
  earliest: Option<u64>,
  latest: Option<u64>,
  pub seq: u64,
  /// Thresholds this bucket has alerted.
  pub alerted: Vec<f64>,
  /// Spend per tag (`key=value`).
  pub tags: HashMap<String, u64>,
  /// Spend per model.
  pub models: HashMap<String, u64>,
}

impl Bucket {
  /// A bucket with `spent` already counted (for tests and examples).
  pub fn with_spent(spent: u64) -> Self {
    Bucket {
      spent,
      ..Bucket::default()
    }
  }

  pub fn reserved(&self) -> u64 {
    self.reserved
  }

  /// Outstanding holds, in no particular order.
  pub fn holds(&self) -> impl Iterator<Item = &Hold> {
    self.holds.values()
  }

  /// When the stored state may be dropped: the period's end or the last hold's expiry.
  pub fn keep_until(&self, period_ends_at: u64) -> u64 {
    self
      .latest
      .map_or(period_ends_at, |l| l.max(period_ends_at))
  }

  fn expire_holds(&mut self, now: u64) {
    if self.earliest.is_some_and(|e| e <= now) {
      self.holds.retain(|_, h| h.expires_at > now);
      self.reserved = self
        .holds
        .values()
        .fold(0u64, |sum, h| sum.saturating_add(h.nano));
      self.earliest = self.holds.values().map(|h| h.expires_at).min();
      if self.holds.is_empty() {
        self.latest = None;
      }
    }
  }

  fn hold(&mut self, h: &Hold) {
    self.reserved = self.reserved.saturating_add(h.nano);
    self.earliest = Some(self.earliest.map_or(h.expires_at, |e| e.min(h.expires_at)));
    self.latest = Some(self.latest.map_or(h.expires_at, |l| l.max(h.expires_at)));
    self.holds.insert(h.id.clone(), h.clone());
  }

  fn drop_hold(&mut self, id: &str) {
    if let Some(h) = self.holds.remove(id) {
      self.reserved = self.reserved.saturating_sub(h.nano);
    }
  }

  fn spend(&mut self, nano: u64, tags: &[String], model: Option<&str>) {
    self.spent = self.spent.saturating_add(nano);
    for tag in tags {
      let v = self.tags.entry_ref(tag.as_str()).or_insert(0);
      *v = v.saturating_add(nano);
    }
    if let Some(m) = model {
      let v = self.models.entry_ref(m).or_insert(0);
      *v = v.saturating_add(nano);
    }
  }

  /// Thresholds newly crossed by the spend so far, remembered so each fires once.
  fn crossed(&mut self, budget: Option<u64>, thresholds: &[f64]) -> Vec<f64> {
    let Some(budget) = budget else {
      return Vec::new();
    };
    let mut out = Vec::new();
    for &t in thresholds {
      if self.spent as f64 > budget as f64 * t && !self.alerted.contains(&t) {
        self.alerted.push(t);
        out.push(t);
      }
    }
    out
  }
}

/// One period's totals in a decision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
  pub spent: u64,
  pub reserved: u64,
}

/// The answer to one call.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
  /// Reserve: the hold was granted. Other ops: every budget still has `spent + reserved ≤
  /// budget` (check and release: `<`, room for one more call).
  pub allowed: bool,
  pub day: Totals,
  pub month: Totals,
  pub hold: Option<Hold>,
  /// Thresholds crossed by this call, once each per period.
  pub alerts: Vec<(Period, f64)>,
}

fn totals(b: &Bucket) -> Totals {
  Totals {
    spent: b.spent,
    reserved: b.reserved(),
  }
}

/// Does `extra` more fit within every budget (`strict`: with room to spare)?
fn fits(cfg: &Config, day: &Bucket, month: &Bucket, extra: u64, strict: bool) -> bool {
  [(Period::Day, day), (Period::Month, month)]
    .iter()
    .all(|(p, b)| match cfg.budget(*p) {
      None => true,
      Some(budget) => {
        let total = b.spent.saturating_add(b.reserved()).saturating_add(extra);
        if strict {
          total < budget
        } else {
          total <= budget
        }
      }
    })
}

/// Runs `op` at `now` on the day's and the month's buckets (both of the calendar of `now`).
pub fn apply(cfg: &Config, now: u64, day: &mut Bucket, month: &mut Bucket, op: &Op) -> Decision {
  day.expire_holds(now);
  month.expire_holds(now);
  let mut hold = None;
  let mut alerts = Vec::new();
  let allowed = match op {
    Op::Check => fits(cfg, day, month, 0, true),
    Op::Reserve { nano } => {
      let ok = fits(cfg, day, month, *nano, false);
      if ok {
        day.seq += 1;
        let h = Hold {
          id: format!("{}#{}", calendar(now).day, day.seq),
          nano: *nano,
          expires_at: now.saturating_add(cfg.hold_ms),
        };
        day.hold(&h);
        month.hold(&h);
        hold = Some(h);
      }
      ok
    }
    Op::Record { nano, tags, model }
    | Op::Settle {
      nano, tags, model, ..
    } => {
      if let Op::Settle { id, .. } = op {
        day.drop_hold(id);
        month.drop_hold(id);
      }
      day.spend(*nano, tags, model.as_deref());
      month.spend(*nano, tags, model.as_deref());
      for t in day.crossed(cfg.daily_budget, &cfg.thresholds) {
        alerts.push((Period::Day, t));
      }
      for t in month.crossed(cfg.monthly_budget, &cfg.thresholds) {
        alerts.push((Period::Month, t));
      }
      fits(cfg, day, month, 0, false)
    }
    Op::Release { id } => {
      day.drop_hold(id);
      month.drop_hold(id);
      fits(cfg, day, month, 0, true)
    }
  };
  Decision {
    allowed,
    day: totals(day),
    month: totals(month),
    hold,
    alerts,
  }
}

/// The hour's bucket of a call: what `op` spent, in total and per model (no tags, no holds).
pub fn apply_hour(hour: &mut Bucket, op: &Op) {
  if let Op::Record { nano, model, .. } | Op::Settle { nano, model, .. } = op {
    hour.spend(*nano, &[], model.as_deref());
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  const DAY: u64 = 86_400_000;
  // 2026-11-25T00:00:00Z
  const NOV25: u64 = 1_795_564_800_000;

  fn cfg() -> Config {
    Config {
      daily_budget: Some(100),
      monthly_budget: Some(1_000),
      hold_ms: 60_000,
      thresholds: vec![0.8, 0.9],
      history_ms: 0,
    }
  }

  #[test]
  fn calendar_labels_and_ends_are_utc() {
    let c = calendar(NOV25 - 1);
    assert_eq!((c.day.as_str(), c.day_ends_at), ("2026-11-24", NOV25));
    assert_eq!(c.month, "2026-11");
    let c = calendar(NOV25);
    assert_eq!((c.day.as_str(), c.day_ends_at), ("2026-11-25", NOV25 + DAY));
    // 2026-12-01T00:00:00Z
    assert_eq!(c.month_ends_at, NOV25 + 6 * DAY);
    let c = calendar(NOV25 + 6 * DAY);
    assert_eq!(
      (c.day.as_str(), c.month.as_str()),
      ("2026-12-01", "2026-12")
    );
    // December ends in January of the next year.
    assert_eq!(calendar(NOV25 + 36 * DAY).month, "2026-12");
    assert_eq!(calendar(NOV25 + 37 * DAY).month, "2027-01");
    // Leap day.
    assert_eq!(calendar(1_709_164_800_000).day, "2024-02-29");
    assert_eq!(calendar(0).day, "1970-01-01");
  }

  #[test]
  fn reserve_checks_every_budget_and_settle_replaces_the_estimate() {
    let (mut d, mut m) = (Bucket::default(), Bucket::default());
    let h = apply(&cfg(), NOV25, &mut d, &mut m, &Op::Reserve { nano: 70 })
      .hold
      .unwrap();
    assert_eq!(h.id, "2026-11-25#1");
    let r = apply(&cfg(), NOV25, &mut d, &mut m, &Op::Reserve { nano: 31 });
    assert!(!r.allowed && r.hold.is_none());
    assert_eq!(
      r.day,
      Totals {
        spent: 0,
        reserved: 70
      }
    );
    assert!(apply(&cfg(), NOV25, &mut d, &mut m, &Op::Reserve { nano: 30 }).allowed);
    let s = apply(
      &cfg(),
      NOV25 + 1,
      &mut d,
      &mut m,
      &Op::Settle {
        id: h.id.clone(),
        nano: 20,
        tags: vec!["feature=chat".into()],
        model: Some("gpt-4o".into()),
      },
    );
    assert_eq!(
      s.day,
      Totals {
        spent: 20,
        reserved: 30
      }
    );
    assert_eq!(
      s.month,
      Totals {
        spent: 20,
        reserved: 30
      }
    );
    assert_eq!(d.tags.get("feature=chat"), Some(&20));
    assert_eq!(d.tags.len(), 1);
    assert_eq!(m.models.get("gpt-4o"), Some(&20));
    // A settled hold settled again counts the cost, but no hold is left to drop.
    let s = apply(
      &cfg(),
      NOV25 + 2,
      &mut d,
      &mut m,
      &Op::Settle {
        id: h.id,
        nano: 5,
        tags: vec![],
        model: None,
      },
    );
    assert_eq!(
      s.day,
      Totals {
        spent: 25,
        reserved: 30
      }
    );
  }

  #[test]
  fn the_monthly_budget_refuses_too() {
    let c = Config {
      daily_budget: None,
      monthly_budget: Some(50),
      ..cfg()
    };
    let (mut d, mut m) = (
      Bucket::default(),
      Bucket {
        spent: 40,
        ..Default::default()
      },
    );
    assert!(!apply(&c, NOV25, &mut d, &mut m, &Op::Reserve { nano: 11 }).allowed);
    assert!(apply(&c, NOV25, &mut d, &mut m, &Op::Reserve { nano: 10 }).allowed);
    assert!(!apply(&c, NOV25, &mut d, &mut m, &Op::Check).allowed);
  }

  #[test]
  fn holds_expire_and_release_gives_them_back() {
    let (mut d, mut m) = (Bucket::default(), Bucket::default());
    let h = apply(&cfg(), 0, &mut d, &mut m, &Op::Reserve { nano: 100 })
      .hold
      .unwrap();
    assert!(!apply(&cfg(), 59_999, &mut d, &mut m, &Op::Check).allowed);
    assert_eq!(
      apply(&cfg(), 60_000, &mut d, &mut m, &Op::Check)
        .day
        .reserved,
      0
    );
    let h2 = apply(&cfg(), 60_000, &mut d, &mut m, &Op::Reserve { nano: 100 })
      .hold
      .unwrap();
    assert_ne!(h.id, h2.id);
    let r = apply(&cfg(), 60_001, &mut d, &mut m, &Op::Release { id: h2.id });
    assert!(r.allowed);
    assert_eq!(r.day.reserved, 0);
  }

  #[test]
  fn each_threshold_alerts_once_per_bucket() {
    let (mut d, mut m) = (Bucket::default(), Bucket::default());
    let rec = |n| Op::Record {
      nano: n,
      tags: vec![],
      model: None,
    };
    // 80 is not above 80 % of 100 (the cost patterns article compares with `>`).
    assert!(apply(&cfg(), 0, &mut d, &mut m, &rec(80)).alerts.is_empty());
    assert_eq!(
      apply(&cfg(), 1, &mut d, &mut m, &rec(1)).alerts,
      vec![(Period::Day, 0.8)]
    );
    assert!(apply(&cfg(), 2, &mut d, &mut m, &rec(1)).alerts.is_empty());
    // One call can cross several thresholds, of both periods.
    let r = apply(&cfg(), 3, &mut d, &mut m, &rec(900));
    assert_eq!(
      r.alerts,
      vec![
        (Period::Day, 0.9),
        (Period::Month, 0.8),
        (Period::Month, 0.9)
      ]
    );
    assert!(!r.allowed);
    // A new day's bucket alerts again; the month's does not.
    let mut d2 = Bucket::default();
    assert_eq!(
      apply(&cfg(), DAY, &mut d2, &mut m, &rec(95)).alerts,
      vec![(Period::Day, 0.8), (Period::Day, 0.9)]
    );
  }

  #[test]
  fn keep_until_covers_the_last_hold() {
    let (mut d, mut m) = (Bucket::default(), Bucket::default());
    apply(
      &cfg(),
      NOV25 + DAY - 10,
      &mut d,
      &mut m,
      &Op::Reserve { nano: 1 },
    );
    assert_eq!(d.keep_until(NOV25 + DAY), NOV25 + DAY - 10 + 60_000);
  }

  #[test]
  fn history_covers_days_and_hours_oldest_first() {
    let c = calendar(NOV25 + 13 * 3_600_000 + 5);
    assert_eq!(
      (c.hour.as_str(), c.hour_ends_at),
      ("2026-11-25T13", NOV25 + 14 * 3_600_000)
    );
    let keep = Config {
      history_ms: 35 * DAY,
      ..cfg()
    };
    assert_eq!(
      c.keep_until(keep.history_ms),
      (NOV25 + 36 * DAY, NOV25 + 7 * DAY, NOV25 + 62 * 3_600_000)
    );
    // Less than a day of history still keeps yesterday's bucket readable.
    assert_eq!(c.keep_until(0).0, NOV25 + 2 * DAY);
    let (days, hours) = history_labels(NOV25 + 13 * 3_600_000 + 5, 3, 2);
    assert_eq!(
      days,
      vec![
        ("2026-11-23".to_string(), NOV25 - 2 * DAY),
        ("2026-11-24".to_string(), NOV25 - DAY),
        ("2026-11-25".to_string(), NOV25)
      ]
    );
    assert_eq!(
      hours,
      vec![
        ("2026-11-25T12".to_string(), NOV25 + 12 * 3_600_000),
        ("2026-11-25T13".to_string(), NOV25 + 13 * 3_600_000)
      ]
    );
    // Near the epoch the list stops at 1970-01-01.
    assert_eq!(history_labels(5, 3, 3).0.len(), 1);
    // A day is kept `history_ms` (at least a day) after it ends.
    assert!(day_kept(NOV25, NOV25 + 3 * DAY - 1, 2 * DAY));
    assert!(!day_kept(NOV25, NOV25 + 3 * DAY, 2 * DAY));
    assert!(day_kept(NOV25, NOV25 + 2 * DAY - 1, 0));
    assert!(!day_kept(NOV25, NOV25 + 2 * DAY, 0));
  }

  #[test]
  fn the_hour_counts_spend_per_model_and_nothing_else() {
    let mut h = Bucket::default();
    let rec = Op::Record {
      nano: 7,
      tags: vec!["a=b".into()],
      model: Some("m".into()),
    };
    apply_hour(&mut h, &rec);
    apply_hour(&mut h, &Op::Reserve { nano: 100 });
    apply_hour(
      &mut h,
      &Op::Settle {
        id: "x".into(),
        nano: 3,
        tags: vec![],
        model: None,
      },
    );
    let s = spent_of(Some(&h), true);
    assert_eq!(s.spent, 10);
    assert_eq!(s.models, vec![("m".to_string(), 7)]);
    assert!(s.tags.is_empty());
    assert_eq!(spent_of(None, true), Spent::default());
  }
}
