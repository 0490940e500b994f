//! CostTracker's spend ledger on Redis: `scripts/spend.lua`, one EVALSHA per decision over the
//! day's and the month's buckets and the hour's history bucket (five keys under one hash tag),
//! and one EVALSHA per history read.

use super::{RedisStore, StoreError};
use crate::engine::spend::{Calendar, Config, Decision, Hold, Op, Period, Spent, Totals};

/// The five keys of one decision: the day's bucket and tags, the month's bucket and tags, the
/// hour's bucket.
pub struct SpendKeys<'a> {
  pub day: &'a str,
  pub day_tags: &'a str,
  pub month: &'a str,
  pub month_tags: &'a str,
  pub hour: &'a str,
}

/// Spend per tag in the day's and the month's buckets (`key=value` → nano-dollars).
pub type TagTotals = (Vec<(String, u64)>, Vec<(String, u64)>);

type Reply = (
  i64,
  u64,
  u64,
  u64,
  u64,
  String,
  u64,
  Vec<String>,
  Vec<String>,
  Vec<String>,
);

fn pairs(flat: Vec<String>) -> Vec<(String, u64)> {
  flat
    .chunks_exact(2)
    .map(|p| (p[0].clone(), p[1].parse().unwrap_or(0)))
    .collect()
}

impl RedisStore {
  /// Runs `op` at `now` (the caller's clock: the calendar is the caller's) on the buckets of
  /// `cal`; with `tags`, also returns the spend per tag.
  pub async fn spend(
    &self,
    keys: SpendKeys<'_>,
    cal: &Calendar,
    cfg: &Config,
    now: u64,
    op: &Op,
    tags: bool,
  ) -> Result<(Decision, Option<TagTotals>), StoreError> {
    let budget = |b: Option<u64>| b.map_or(-1, |b| b as i64);
    let none = None;
    let (code, amount, id, op_tags, model): (&str, u64, &str, &[String], &Option<String>) = match op
    {
      Op::Check if tags => ("t", 0, "", &[], &none),
      Op::Check => ("c", 0, "", &[], &none),
      Op::Record { nano, tags, model } => ("r", *nano, "", tags, model),
      Op::Reserve { nano } => ("v", *nano, cal.day.as_str(), &[], &none),
      Op::Settle {
        id,
        nano,
        tags,
        model,
      } => ("s", *nano, id, tags, model),
      Op::Release { id } => ("l", 0, id, &[], &none),
    };
    let thresholds: Vec<String> = cfg.thresholds.iter().map(|t| t.to_string()).collect();
    let (day_kept, month_kept, hour_kept) = cal.keep_until(cfg.history_ms);
    let mut inv = super::scripts::SPEND.prepare_invoke();
    inv
      .key(keys.day)
      .key(keys.day_tags)
      .key(keys.month)
      .key(keys.month_tags)
      .key(keys.hour)
      .arg(code)
      .arg(now)
      .arg(day_kept)
      .arg(month_kept)
      .arg(budget(cfg.daily_budget))
      .arg(budget(cfg.monthly_budget))
      .arg(cfg.hold_ms)
      .arg(amount)
      .arg(id)
      .arg(thresholds.join(","))
      .arg(model.as_deref().unwrap_or(""))
      .arg(hour_kept);
    for t in op_tags {
      inv.arg(t);
    }
    let (allowed, ds, dr, ms, mr, hold_id, hold_exp, alerts, day_tags, month_tags): Reply =
      self.run(inv).await?;
    let alerts = alerts
      .chunks_exact(2)
      .filter_map(|p| {
        let period = if p[0] == "d" {
          Period::Day
        } else {
          Period::Month
        };
        p[1].parse::<f64>().ok().map(|t| (period, t))
      })
      .collect();
    let decision = Decision {
      allowed: allowed == 1,
      day: Totals {
        spent: ds,
        reserved: dr,
      },
      month: Totals {
        spent: ms,
        reserved: mr,
      },
      hold: (!hold_id.is_empty()).then_some(Hold {
        id: hold_id,
        nano: amount,
        expires_at: hold_exp,
      }),
      alerts,
    };
    Ok((decision, tags.then(|| (pairs(day_tags), pairs(month_tags)))))
  }

  /// The spend history in the buckets named: `days` day buckets, the same days' tag HASHes, then
  /// hour buckets, all under one hash tag; one script, reads only. Answers each day's and each
  /// hour's spend, in the order given.
  pub async fn spend_history(
    &self,
    days: &[String],
    day_tags: &[String],
    hours: &[String],
  ) -> Result<(Vec<Spent>, Vec<Spent>), StoreError> {
    let mut inv = super::scripts::SPEND.prepare_invoke();
    for k in days.iter().chain(day_tags).chain(hours) {
      inv.key(k);
    }
    inv.arg("h").arg(days.len());
    let flat: Vec<Vec<String>> = self.run(inv).await?;
    let n = days.len();
    let spent = |fields: &[String], tags: Option<&[String]>| {
      let mut s = Spent::default();
      for (f, v) in pairs(fields.to_vec()) {
        if f == "s" {
          s.spent = v;
        } else if let Some(m) = f.strip_prefix("M:") {
          s.models.push((m.to_string(), v));
        }
      }
      s.models.sort();
      if let Some(t) = tags {
        s.tags = pairs(t.to_vec());
        s.tags.sort();
      }
      s
    };
    let day_list = (0..n)
      .map(|i| {
        spent(
          flat.get(i).map_or(&[][..], |v| v),
          Some(flat.get(n + i).map_or(&[][..], |v| v)),
        )
      })
      .collect();
    let hour_list = (2 * n..flat.len()).map(|i| spent(&flat[i], None)).collect();
    Ok((day_list, hour_list))
  }
}
