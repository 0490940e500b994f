//! `CostTrackerCore`: the spend ledger of one `CostTracker` (lib/cost-tracker.js).

use napi_derive::napi;

use super::clock::local;
use super::error::ms;
use super::store::{open_redis, Backend, NativeStore};
use crate::engine::spend::{
  apply, apply_hour, calendar, day_kept, history_labels, spent_of, Bucket, Calendar, Config,
  Decision, Labels, Op, Period, Spent,
};
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

/// Spend under one name (a model, or a tag `key=value`).
#[napi(object)]
pub struct NamedSpend {
  pub name: String,
  pub nano: f64,
}

/// One day's or hour's spend.
#[napi(object)]
pub struct SpendPoint {
  /// `2026-11-25` or `2026-11-25T13`.
  pub label: String,
  /// When it starts, ms since 1970 (UTC).
  pub start: f64,
  pub nano: f64,
  pub models: Vec<NamedSpend>,
  /// Days only.
  pub tags: Vec<NamedSpend>,
}

/// The days and hours asked for, oldest first.
#[napi(object)]
pub struct SpendHistory {
  pub days: Vec<SpendPoint>,
  pub hours: Vec<SpendPoint>,
}

fn history_shape(labels: (Labels, Labels), spent: (Vec<Spent>, Vec<Spent>)) -> SpendHistory {
  let named = |v: Vec<(String, u64)>| {
    v.into_iter()
      .map(|(name, n)| NamedSpend {
        name,
        nano: n as f64,
      })
      .collect()
  };
  let points = |labels: Vec<(String, u64)>, spent: Vec<Spent>| {
    labels
      .into_iter()
      .zip(spent)
      .map(|((label, start), s)| SpendPoint {
        label,
        start: start as f64,
        nano: s.spent as f64,
        models: named(s.models),
        tags: named(s.tags),
      })
      .collect()
  };
  SpendHistory {
    days: points(labels.0, spent.0),
    hours: points(labels.1, spent.1),
  }
}

fn tag_list(tags: &hashbrown::HashMap<String, u64>) -> Vec<(String, u64)> {
  tags.iter().map(|(t, n)| (t.clone(), *n)).collect()
}

/// 0 check, 1 check with tag totals, 2 record, 3 reserve, 4 settle, 5 release. `model` is ''
/// when the spend has none.
fn op(code: u32, nano: f64, hold_id: String, tags: Vec<String>, model: String) -> Op {
  let nano = ms(nano);
  let model = (!model.is_empty()).then_some(model);
  match code {
    0 | 1 => Op::Check,
    2 => Op::Record { nano, tags, model },
    3 => Op::Reserve { nano },
    4 => Op::Settle {
      id: hold_id,
      nano,
      tags,
      model,
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
  fn keys(&self, cal: &Calendar) -> [String; 5] {
    let (b, d, m, h) = (&self.base, &cal.day, &cal.month, &cal.hour);
    [
      format!("{b}day:{d}"),
      format!("{b}day:{d}:tags"),
      format!("{b}month:{m}"),
      format!("{b}month:{m}:tags"),
      format!("{b}hour:{h}"),
    ]
  }

  /// The keys a history read reads: the days still kept at `now` (the older ones are shown
  /// empty, however long a store keeps their bucket), their tags, the hours.
  fn history_keys(
    &self,
    labels: &(Labels, Labels),
    now: u64,
  ) -> (Vec<String>, Vec<String>, Vec<String>) {
    let b = &self.base;
    let kept: Vec<&String> = labels
      .0
      .iter()
      .filter(|(_, start)| day_kept(*start, now, self.config.history_ms))
      .map(|(d, _)| d)
      .collect();
    (
      kept.iter().map(|d| format!("{b}day:{d}")).collect(),
      kept.iter().map(|d| format!("{b}day:{d}:tags")).collect(),
      labels
        .1
        .iter()
        .map(|(h, _)| format!("{b}hour:{h}"))
        .collect(),
    )
  }

  /// The kept days' spend (kept days are the newest) after an empty one per older day.
  fn pad(labels: usize, mut kept: Vec<Spent>) -> Vec<Spent> {
    let mut out = vec![Spent::default(); labels.saturating_sub(kept.len())];
    out.append(&mut kept);
    out
  }
}

#[napi]
impl CostTrackerCore {
  /// Budgets in nano-dollars, < 0 for none; `history_ms`: how long a day's bucket is kept
  /// after the day.
  #[napi(constructor)]
  pub fn new(
    store: &NativeStore,
    base: String,
    daily_budget: f64,
    monthly_budget: f64,
    hold_ms: f64,
    thresholds: Vec<f64>,
    history_ms: f64,
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
        history_ms: ms(history_ms),
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
    model: String,
    now: f64,
  ) -> napi::Result<SpendDecision> {
    let now = local(now);
    let cal = calendar(now);
    let [day, _, month, _, hour] = self.keys(&cal);
    let op = op(code, nano, hold_id, tags, model);
    let store = self.backend.memory()?;
    let kept = cal.keep_until(self.config.history_ms);
    let (d, tags) = store.update_all(
      &[&day, &month, &hour],
      now,
      |buckets: &mut [Box<Bucket>]| {
        let [day, month, hour] = buckets else {
          unreachable!("three keys, three buckets")
        };
        let d = apply(&self.config, now, day, month, &op);
        apply_hour(hour, &op);
        (
          d,
          (code == 1).then(|| (tag_list(&day.tags), tag_list(&month.tags))),
        )
      },
      |i, bucket| {
        if **bucket == Bucket::default() {
          Keep::Drop
        } else {
          Keep::Until(bucket.keep_until([kept.0, kept.1, kept.2][i]))
        }
      },
    )?;
    Ok(shape(cal, d, tags))
  }

  /// The last `days` days' and `hours` hours' spend up to `now`, oldest first (in process).
  #[napi(catch_unwind)]
  pub fn history(&self, days: u32, hours: u32, now: f64) -> napi::Result<SpendHistory> {
    let now = local(now);
    let labels = history_labels(now, days, hours);
    let (day_keys, _, hour_keys) = self.history_keys(&labels, now);
    let store = self.backend.memory()?;
    let read = |keys: &[String], with_tags: bool| -> napi::Result<Vec<Spent>> {
      keys
        .iter()
        .map(|k| {
          let s =
            store.view::<Box<Bucket>, _>(k, now, |b| spent_of(Some(b.as_ref()), with_tags))?;
          Ok(s.unwrap_or_default())
        })
        .collect()
    };
    let spent = (
      Self::pad(labels.0.len(), read(&day_keys, true)?),
      read(&hour_keys, false)?,
    );
    Ok(history_shape(labels, spent))
  }

  /// As `history`, from Redis (one script).
  #[napi]
  pub async fn history_async(&self, days: u32, hours: u32, now: f64) -> napi::Result<SpendHistory> {
    let redis = open_redis(&self.backend)?;
    let now = local(now);
    let labels = history_labels(now, days, hours);
    let (day_keys, tag_keys, hour_keys) = self.history_keys(&labels, now);
    let (day_list, hour_list) = redis
      .spend_history(&day_keys, &tag_keys, &hour_keys)
      .await?;
    let spent = (Self::pad(labels.0.len(), day_list), hour_list);
    Ok(history_shape(labels, spent))
  }

  #[napi]
  pub async fn run_async(
    &self,
    code: u32,
    nano: f64,
    hold_id: String,
    tags: Vec<String>,
    model: String,
    now: f64,
  ) -> napi::Result<SpendDecision> {
    let redis = open_redis(&self.backend)?;
    let now = local(now);
    let cal = calendar(now);
    let [day, day_tags, month, month_tags, hour] = self.keys(&cal);
    let keys = SpendKeys {
      day: &day,
      day_tags: &day_tags,
      month: &month,
      month_tags: &month_tags,
      hour: &hour,
    };
    let op = op(code, nano, hold_id, tags, model);
    let (d, tags) = redis
      .spend(keys, &cal, &self.config, now, &op, code == 1)
      .await?;
    Ok(shape(cal, d, tags))
  }
}
