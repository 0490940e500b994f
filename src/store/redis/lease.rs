//! Leases on Redis: `scripts/lease.lua`, one EVALSHA that gives back a process's lease on a
//! limit and takes the next one. The sizing and the in-process accounting live in lib/lease.js
//! (the hot path runs there); here the script's ARGV are laid out and its reply read.

use super::scripts::LEASE;
use super::{RedisStore, StoreError};

/// The limit a lease is taken on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseMode {
  /// A RateLimiter's sliding window: requests per window.
  Window,
  /// A TokenBudget's period: tokens per period (the bucket of budget.lua).
  Budget,
}

/// One round trip: gives back the lease `back` (0: none) and asks for `want` units (0: none).
#[derive(Clone, Debug, PartialEq)]
pub struct LeaseCall<'a> {
  pub mode: LeaseMode,
  /// The limit: requests per window, or tokens per period.
  pub max: f64,
  /// The window or the period (ms).
  pub span_ms: f64,
  /// How long a lease lasts (ms).
  pub lease_ms: f64,
  /// The caller's clock (ms), or None for the server's.
  pub now: Option<f64>,
  /// The process-unique holder.
  pub holder: &'a str,
  /// Units wanted for the new lease (0: give back only).
  pub want: f64,
  /// The holder's demand per window, weighing its fair share; None: want × window / lease
  /// time. `want` 0 with a demand 0: the holder is done (its want is forgotten).
  pub demand: Option<f64>,
  /// Most units one lease may hold.
  pub share: f64,
  /// The number of the lease given back, or 0.
  pub back: f64,
  /// Window: the given-back lease's start (server ms, as the script returned it; -1: now).
  /// Budget: the period start it belonged to.
  pub back_start: f64,
  /// Window: the grid use times are rounded up to (ms). Budget: the fewest units worth a
  /// lease (a reservation's size).
  pub grid_or_least: f64,
  /// Window: pairs (use time offset from the lease's start, units). Budget: tokens used
  /// under the lease, tokens of its open reservations carried into the new lease, then pairs
  /// (held tokens, ms until the hold expires) of reservations that become holds of their own.
  pub uses: &'a [f64],
}

/// What the script answered.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LeaseReply {
  /// The new lease's number, or 0 when none was granted.
  pub number: i64,
  /// Units granted.
  pub units: i64,
  /// The server's clock (ms).
  pub now: i64,
  /// When the lease expires (ms, server clock; a budget's never past the period's end).
  pub expires: i64,
  /// Ms until a unit frees, when nothing is left.
  pub wait: i64,
  /// Units left unleased and unused.
  pub left: i64,
  /// Budget only: the period's start, tokens used, tokens reserved (leases included), then
  /// the numbers of the holds made from the reservations given back (0: a hold of a finished
  /// period).
  pub budget: Option<BudgetReply>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct BudgetReply {
  pub period: i64,
  pub used: i64,
  pub reserved: i64,
  pub holds: Vec<i64>,
}

/// A number as the script reads it (`tonumber`, or digits where it matches `%d+`): whole
/// numbers as integers, others as the shortest exact decimal.
fn num(x: f64) -> String {
  if x.fract() == 0.0 && x.abs() < 9.0e15 {
    (x as i64).to_string()
  } else {
    x.to_string()
  }
}

impl LeaseCall<'_> {
  /// The script's ARGV (see its header).
  fn args(&self) -> Vec<String> {
    let mut a = Vec::with_capacity(11 + self.uses.len());
    let asked = match self.demand {
      Some(d) => format!("{}:{}", num(self.want), num(d)),
      None => num(self.want),
    };
    a.extend([
      (match self.mode {
        LeaseMode::Window => "w",
        LeaseMode::Budget => "b",
      })
      .to_owned(),
      num(self.max),
      num(self.span_ms),
      num(self.lease_ms),
      num(self.now.unwrap_or(-1.0)),
      self.holder.to_owned(),
      asked,
      num(self.share),
      num(self.back),
      num(self.back_start),
      num(self.grid_or_least),
    ]);
    a.extend(self.uses.iter().map(|&x| num(x)));
    a
  }
}

impl LeaseReply {
  fn from(mode: LeaseMode, r: Vec<i64>) -> Result<Self, StoreError> {
    let at = |i: usize| {
      r.get(i)
        .copied()
        .ok_or_else(|| StoreError::Command("lease.lua returned an unexpected reply".into()))
    };
    Ok(LeaseReply {
      number: at(0)?,
      units: at(1)?,
      now: at(2)?,
      expires: at(3)?,
      wait: at(4)?,
      left: at(5)?,
      budget: match mode {
        LeaseMode::Window => None,
        LeaseMode::Budget => Some(BudgetReply {
          period: at(6)?,
          used: at(7)?,
          reserved: at(8)?,
          holds: r[9..].to_vec(),
        }),
      },
    })
  }
}

impl RedisStore {
  /// Runs the lease script on `key`: gives back and takes a lease as `call` says.
  pub async fn lease(&self, key: &str, call: &LeaseCall<'_>) -> Result<LeaseReply, StoreError> {
    let mut inv = LEASE.prepare_invoke();
    inv.key(key);
    for a in call.args() {
      inv.arg(a);
    }
    LeaseReply::from(call.mode, self.run(inv).await?)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn call(mode: LeaseMode, demand: Option<f64>, uses: &[f64]) -> LeaseCall<'_> {
    LeaseCall {
      mode,
      max: 600.0,
      span_ms: 60_000.0,
      lease_ms: 5_000.0,
      now: None,
      holder: "7.abc.1",
      want: 50.0,
      demand,
      share: 600.0,
      back: 3.0,
      back_start: 1_700_000_000_123.0,
      grid_or_least: 600.0,
      uses,
    }
  }

  #[test]
  fn argv_follows_the_script_header() {
    let c = call(LeaseMode::Window, Some(120.0), &[600.0, 4.0, 1200.0, 1.0]);
    assert_eq!(
      c.args(),
      [
        "w",
        "600",
        "60000",
        "5000",
        "-1",
        "7.abc.1",
        "50:120",
        "600",
        "3",
        "1700000000123",
        "600",
        "600",
        "4",
        "1200",
        "1"
      ]
    );
    let c = LeaseCall {
      now: Some(12.5),
      want: 0.0,
      ..call(LeaseMode::Budget, None, &[])
    };
    assert_eq!(
      &c.args()[..7],
      ["b", "600", "60000", "5000", "12.5", "7.abc.1", "0"]
    );
  }

  #[test]
  fn the_reply_by_mode() {
    let r = LeaseReply::from(
      LeaseMode::Budget,
      vec![4, 50, 1000, 6000, 0, 300, 0, 7, 57, 2, 0],
    )
    .unwrap();
    assert_eq!((r.number, r.units, r.left), (4, 50, 300));
    assert_eq!(
      r.budget,
      Some(BudgetReply {
        period: 0,
        used: 7,
        reserved: 57,
        holds: vec![2, 0]
      })
    );
    let w = LeaseReply::from(LeaseMode::Window, vec![0, 0, 1000, 0, 250, 0]).unwrap();
    assert_eq!((w.number, w.wait, w.budget), (0, 250, None));
    assert!(LeaseReply::from(LeaseMode::Budget, vec![1, 2, 3, 4, 5, 6]).is_err());
  }
}
