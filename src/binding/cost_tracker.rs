//! `CostTrackerCore`: the spend ledger of one `CostTracker` (lib/cost-tracker.js).

use napi_derive::napi;

use super::clock::local;
use super::error::ms;
use super::store::{open_redis, Backend, NativeStore};
use crate::engine::spend::{apply, calendar, Bucket, Calendar, Config, Decision, Op, Period};
use crate::store::memory::Keep;
use crate::store::redis::{SpendKeys, TagTotals};

/// Spend under one tag in one period.
#[napi(object)]
pub struct TagSpend {
  /// `daily` or `monthly`.
  pub period: String,
  /// `key=value`.
  pub tag: String,
  pub nano: f64,
}

#[napi(object)]
pub struct SpendDecision {
  pub allowed: bool,
  pub day: String,
  pub day_ends_at: f64,
  pub day_spent: f64,
  pub day_reserved: f64,
  pub month: String,
  pub month_ends_at: f64,
  pub month_spent: f64,
  pub month_reserved: f64,
  /// Set when a reservation was granted.
  pub hold_id: Option<String>,
  pub hold_expires_at: Option<f64>,
  /// Alerts this call crossed: `daily`/`monthly` and the threshold, pairwise.
  pub alert_periods: Vec<String>,
  pub alert_thresholds: Vec<f64>,
  /// Only for code 1 (totals with tags).
  pub tags: Option<Vec<TagSpend>>,
}

fn period_name(p: Period) -> String {
  match p {
    Period::Day => "daily".into(),
    Period::Month => "monthly".into(),
  }
}

fn shape(cal: Calendar, d: Decision, tags: Option<TagTotals>) -> SpendDecision {
  let (alert_periods, alert_thresholds) =
    d.alerts.iter().map(|(p, t)| (period_name(*p), *t)).unzip();
  let tags = tags.map(|(day, month)| {
    let one = |period: &str, list: Vec<(String, u64)>| {
      list.into_iter().map({
        let period = period.to_string();
        move |(tag, nano)| TagSpend {
          period: period.clone(),
          tag,
          nano: nano as f64,
        }
      })
    };
    one("daily", day).chain(one("monthly", month)).collect()
  });
  SpendDecision {
    allowed: d.allowed,
    day: cal.day,
    day_ends_at: cal.day_ends_at as f64,
    day_spent: d.day.spent as f64,
    day_reserved: d.day.reserved as f64,
    month: cal.month,
    month_ends_at: cal.month_ends_at as f64,
    month_spent: d.month.spent as f64,
    month_reserved: d.month.reserved as f64,
    hold_expires_at: d.hold.as_ref().map(|h| h.expires_at as f64),
    hold_id: d.hold.map(|h| h.id),
    alert_periods,
    alert_thresholds,
    tags,
  }
}

fn tag_list(tags: &hashbrown::HashMap<String, u64>) -> Vec<(String, u64)> {
  tags.iter().map(|(t, n)| (t.clone(), *n)).collect()
}

/// 0 check, 1 check with tag totals, 2 record, 3 reserve, 4 settle, 5 release.
fn op(code: u32, nano: f64, hold_id: String, tags: Vec<String>) -> Op {
  let nano = ms(nano);
  match code {
    0 | 1 => Op::Check,
    2 => Op::Record { nano, tags },
    3 => Op::Reserve { nano },
    4 => Op::Settle {
      id: hold_id,
      nano,
      tags,
    },
    _ => Op::Release { id: hold_id },
  }
}

#[napi]
pub struct CostTrackerCore {
  backend: Backend,
  /// Key prefix including its `{hash tag}`.
  base: String,
  config: Config,
}

impl CostTrackerCore {
  fn keys(&self, cal: &Calendar) -> [String; 4] {
    let (b, d, m) = (&self.base, &cal.day, &cal.month);
    [
      format!("{b}day:{d}"),
      format!("{b}day:{d}:tags"),
      format!("{b}month:{m}"),
      format!("{b}month:{m}:tags"),
    ]
  }
}

#[napi]
impl CostTrackerCore {
  /// Budgets in nano-dollars, < 0 for none.
  #[napi(constructor)]
  pub fn new(
    store: &NativeStore,
    base: String,
    daily_budget: f64,
    monthly_budget: f64,
    hold_ms: f64,
    thresholds: Vec<f64>,
  ) -> Self {
    let budget = |b: f64| (b >= 0.0).then(|| ms(b));
    CostTrackerCore {
      backend: store.backend.clone(),
      base,
      config: Config {
        daily_budget: budget(daily_budget),
        monthly_budget: budget(monthly_budget),
        hold_ms: ms(hold_ms).max(1),
        thresholds,
      },
    }
  }

  #[napi(catch_unwind)]
  pub fn run(
    &self,
    code: u32,
    nano: f64,
    hold_id: String,
    tags: Vec<String>,
    now: f64,
  ) -> napi::Result<SpendDecision> {
    let now = local(now);
    let cal = calendar(now);
    let [day, _, month, _] = self.keys(&cal);
    let op = op(code, nano, hold_id, tags);
    let store = self.backend.memory()?;
    let (day_kept, month_kept) = cal.keep_until();
    let (d, tags) = store.update_all(
      &[&day, &month],
      now,
      |buckets: &mut [Box<Bucket>]| {
        let [day, month] = buckets else {
          unreachable!("two keys, two buckets")
        };
        let d = apply(&self.config, now, day, month, &op);
        (
          d,
          (code == 1).then(|| (tag_list(&day.tags), tag_list(&month.tags))),
        )
      },
      |i, bucket| {
        if **bucket == Bucket::default() {
          Keep::Drop
        } else {
          Keep::Until(bucket.keep_until(if i == 0 { day_kept } else { month_kept }))
        }
      },
    )?;
    Ok(shape(cal, d, tags))
  }

  #[napi]
  pub async fn run_async(
    &self,
    code: u32,
    nano: f64,
    hold_id: String,
    tags: Vec<String>,
    now: f64,
  ) -> napi::Result<SpendDecision> {
    let redis = open_redis(&self.backend)?;
    let now = local(now);
    let cal = calendar(now);
    let [day, day_tags, month, month_tags] = self.keys(&cal);
    let keys = SpendKeys {
      day: &day,
      day_tags: &day_tags,
      month: &month,
      month_tags: &month_tags,
    };
    let op = op(code, nano, hold_id, tags);
    let (d, tags) = redis
      .spend(keys, &cal, &self.config, now, &op, code == 1)
      .await?;
    Ok(shape(cal, d, tags))
  }
}
