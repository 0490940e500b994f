//! CostTracker's spend ledger on Redis: `scripts/spend.lua`, one EVALSHA per decision over the
//! day's and the month's buckets (four keys under one hash tag).

use super::{RedisStore, StoreError};
use crate::engine::spend::{Calendar, Config, Decision, Hold, Op, Period, Totals};

/// The four keys of one decision: the day's bucket and tags, the month's bucket and tags.
pub struct SpendKeys<'a> {
  pub day: &'a str,
  pub day_tags: &'a str,
  pub month: &'a str,
  pub month_tags: &'a str,
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
    let (code, amount, id, op_tags): (&str, u64, &str, &[String]) = match op {
      Op::Check if tags => ("t", 0, "", &[]),
      Op::Check => ("c", 0, "", &[]),
      Op::Record { nano, tags } => ("r", *nano, "", tags),
      Op::Reserve { nano } => ("v", *nano, cal.day.as_str(), &[]),
      Op::Settle { id, nano, tags } => ("s", *nano, id, tags),
      Op::Release { id } => ("l", 0, id, &[]),
    };
    let thresholds: Vec<String> = cfg.thresholds.iter().map(|t| t.to_string()).collect();
    let (day_kept, month_kept) = cal.keep_until();
    let mut inv = super::scripts::SPEND.prepare_invoke();
    inv
      .key(keys.day)
      .key(keys.day_tags)
      .key(keys.month)
      .key(keys.month_tags)
      .arg(code)
      .arg(now)
      .arg(day_kept)
      .arg(month_kept)
      .arg(budget(cfg.daily_budget))
      .arg(budget(cfg.monthly_budget))
      .arg(cfg.hold_ms)
      .arg(amount)
      .arg(id)
      .arg(thresholds.join(","));
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
}
