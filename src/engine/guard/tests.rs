use proptest::prelude::*;

use super::*;

const HOLD: u64 = 1_000;

fn win(max: u64, window_ms: u64, amount: u64) -> Spec {
  Spec {
    kind: Kind::Window { max, window_ms },
    amount,
  }
}

#[test]
fn refusal_charges_no_meter() {
  let (mut a, mut b, mut c) = (Meter::default(), Meter::default(), Meter::default());
  let specs = [
    win(10, 1_000, 1),
    Spec {
      kind: Kind::Concurrent { max: 5 },
      amount: 0,
    },
    win(100, 1_000, 80),
  ];
  assert!(acquire(&mut [&mut a, &mut b, &mut c], &specs, 0, HOLD).ok);
  let before = (a.clone(), b.clone(), c.clone());
  let r = acquire(&mut [&mut a, &mut b, &mut c], &specs, 1, HOLD);
  assert_eq!((r.ok, r.refused), (false, Some(2)));
  assert_eq!(r.remaining, vec![9, 4, 20]);
  assert!(r.holds.is_empty());
  assert_eq!((a, b, c), before);
}

#[test]
fn settle_replaces_the_estimate_and_cancel_gives_all_back() {
  let mut m = Meter::default();
  let s = win(1_000, 60_000, 500);
  let r = acquire(&mut [&mut m], &[s], 0, HOLD);
  assert!(settle(&mut m, &s.kind, (r.holds[0], r.expires_at), 120, 5));
  assert_eq!(m.total(), 120);
  // settled once: a second settle or cancel finds nothing
  assert!(!settle(&mut m, &s.kind, (r.holds[0], r.expires_at), 1, 6));
  assert!(!cancel(&mut m, &s.kind, (r.holds[0], r.expires_at), 6));
  let r2 = acquire(&mut [&mut m], &[s], 10, HOLD);
  assert!(cancel(&mut m, &s.kind, (r2.holds[0], r2.expires_at), 11));
  assert_eq!(m.total(), 120);
  // real usage over the estimate is charged
  let r3 = acquire(&mut [&mut m], &[s], 12, HOLD);
  assert!(settle(
    &mut m,
    &s.kind,
    (r3.holds[0], r3.expires_at),
    2_000,
    13
  ));
  assert_eq!(m.total(), 2_120);
  assert_eq!(m.remaining(&s.kind), 0);
}

#[test]
fn an_unsettled_hold_expires_and_gives_back_its_capacity() {
  let mut m = Meter::default();
  let c = Spec {
    kind: Kind::Concurrent { max: 1 },
    amount: 0,
  };
  assert!(acquire(&mut [&mut m], &[c], 0, HOLD).ok);
  let r = acquire(&mut [&mut m], &[c], HOLD - 1, HOLD);
  assert!(!r.ok);
  assert_eq!(r.wait_ms, Some(1));
  assert!(acquire(&mut [&mut m], &[c], HOLD, HOLD).ok);

  let mut w = Meter::default();
  let s = win(10, 60_000, 10);
  assert!(acquire(&mut [&mut w], &[s], 0, HOLD).ok);
  assert!(!acquire(&mut [&mut w], &[s], 10, HOLD).ok);
  assert!(acquire(&mut [&mut w], &[s], HOLD, HOLD).ok);
}

#[test]
fn windows_slide_and_waits_point_at_the_entry_that_frees_room() {
  let mut m = Meter::default();
  let s = win(3, 1_000, 1);
  for t in [0, 100, 200] {
    let r = acquire(&mut [&mut m], &[s], t, 10_000);
    settle(&mut m, &s.kind, (r.holds[0], r.expires_at), 1, t);
  }
  let r = acquire(&mut [&mut m], &[s], 300, 10_000);
  assert_eq!(r.wait_ms, Some(700));
  assert!(acquire(&mut [&mut m], &[s], 1_000, 10_000).ok);
  // asking for more than the limit never fits
  let r = acquire(&mut [&mut m], &[win(3, 1_000, 4)], 1_001, 10_000);
  assert_eq!((r.ok, r.wait_ms), (false, None));
}

#[test]
fn periods_restart_and_never_reopen() {
  let mut m = Meter::default();
  let day = |id| Spec {
    kind: Kind::Period {
      max: 10,
      id,
      end_ms: id * 100 + 100,
    },
    amount: 6,
  };
  let r = acquire(&mut [&mut m], &[day(1)], 150, HOLD);
  assert!(r.ok);
  let late = acquire(&mut [&mut m], &[day(1)], 160, HOLD);
  assert_eq!(late.wait_ms, Some(40));
  assert!(acquire(&mut [&mut m], &[day(2)], 200, HOLD).ok);
  // the first hold was counted in period 1: settling it now changes nothing in period 2
  assert!(settle(
    &mut m,
    &day(2).kind,
    (r.holds[0], r.expires_at),
    0,
    210
  ));
  assert_eq!(m.total(), 6);
  // a clock that went back counts in the newest period
  assert!(!acquire(&mut [&mut m], &[day(1)], 150, HOLD).ok);
}

#[test]
fn keep_until_covers_entries_periods_and_holds() {
  let mut m = Meter::default();
  let s = win(10, 500, 1);
  let r = acquire(&mut [&mut m], &[s], 100, 2_000);
  assert_eq!(m.keep_until(&s.kind), 2_100);
  settle(&mut m, &s.kind, (r.holds[0], r.expires_at), 1, 100);
  assert_eq!(m.keep_until(&s.kind), 600);
  m.refresh(&s.kind, 600);
  assert!(m.is_empty());
}

#[test]
fn record_counts_without_asking_and_skips_ended_periods() {
  let mut w = Meter::default();
  let s = win(10, 1_000, 8);
  record(&mut w, &s, 100);
  record(&mut w, &s, 50); // an earlier time is kept in order
  assert_eq!(w.total(), 16);
  w.refresh(&s.kind, 1_100);
  assert_eq!(w.total(), 0);
  let day = |id| Spec {
    kind: Kind::Period {
      max: 10,
      id,
      end_ms: 0,
    },
    amount: 4,
  };
  let mut p = Meter::default();
  record(&mut p, &day(2), 0);
  record(&mut p, &day(1), 0); // period 1 is over
  assert_eq!(p.total(), 4);
  let mut c = Meter::default();
  let conc = Spec {
    kind: Kind::Concurrent { max: 1 },
    amount: 0,
  };
  record(&mut c, &conc, 0);
  assert!(c.is_empty());
}

// ---- against a model that recounts everything ---------------------------------------------

/// One hold as the model keeps it: every field is recomputed from these, never updated in
/// running sums.
#[derive(Clone, Debug)]
struct Rec {
  at: u64,
  amount: u64,
  open: bool,
  expires_at: u64,
  period: u64,
  gone: bool,
}

#[derive(Clone, Debug, Default)]
struct Model {
  recs: Vec<Rec>,
  period: u64,
}

impl Model {
  fn refresh(&mut self, kind: &Kind, now: u64) {
    for r in &mut self.recs {
      if r.open && r.expires_at <= now {
        r.open = false;
        r.amount = 0;
      }
    }
    match *kind {
      Kind::Window { window_ms, .. } => {
        for r in &mut self.recs {
          if r.at + window_ms <= now {
            r.gone = true;
          }
        }
      }
      Kind::Period { id, .. } => self.period = self.period.max(id),
      Kind::Concurrent { .. } => {}
    }
  }

  fn total(&self, kind: &Kind) -> u64 {
    match kind {
      Kind::Window { .. } => self.recs.iter().filter(|r| !r.gone).map(|r| r.amount).sum(),
      Kind::Period { .. } => self
        .recs
        .iter()
        .filter(|r| r.period == self.period)
        .map(|r| r.amount)
        .sum(),
      Kind::Concurrent { .. } => self.recs.iter().filter(|r| r.open).count() as u64,
    }
  }
}

#[derive(Clone, Debug)]
enum Step {
  Acquire { amounts: [u64; 3] },
  Settle { pick: usize, actual: u64 },
  Cancel { pick: usize },
  Time(i64),
}

fn step() -> impl Strategy<Value = Step> {
  prop_oneof![
    4 => prop::array::uniform3(0u64..40).prop_map(|amounts| Step::Acquire { amounts }),
    2 => (0usize..64, 0u64..60).prop_map(|(pick, actual)| Step::Settle { pick, actual }),
    1 => (0usize..64).prop_map(|pick| Step::Cancel { pick }),
    2 => (-300i64..900).prop_map(Step::Time),
  ]
}

proptest! {
  #![proptest_config(ProptestConfig::with_cases(400))]
  #[test]
  fn meters_agree_with_a_model_that_recounts(
    maxes in prop::array::uniform3(0u64..120),
    window_ms in 1u64..2_000,
    hold_ms in 1u64..3_000,
    period_ms in 100u64..3_000,
    steps in prop::collection::vec(step(), 1..80),
  ) {
    let mut now: u64 = 10_000;
    let kinds = |now: u64| [
      Kind::Window { max: maxes[0], window_ms },
      Kind::Period { max: maxes[1], id: now / period_ms, end_ms: (now / period_ms + 1) * period_ms },
      Kind::Concurrent { max: maxes[2] % 6 },
    ];
    let mut meters: [Meter; 3] = Default::default();
    let mut models: [Model; 3] = Default::default();
    // every call admitted: its holds' numbers, per meter
    let mut calls: Vec<([u64; 3], u64)> = Vec::new();
    for s in steps {
      let k = kinds(now);
      match s {
        Step::Time(d) => now = now.saturating_add_signed(d),
        Step::Acquire { amounts } => {
          let specs: Vec<Spec> = (0..3).map(|i| Spec { kind: k[i], amount: amounts[i] }).collect();
          let [a, b, c] = &mut meters;
          let r = acquire(&mut [a, b, c], &specs, now, hold_ms);
          let mut fits = true;
          for i in 0..3 {
            models[i].refresh(&k[i], now);
            let need = if i == 2 { 1 } else { amounts[i] };
            if models[i].total(&k[i]) + need > k[i].max() { fits = false; }
          }
          prop_assert_eq!(r.ok, fits);
          if fits {
            let mut nums = [0; 3];
            for i in 0..3 {
              let m = &mut models[i];
              let newest = m.recs.iter().filter(|r| !r.gone).map(|r| r.at).max();
              let at = if i == 0 { newest.map_or(now, |t| t.max(now)) } else { now };
              nums[i] = m.recs.len() as u64;
              prop_assert_eq!(r.holds[i], nums[i]);
              m.recs.push(Rec { at, amount: if i == 2 { 1 } else { amounts[i] }, open: true, expires_at: now + hold_ms, period: m.period, gone: false });
            }
            calls.push((nums, r.expires_at));
          }
          for i in 0..3 {
            prop_assert_eq!(r.remaining[i], k[i].max().saturating_sub(models[i].total(&k[i])));
          }
        }
        Step::Settle { pick, .. } | Step::Cancel { pick } if !calls.is_empty() => {
          let actual = if let Step::Settle { actual, .. } = &s { Some(*actual) } else { None };
          let (call, exp) = calls[pick % calls.len()];
          for i in 0..3 {
            let done = match actual {
              Some(n) => settle(&mut meters[i], &k[i], (call[i], exp), n, now),
              None => cancel(&mut meters[i], &k[i], (call[i], exp), now),
            };
            let m = &mut models[i];
            m.refresh(&k[i], now);
            let r = &mut m.recs[call[i] as usize];
            prop_assert_eq!(done, r.open);
            if r.open {
              r.open = false;
              let counted = match k[i] { Kind::Period { .. } => r.period == m.period, _ => true };
              if counted || i == 0 { r.amount = if i == 2 { 1 } else { actual.unwrap_or(0) }; }
              if !counted && i == 1 { r.amount = 0; }
            }
            prop_assert_eq!(meters[i].total(), m.total(&k[i]));
          }
        }
        _ => {}
      }
    }
  }
}
