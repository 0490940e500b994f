//! Guard's meters on Redis: `scripts/guard.lua`.
//!
//! On a single server (or Valkey) every meter of a decision goes in one EVALSHA: one round trip
//! to acquire, one to settle, however many limits apply, and the script makes the decision
//! atomic. On a Cluster the meters of one decision live in different slots (each meter's keys
//! share one hash tag, so a scope's meter can live on any node). There the decision is made
//! meter by meter, all sent at once: each meter's check-and-hold is atomic on its node, so no
//! limit is ever exceeded; when any refuses, the holds the others made are cancelled at once
//! (a refused call is charged nothing once the reply is in). Between the two replies a
//! concurrent caller may see those holds and be refused too — the Cluster trades a rare
//! extra refusal for never admitting over a limit. If the cancel cannot be sent (the node went
//! away), the holds expire with their lifetime.

use super::{RedisStore, StoreError};
use crate::engine::guard::{Acquired, Kind, Spec};

/// The two keys of a meter whose keys start with `base` (which carries the hash tag).
fn keys(base: &str) -> [String; 2] {
  [format!("{base}:m"), format!("{base}:x")]
}

/// One meter's seven arguments (guard.lua's header).
fn push_meter(args: &mut Vec<String>, kind: &Kind, amount: i64, number: u64, expires: u64) {
  let (code, max, a, b) = match *kind {
    Kind::Window { max, window_ms } => ("w", max, window_ms, 0),
    Kind::Period { max, id, end_ms } => ("p", max, id, end_ms),
    Kind::Concurrent { max } => ("c", max, 0, 0),
  };
  args.push(code.into());
  args.push(max.to_string());
  args.push(a.to_string());
  args.push(b.to_string());
  args.push(amount.to_string());
  args.push(number.to_string());
  args.push(expires.to_string());
}

impl RedisStore {
  async fn guard_call(
    &self,
    op: &str,
    bases: &[&str],
    now: u64,
    hold_ms: u64,
    meters: &[(Kind, i64, u64, u64)],
  ) -> Result<Vec<i64>, StoreError> {
    let mut inv = super::scripts::GUARD.prepare_invoke();
    for base in bases {
      for k in keys(base) {
        inv.key(k);
      }
    }
    let mut args = Vec::with_capacity(3 + 7 * meters.len());
    args.push(op.to_owned());
    args.push(now.to_string());
    args.push(hold_ms.to_string());
    for (kind, amount, number, expires) in meters {
      push_meter(&mut args, kind, *amount, *number, *expires);
    }
    for a in args {
      inv.arg(a);
    }
    self.run(inv).await
  }

  /// One decision over the meters at `bases` (see the module doc for a Cluster).
  pub async fn guard_acquire(
    &self,
    bases: &[&str],
    specs: &[Spec],
    now: u64,
    hold_ms: u64,
  ) -> Result<Acquired, StoreError> {
    let n = specs.len();
    let expires_at = now.saturating_add(hold_ms);
    let meters: Vec<(Kind, i64, u64, u64)> = specs
      .iter()
      .map(|s| (s.kind, s.amount as i64, 0, 0))
      .collect();
    if !self.is_cluster() || n == 1 {
      let r = self.guard_call("a", bases, now, hold_ms, &meters).await?;
      return acquired(&r, n, expires_at);
    }
    let replies = futures_util::future::join_all(
      (0..n).map(|i| self.guard_call("a", &bases[i..=i], now, hold_ms, &meters[i..=i])),
    )
    .await;
    let mut out = Acquired {
      ok: true,
      refused: None,
      wait_ms: Some(0),
      remaining: vec![0; n],
      holds: vec![0; n],
      expires_at,
    };
    let mut error = None;
    let mut admitted = Vec::new();
    for (i, reply) in replies.into_iter().enumerate() {
      match reply.and_then(|r| acquired(&r, 1, expires_at)) {
        Ok(one) if one.ok => {
          out.remaining[i] = one.remaining[0];
          out.holds[i] = one.holds[0];
          admitted.push(i);
        }
        Ok(one) => {
          out.ok = false;
          out.refused.get_or_insert(i);
          out.remaining[i] = one.remaining[0];
          out.wait_ms = match (out.wait_ms, one.wait_ms) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
          };
        }
        Err(e) => {
          out.ok = false;
          error.get_or_insert(e);
        }
      }
    }
    if out.ok {
      out.wait_ms = None;
      return Ok(out);
    }
    // Refused (or a node failed): give back what the others took, all at once.
    let undo: Vec<usize> = admitted;
    let cancels = futures_util::future::join_all(undo.iter().map(|&i| {
      let m = [(specs[i].kind, -1, out.holds[i], expires_at)];
      async move { self.guard_call("e", &bases[i..=i], now, hold_ms, &m).await }
    }))
    .await;
    for (&i, c) in undo.iter().zip(cancels) {
      if c.is_ok() {
        let amount = match specs[i].kind {
          Kind::Concurrent { .. } => 1,
          _ => specs[i].amount,
        };
        out.remaining[i] = (out.remaining[i] + amount).min(specs[i].kind.max());
      }
    }
    out.holds.clear();
    match error {
      Some(e) => Err(e),
      None => Ok(out),
    }
  }

  /// Ends the holds `(number, expires_at)` of the meters at `bases`, each with its real
  /// amount (-1 cancels): per meter, whether the hold was still outstanding.
  pub async fn guard_end(
    &self,
    bases: &[&str],
    kinds: &[Kind],
    holds: &[(u64, u64)],
    amounts: &[i64],
    now: u64,
  ) -> Result<Vec<bool>, StoreError> {
    let meters: Vec<(Kind, i64, u64, u64)> = (0..kinds.len())
      .map(|i| (kinds[i], amounts[i], holds[i].0, holds[i].1))
      .collect();
    if !self.is_cluster() || kinds.len() == 1 {
      let r = self.guard_call("e", bases, now, 0, &meters).await?;
      return Ok(r.iter().map(|&x| x == 1).collect());
    }
    let replies = futures_util::future::join_all(
      (0..kinds.len()).map(|i| self.guard_call("e", &bases[i..=i], now, 0, &meters[i..=i])),
    )
    .await;
    let mut out = Vec::with_capacity(kinds.len());
    for r in replies {
      out.push(r?.first() == Some(&1));
    }
    Ok(out)
  }

  /// Counts calls admitted while the store was away, at `now` (when they were made), without
  /// asking: per meter, what is left.
  pub async fn guard_record(
    &self,
    bases: &[&str],
    specs: &[Spec],
    now: u64,
  ) -> Result<Vec<u64>, StoreError> {
    let meters: Vec<(Kind, i64, u64, u64)> = specs
      .iter()
      .map(|s| (s.kind, s.amount as i64, 0, 0))
      .collect();
    if !self.is_cluster() || specs.len() == 1 {
      let r = self.guard_call("r", bases, now, 0, &meters).await?;
      return Ok(r.iter().map(|&x| x.max(0) as u64).collect());
    }
    let replies = futures_util::future::join_all(
      (0..specs.len()).map(|i| self.guard_call("r", &bases[i..=i], now, 0, &meters[i..=i])),
    )
    .await;
    let mut out = Vec::with_capacity(specs.len());
    for r in replies {
      out.push(r?.first().map_or(0, |&x| x.max(0) as u64));
    }
    Ok(out)
  }

  /// What is left of each meter, counting nothing.
  pub async fn guard_peek(
    &self,
    bases: &[&str],
    kinds: &[Kind],
    now: u64,
  ) -> Result<Vec<u64>, StoreError> {
    let meters: Vec<(Kind, i64, u64, u64)> = kinds.iter().map(|k| (*k, 0, 0, 0)).collect();
    if !self.is_cluster() || kinds.len() == 1 {
      let r = self.guard_call("p", bases, now, 0, &meters).await?;
      return Ok(r.iter().map(|&x| x.max(0) as u64).collect());
    }
    let replies = futures_util::future::join_all(
      (0..kinds.len()).map(|i| self.guard_call("p", &bases[i..=i], now, 0, &meters[i..=i])),
    )
    .await;
    let mut out = Vec::with_capacity(kinds.len());
    for r in replies {
      out.push(r?.first().map_or(0, |&x| x.max(0) as u64));
    }
    Ok(out)
  }
}

/// guard.lua's reply to an acquire of `n` meters.
fn acquired(r: &[i64], n: usize, expires_at: u64) -> Result<Acquired, StoreError> {
  if r.len() < 3 + n {
    return Err(StoreError::Command(format!(
      "guard.lua replied {} values for {n} meters",
      r.len()
    )));
  }
  let ok = r[0] == 1;
  Ok(Acquired {
    ok,
    refused: (r[1] >= 0).then_some(r[1] as usize),
    wait_ms: (!ok && r[2] >= 0).then_some(r[2] as u64),
    remaining: r[3..3 + n].iter().map(|&x| x.max(0) as u64).collect(),
    holds: if ok {
      r.get(3 + n..3 + 2 * n)
        .ok_or_else(|| StoreError::Command("guard.lua replied no hold numbers".into()))?
        .iter()
        .map(|&x| x as u64)
        .collect()
    } else {
      Vec::new()
    },
    expires_at,
  })
}
