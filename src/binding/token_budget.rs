//! `TokenBudgetCore`: the token budget of one `TokenBudget` (lib/token-budget.js).

use napi_derive::napi;

use super::clock::{local, remote};
use super::error::ms;
use super::id::Id;
use super::store::{open_redis, Backend, NativeStore};
use crate::engine::token_budget::{Budget, Decision, Limit, Op};

#[napi(object)]
pub struct BudgetDecision {
  pub allowed: bool,
  pub used: f64,
  pub reserved: f64,
  pub remaining: f64,
  pub reset_in_seconds: f64,
  /// Set when a reservation was granted.
  pub hold_id: Option<String>,
  pub hold_expires_at: Option<f64>,
}

impl From<Decision> for BudgetDecision {
  fn from(d: Decision) -> Self {
    BudgetDecision {
      allowed: d.allowed,
      used: d.used as f64,
      reserved: d.reserved as f64,
      remaining: d.remaining as f64,
      reset_in_seconds: d.reset_in_seconds as f64,
      hold_expires_at: d.hold.as_ref().map(|h| h.expires_at as f64),
      hold_id: d.hold.map(|h| h.id),
    }
  }
}

/// 0 check, 1 record, 2 reserve, 3 settle, 4 release.
fn op(code: u32, tokens: f64, hold_id: String) -> Op {
  let tokens = ms(tokens);
  match code {
    0 => Op::Check,
    1 => Op::Record(tokens),
    2 => Op::Reserve(tokens),
    3 => Op::Settle {
      id: hold_id,
      actual: tokens,
    },
    _ => Op::Release { id: hold_id },
  }
}

#[napi]
pub struct TokenBudgetCore {
  backend: Backend,
  prefix: String,
  limit: Limit,
}

#[napi]
impl TokenBudgetCore {
  #[napi(constructor)]
  pub fn new(store: &NativeStore, prefix: String, max: f64, period_ms: f64, hold_ms: f64) -> Self {
    TokenBudgetCore {
      backend: store.backend.clone(),
      prefix,
      limit: Limit {
        max: ms(max),
        period_ms: ms(period_ms).max(1),
        hold_ms: ms(hold_ms).max(1),
      },
    }
  }

  #[napi(catch_unwind)]
  pub fn run(
    &self,
    code: u32,
    bucket: Id,
    tokens: f64,
    hold_id: String,
    now: f64,
  ) -> napi::Result<BudgetDecision> {
    let key = format!("{}{}", self.prefix, bucket.as_str());
    let (limit, now, op) = (self.limit, local(now), op(code, tokens, hold_id));
    let store = self.backend.memory()?;
    Ok(
      store
        .update(&key, now, |b: &mut Box<Budget>| {
          let d = b.apply(limit, now, &op);
          (d, b.keep_until(limit).into())
        })?
        .into(),
    )
  }

  #[napi]
  pub async fn run_async(
    &self,
    code: u32,
    bucket: Id,
    tokens: f64,
    hold_id: String,
    now: f64,
  ) -> napi::Result<BudgetDecision> {
    let redis = open_redis(&self.backend)?;
    let key = format!("{}{}", self.prefix, bucket.as_str());
    let d = redis
      .budget(&key, self.limit, remote(now), &op(code, tokens, hold_id))
      .await?;
    Ok(d.into())
  }
}
