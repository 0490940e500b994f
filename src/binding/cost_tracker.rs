//! `costTracker*`: the spend ledger of one `CostTracker` (lib/cost-tracker.js), over an
//! `External` handle (a free function costs less to call than a class method).
//!
//! A decision comes back as numbers, the same on both paths (written into the caller's
//! `Float64Array` in process, resolved as an array on Redis):
//!
//! `[allowed 0|1, dayEndsAt, daySpent, dayReserved, monthEndsAt, monthSpent, monthReserved,
//! hold sequence, hold expiresAt, alerts n, (period, threshold) × n]`
//!
//! Amounts in nano-dollars, times in ms since 1970 (UTC). The day's label is the UTC date of
//! the day's start (`dayEndsAt` less a day), the month's its first seven characters; a hold's
//! id is `<day's label>#<sequence>`, and a sequence of -1 means no hold was made. An alert's
//! period is 0 for the day, 1 for the month. The buffer holds `FIELDS + 2 ×` the most alerts
//! one call can cross (each threshold once per period).
//!
//! Text comes back only where it cannot be numbers, off the hot paths, as JSON: the spend per
//! tag (`costTrackerTags*`, beside the same numbers) and the history (`costTrackerHistory*`).

use std::sync::Arc;

use napi::bindgen_prelude::{External, Float64ArraySlice, PromiseRaw};
use napi::Env;
use napi_derive::napi;
use serde::Serialize;

use super::clock::local;
use super::error::ms;
use super::reply::write;
use super::store::{on_redis, Backend, NativeStore};
use crate::engine::spend::{
  apply, apply_hour, calendar, day_kept, history_labels, spent_of, Bucket, Calendar, Config,
  Decision, Labels, Op, Period, Spent,
};
use crate::store::memory::Keep;
use crate::store::redis::{SpendKeys, TagTotals};

/// Numbers in a reply before its alerts.
pub const FIELDS: usize = 10;

fn reply(cal: &Calendar, d: &Decision) -> Vec<f64> {
  let (seq, expires) = match &d.hold {
    Some(h) => (
      h.id
        .rsplit_once('#')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(f64::NAN),
      h.expires_at as f64,
    ),
    None => (-1.0, 0.0),
  };
  let mut out = Vec::with_capacity(FIELDS + 2 * d.alerts.len());
  out.extend_from_slice(&[
    f64::from(u8::from(d.allowed)),
    cal.day_ends_at as f64,
    d.day.spent as f64,
    d.day.reserved as f64,
    cal.month_ends_at as f64,
    d.month.spent as f64,
    d.month.reserved as f64,
    seq,
    expires,
    d.alerts.len() as f64,
  ]);
  for (p, t) in &d.alerts {
    out.push(match p {
      Period::Day => 0.0,
      Period::Month => 1.0,
    });
    out.push(*t);
  }
  out
}

/// The spend per tag as JSON: `[[["key=value", nano], …] of the day, […] of the month]`.
fn tags_text(tags: &TagTotals) -> String {
  serde_json::to_string(tags).unwrap_or_default()
}

/// One day's or hour's spend.
#[derive(Serialize)]
struct Point {
  /// `2026-11-25` or `2026-11-25T13`.
  label: String,
  /// When it starts, ms since 1970 (UTC).
  start: u64,
  nano: u64,
  /// `[name, nano]`, by name.
  models: Vec<(String, u64)>,
  /// `[key=value, nano]`, by tag; days only.
  tags: Vec<(String, u64)>,
}

/// The history as JSON: `{days: [Point], hours: [Point]}`, oldest first.
fn history_text(labels: (Labels, Labels), spent: (Vec<Spent>, Vec<Spent>)) -> String {
  let points = |labels: Labels, spent: Vec<Spent>| -> Vec<Point> {
    labels
      .into_iter()
      .zip(spent)
      .map(|((label, start), s)| Point {
        label,
        start,
        nano: s.spent,
        models: s.models,
        tags: s.tags,
      })
      .collect()
  };
  #[derive(Serialize)]
  struct History {
    days: Vec<Point>,
    hours: Vec<Point>,
  }
  serde_json::to_string(&History {
    days: points(labels.0, spent.0),
    hours: points(labels.1, spent.1),
  })
  .unwrap_or_default()
}

fn tag_list(tags: &hashbrown::HashMap<String, u64>) -> Vec<(String, u64)> {
  tags.iter().map(|(t, n)| (t.clone(), *n)).collect()
}

/// 0 check, 1 check with tag totals, 2 record, 3 reserve, 4 settle, 5 release.
fn op(
  code: u32,
  nano: f64,
  hold_id: Option<String>,
  tags: Option<Vec<String>>,
  model: Option<String>,
) -> Op {
  let (nano, id, tags) = (
    ms(nano),
    hold_id.unwrap_or_default(),
    tags.unwrap_or_default(),
  );
  match code {
    0 | 1 => Op::Check,
    2 => Op::Record { nano, tags, model },
    3 => Op::Reserve { nano },
    4 => Op::Settle {
      id,
      nano,
      tags,
      model,
    },
    _ => Op::Release { id },
  }
}

pub struct CostTrackerCore {
  backend: Backend,
  /// Key prefix including its `{hash tag}`.
  base: String,
  config: Config,
}

type Core = External<Arc<CostTrackerCore>>;

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

  /// `op` at `now` (ms, < 0 the system clock) in process; with `with_tags`, also the spend
  /// per tag.
  fn run(
    &self,
    op: &Op,
    now: f64,
    with_tags: bool,
  ) -> napi::Result<(Calendar, Decision, Option<TagTotals>)> {
    let now = local(now);
    let cal = calendar(now);
    let [day, _, month, _, hour] = self.keys(&cal);
    let store = self.backend.memory()?;
    let kept = cal.keep_until(self.config.history_ms);
    let (d, tags) = store.update_all(
      &[&day, &month, &hour],
      now,
      |buckets: &mut [Box<Bucket>]| {
        let [day, month, hour] = buckets else {
          unreachable!("three keys, three buckets")
        };
        let d = apply(&self.config, now, day, month, op);
        apply_hour(hour, op);
        (
          d,
          with_tags.then(|| (tag_list(&day.tags), tag_list(&month.tags))),
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
    Ok((cal, d, tags))
  }

  /// As `run`, on Redis (one EVALSHA). `now` is the caller's clock: the calendar is the
  /// caller's.
  async fn run_redis(
    self: Arc<Self>,
    redis: Arc<crate::store::redis::RedisStore>,
    op: Op,
    now: f64,
    with_tags: bool,
  ) -> napi::Result<(Calendar, Decision, Option<TagTotals>)> {
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
    let (d, tags) = redis
      .spend(keys, &cal, &self.config, now, &op, with_tags)
      .await?;
    Ok((cal, d, tags))
  }
}

/// Budgets in nano-dollars, < 0 for none; `history_ms`: how long a day's bucket is kept after
/// the day.
#[napi(ts_return_type = "ExternalObject<'CostTrackerCore'>")]
pub fn cost_tracker_new(
  store: &NativeStore,
  base: String,
  daily_budget: f64,
  monthly_budget: f64,
  hold_ms: f64,
  thresholds: Vec<f64>,
  history_ms: f64,
) -> Core {
  let budget = |b: f64| (b >= 0.0).then(|| ms(b));
  External::new(Arc::new(CostTrackerCore {
    backend: store.backend.clone(),
    base,
    config: Config {
      daily_budget: budget(daily_budget),
      monthly_budget: budget(monthly_budget),
      hold_ms: ms(hold_ms).max(1),
      thresholds,
      history_ms: ms(history_ms),
    },
  }))
}

/// In-process decision, answered on the calling thread, written into `out`; returns the
/// reply's length. `tags` are `key=value`; `holdId`, `tags` and `model` are undefined when
/// the operation has none.
#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'CostTrackerCore'>, code: number, nano: number, holdId: string | undefined, tags: string[] | undefined, model: string | undefined, now: number, out: Float64Array"
)]
#[allow(clippy::too_many_arguments)]
pub fn cost_tracker_run(
  core: &Core,
  code: u32,
  nano: f64,
  hold_id: Option<String>,
  tags: Option<Vec<String>>,
  model: Option<String>,
  now: f64,
  mut out: Float64ArraySlice<'_>,
) -> napi::Result<u32> {
  let (cal, d, _) = core.run(&op(code, nano, hold_id, tags, model), now, false)?;
  // SAFETY: `out` is a JS typed array borrowed for this synchronous call on the JS thread.
  write(unsafe { out.as_mut() }, &reply(&cal, &d))
}

/// Redis decision (one EVALSHA); resolves to the reply's numbers.
#[napi(
  ts_args_type = "core: ExternalObject<'CostTrackerCore'>, code: number, nano: number, holdId: string | undefined, tags: string[] | undefined, model: string | undefined, now: number"
)]
#[allow(clippy::too_many_arguments)]
pub fn cost_tracker_run_async<'env>(
  env: &'env Env,
  core: &Core,
  code: u32,
  nano: f64,
  hold_id: Option<String>,
  tags: Option<Vec<String>>,
  model: Option<String>,
  now: f64,
) -> napi::Result<PromiseRaw<'env, Vec<f64>>> {
  let (core, op) = (Arc::clone(core), op(code, nano, hold_id, tags, model));
  on_redis(env, &core.backend.clone(), move |redis| async move {
    let (cal, d, _) = core.run_redis(redis, op, now, false).await?;
    Ok(reply(&cal, &d))
  })
}

/// The totals with the spend per tag, in process: the numbers of a check written into `out`,
/// the tags returned as JSON (`[day's, month's]`, each a list of `["key=value", nano]`).
#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'CostTrackerCore'>, now: number, out: Float64Array"
)]
pub fn cost_tracker_tags(
  core: &Core,
  now: f64,
  mut out: Float64ArraySlice<'_>,
) -> napi::Result<String> {
  let (cal, d, tags) = core.run(&Op::Check, now, true)?;
  // SAFETY: as in `cost_tracker_run`.
  write(unsafe { out.as_mut() }, &reply(&cal, &d))?;
  Ok(tags_text(&tags.unwrap_or_default()))
}

/// The reply of `costTrackerTagsAsync`.
#[napi(object)]
pub struct SpendTags {
  /// A check's numbers, in the layout above.
  pub reply: Vec<f64>,
  /// The spend per tag, as `costTrackerTags` returns it.
  pub tags: String,
}

/// `costTrackerTags` on Redis (one EVALSHA): the check's numbers and the tags' JSON.
#[napi(ts_args_type = "core: ExternalObject<'CostTrackerCore'>, now: number")]
pub fn cost_tracker_tags_async<'env>(
  env: &'env Env,
  core: &Core,
  now: f64,
) -> napi::Result<PromiseRaw<'env, SpendTags>> {
  let core = Arc::clone(core);
  on_redis(env, &core.backend.clone(), move |redis| async move {
    let (cal, d, tags) = core.run_redis(redis, Op::Check, now, true).await?;
    Ok(SpendTags {
      reply: reply(&cal, &d),
      tags: tags_text(&tags.unwrap_or_default()),
    })
  })
}

/// The last `days` days' and `hours` hours' spend up to `now`, oldest first, in process, as
/// JSON (`{days, hours}`, each a list of `{label, start, nano, models, tags}`; `models` and
/// `tags` are lists of `[name, nano]`).
#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'CostTrackerCore'>, days: number, hours: number, now: number"
)]
pub fn cost_tracker_history(core: &Core, days: u32, hours: u32, now: f64) -> napi::Result<String> {
  let now = local(now);
  let labels = history_labels(now, days, hours);
  let (day_keys, _, hour_keys) = core.history_keys(&labels, now);
  let store = core.backend.memory()?;
  let read = |keys: &[String], with_tags: bool| -> napi::Result<Vec<Spent>> {
    keys
      .iter()
      .map(|k| {
        let s = store.view::<Box<Bucket>, _>(k, now, |b| spent_of(Some(b.as_ref()), with_tags))?;
        Ok(s.unwrap_or_default())
      })
      .collect()
  };
  let spent = (
    CostTrackerCore::pad(labels.0.len(), read(&day_keys, true)?),
    read(&hour_keys, false)?,
  );
  Ok(history_text(labels, spent))
}

/// As `costTrackerHistory`, from Redis (one script).
#[napi(
  ts_args_type = "core: ExternalObject<'CostTrackerCore'>, days: number, hours: number, now: number"
)]
pub fn cost_tracker_history_async<'env>(
  env: &'env Env,
  core: &Core,
  days: u32,
  hours: u32,
  now: f64,
) -> napi::Result<PromiseRaw<'env, String>> {
  let core = Arc::clone(core);
  on_redis(env, &core.backend.clone(), move |redis| async move {
    let now = local(now);
    let labels = history_labels(now, days, hours);
    let (day_keys, tag_keys, hour_keys) = core.history_keys(&labels, now);
    let (day_list, hour_list) = redis
      .spend_history(&day_keys, &tag_keys, &hour_keys)
      .await?;
    let spent = (CostTrackerCore::pad(labels.0.len(), day_list), hour_list);
    Ok(history_text(labels, spent))
  })
}
