//! Property tests of the engines: random sequences of calls at random times, checking the
//! invariants each engine promises (never over-admit, never negative, refusals that last as
//! long as they say, no panic on extreme values).

use std::collections::VecDeque;

use proptest::prelude::*;
use tollgate::engine::quota::{self, KeyInput, Moment, Options, QuotaState};
use tollgate::engine::sliding_window::{self, Limit, Op};
use tollgate::engine::spend;
use tollgate::engine::token_budget::{self, Budget};

fn window_op() -> impl Strategy<Value = Op> {
  prop_oneof![Just(Op::Check), Just(Op::Consume), Just(Op::Record)]
}

proptest! {
  #![proptest_config(ProptestConfig::with_cases(400))]

  /// Consume never admits more than `max` in any window; a refusal lasts `reset_ms` (what the
  /// blocked-key cache relies on); the numbers stay in range.
  #[test]
  fn sliding_window_never_over_admits(
    max in 1u32..12,
    window in 1u64..5_000,
    steps in prop::collection::vec((0u64..1_500, window_op()), 1..250),
  ) {
    let limit = Limit { max, window_ms: window };
    let mut log = VecDeque::new();
    let mut now = 0u64;
    let mut consumed: Vec<u64> = Vec::new();
    let mut blocked_until = 0u64;
    for (dt, op) in steps {
      now += dt;
      let d = sliding_window::apply(&mut log, limit, now, op);
      prop_assert!(d.remaining <= max);
      prop_assert!(d.reset_ms >= 1 && d.reset_ms <= window);
      prop_assert_eq!(d.reset_in_seconds, d.reset_ms.div_ceil(1000));
      if op != Op::Record && now < blocked_until {
        prop_assert!(!d.allowed, "refused until {} but admitted at {}", blocked_until, now);
      }
      if !d.allowed {
        prop_assert_eq!(d.remaining, 0);
        blocked_until = blocked_until.max(now + d.reset_ms);
      }
      if op == Op::Consume && d.allowed {
        consumed.push(now);
      }
      let in_window = consumed.iter().filter(|&&t| t + window > now).count();
      prop_assert!(in_window <= max as usize);
    }
  }

  /// A granted reservation never takes `used + reserved` over `max`; nothing overflows even
  /// with amounts near the largest JavaScript integer.
  #[test]
  fn token_budget_reservations_never_overspend(
    max in prop_oneof![1u64..1_000, Just(1u64 << 53)],
    steps in prop::collection::vec((0u64..5_000, 0u8..5, prop_oneof![0u64..400, Just(1u64 << 53)], 0usize..8), 1..200),
  ) {
    let limit = token_budget::Limit { max, period_ms: 20_000, hold_ms: 3_000 };
    let mut b = Budget::default();
    let mut holds: Vec<String> = Vec::new();
    let mut now = 0u64;
    for (dt, code, tokens, pick) in steps {
      now += dt;
      let op = match code {
        0 => token_budget::Op::Check,
        1 => token_budget::Op::Record(tokens),
        2 => token_budget::Op::Reserve(tokens),
        3 => token_budget::Op::Settle { id: holds.get(pick).cloned().unwrap_or_default(), actual: tokens },
        _ => token_budget::Op::Release { id: holds.get(pick).cloned().unwrap_or_default() },
      };
      let before = b.used.saturating_add(b.reserved());
      let d = b.apply(limit, now, &op);
      // The kept total is the sum of the live holds, and none of them has expired.
      prop_assert_eq!(b.reserved(), b.holds().fold(0u64, |s, h| s.saturating_add(h.tokens)));
      prop_assert!(b.holds().all(|h| h.expires_at > now));
      prop_assert!(d.remaining <= max);
      prop_assert_eq!(d.remaining, max.saturating_sub(d.used.saturating_add(d.reserved)));
      if let token_budget::Op::Reserve(t) = op {
        if d.allowed {
          prop_assert!(d.used.saturating_add(d.reserved) <= max);
          holds.push(d.hold.clone().unwrap().id);
        } else {
          prop_assert!(before.saturating_add(t) > max || d.used.saturating_add(d.reserved).saturating_add(t) > max);
        }
      }
    }
  }

  /// The spend ledger: a granted reservation fits both budgets; each alert threshold fires at
  /// most once per bucket.
  #[test]
  fn spend_never_overspends_and_alerts_once(
    daily in 1u64..10_000,
    monthly in 1u64..50_000,
    steps in prop::collection::vec((0u64..3_600_000, 0u8..5, 0u64..3_000, 0usize..8), 1..200),
  ) {
    let cfg = spend::Config { daily_budget: Some(daily), monthly_budget: Some(monthly), hold_ms: 600_000, thresholds: vec![0.5, 0.8, 1.0], history_ms: 0 };
    let start = 1_795_564_800_000u64; // 2026-11-25
    let mut now = start;
    let mut buckets: std::collections::HashMap<String, spend::Bucket> = Default::default();
    let mut alerted: std::collections::HashMap<(String, u64), u32> = Default::default();
    let mut holds: Vec<String> = Vec::new();
    for (dt, code, nano, pick) in steps {
      now += dt;
      let cal = spend::calendar(now);
      let mut day = buckets.remove(&cal.day).unwrap_or_default();
      let mut month = buckets.remove(&cal.month).unwrap_or_default();
      let id = holds.get(pick).cloned().unwrap_or_default();
      let op = match code {
        0 => spend::Op::Check,
        1 => spend::Op::Record { nano, tags: vec![], model: None },
        2 => spend::Op::Reserve { nano },
        3 => spend::Op::Settle { id, nano, tags: vec![], model: None },
        _ => spend::Op::Release { id },
      };
      let d = spend::apply(&cfg, now, &mut day, &mut month, &op);
      for b in [&day, &month] {
        prop_assert_eq!(b.reserved(), b.holds().map(|h| h.nano).sum::<u64>());
        prop_assert!(b.holds().all(|h| h.expires_at > now));
      }
      if let spend::Op::Reserve { .. } = op {
        if d.allowed {
          prop_assert!(d.day.spent + d.day.reserved <= daily);
          prop_assert!(d.month.spent + d.month.reserved <= monthly);
          holds.push(d.hold.clone().unwrap().id);
        }
      }
      for (period, t) in &d.alerts {
        let label = match period { spend::Period::Day => cal.day.clone(), spend::Period::Month => cal.month.clone() };
        let n = alerted.entry((label, (t * 100.0) as u64)).or_default();
        *n += 1;
        prop_assert_eq!(*n, 1);
      }
      buckets.insert(cal.day.clone(), day);
      buckets.insert(cal.month.clone(), month);
    }
  }

  /// Quota never counts more requests a day than a key's cap, never waits a negative or
  /// infinite time, and with `strictTpm` never holds more than TPM tokens in a window.
  #[test]
  fn quota_never_over_admits(
    rpd in 1.0f64..40.0,
    tpm in 10.0f64..500.0,
    steps in prop::collection::vec((0u64..4_000, 0u8..4, 0.0f64..120.0, 0usize..8), 1..200),
  ) {
    let o = Options { strict_tpm: true, monotonic: true, hold_ttl_ms: Some(30_000.0), ..Options::new(None, Some(0.0), None) };
    let keys: Vec<KeyInput> = ["a", "b"].iter().enumerate().map(|(i, id)| KeyInput {
      id: Some(id.to_string()), name: id.to_string(), rpm: Some(600.0), tpm: Some(tpm), rpd: Some(rpd), tpd: None,
      priority: None, enabled: true, rank: i as u32,
    }).collect();
    let mut state = QuotaState::default();
    let mut now = 1_000_000.0f64;
    let mut holds: Vec<(String, String)> = Vec::new();
    for (n, (dt, code, tokens, pick)) in steps.into_iter().enumerate() {
      now += dt as f64;
      let m = Moment { now, day: "2026-11-25".into(), reset_at: now + 86_400_000.0 };
      match code {
        0 | 1 => {
          let d = if code == 0 {
            quota::check(&mut state, &keys, tokens, &m, &o)
          } else {
            quota::reserve(&mut state, "s", &keys, tokens, &format!("h{n}"), &m, &o)
          };
          if let Some(w) = d.wait_ms { prop_assert!(w.is_finite() && w >= 0.0) }
          for c in &d.checks {
            if let Some(w) = c.wait_ms { prop_assert!(w.is_finite() && w >= 0.0) }
            prop_assert!(c.daily_used >= 0.0 && c.token_used >= 0.0);
          }
          if let Some(h) = d.hold { holds.push((h.key, h.id)) }
        }
        2 => if let Some((k, id)) = holds.get(pick) { quota::commit(&mut state, k, id, Some(tokens), now, &o); },
        _ => if let Some((k, id)) = holds.get(pick) { quota::rollback(&mut state, k, id, now, &o); },
      }
      for k in &keys {
        if let Some(ks) = state.key(&k.name) {
          prop_assert!(ks.used <= quota::daily_cap(Some(rpd), None), "{} used {} > cap", k.name, ks.used);
          prop_assert!(ks.used >= 0.0 && ks.day_tokens >= 0.0);
        }
      }
    }
  }
}

/// Counters saturate instead of overflowing (a panic here would abort Node): 3,000 records of
/// 2^53 tokens pass u64::MAX.
#[test]
fn token_budget_survives_huge_amounts() {
  let limit = token_budget::Limit {
    max: 1u64 << 53,
    period_ms: 1_000,
    hold_ms: 1_000,
  };
  let mut b = Budget::default();
  for _ in 0..3_000 {
    b.apply(limit, 0, &token_budget::Op::Record(1u64 << 53));
  }
  assert_eq!(b.used, u64::MAX);
  let d = b.apply(limit, 0, &token_budget::Op::Reserve(1));
  assert!(!d.allowed);
  assert_eq!(d.remaining, 0);
}
