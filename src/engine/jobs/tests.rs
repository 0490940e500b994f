use super::*;

const T0: u64 = 1_700_000_040_000; // second 0 of a minute (1_700_000_040_000 % 60_000 == 0)

fn est(tokens: u64, requests: u64) -> Usage {
  Usage { tokens, requests }
}

#[test]
fn t0_is_a_minute_boundary() {
  assert_eq!(T0 % MINUTE_MS, 0);
}

#[test]
fn reserve_up_to_the_limit_then_wait_for_the_minute() {
  let l = Limits {
    tpm: 140_000,
    ..Limits::default()
  };
  let mut m = ModelState::default();
  for i in 0..14 {
    assert!(m.reserve(l, T0 + i, est(10_000, 1)).is_ok());
  }
  assert_eq!(
    m.reserve(l, T0 + 30_000, est(10_000, 1)),
    Err(Denied::Until { at: T0 + MINUTE_MS })
  );
  assert_eq!(m.minute.tokens, 140_000);
  // The 15th fits at the boundary, not before.
  assert!(m.reserve(l, T0 + MINUTE_MS - 1, est(10_000, 1)).is_err());
  assert_eq!(
    m.reserve(l, T0 + MINUTE_MS, est(10_000, 1)),
    Ok(T0 + MINUTE_MS)
  );
  assert_eq!(m.minute.tokens, 10_000);
  assert_eq!(m.day.tokens, 150_000);
}

#[test]
fn same_window_refund_and_overage() {
  let l = Limits {
    tpm: 100_000,
    rpm: 100,
    ..Limits::default()
  };
  let mut m = ModelState::default();
  let g = m.reserve(l, T0, est(10_000, 1)).unwrap();
  m.settle(T0 + 5, g, est(10_000, 1), est(6_000, 1), true);
  assert_eq!(
    (m.minute.tokens, m.day.tokens, m.in_flight),
    (6_000, 6_000, 0)
  );
  let g = m.reserve(l, T0 + 10, est(10_000, 1)).unwrap();
  m.settle(T0 + 20, g, est(10_000, 1), est(15_000, 3), true);
  assert_eq!((m.minute.tokens, m.minute.requests), (21_000, 4));
  // Refunds add up: 4K + 3K + 2K.
  let mut m = ModelState::default();
  for actual in [6_000, 7_000, 8_000] {
    let g = m.reserve(l, T0, est(10_000, 1)).unwrap();
    m.settle(T0, g, est(10_000, 1), est(actual, 1), true);
  }
  assert_eq!(m.minute.tokens, 30_000 - 9_000);
  // Actual 0: a full refund.
  let mut m = ModelState::default();
  let g = m.reserve(l, T0, est(10_000, 1)).unwrap();
  m.settle(T0, g, est(10_000, 1), est(0, 0), true);
  assert_eq!((m.minute.tokens, m.minute.requests), (0, 0));
}

#[test]
fn cross_window_no_refund_and_only_the_overage() {
  let l = Limits {
    tpm: 100_000,
    tpd: 1_000_000,
    ..Limits::default()
  };
  let mut m = ModelState::default();
  let g = m.reserve(l, T0 + 59_000, est(10_000, 1)).unwrap();
  // Ends in the next minute having used 6K: the minute gets nothing back (it is gone),
  // the day (same day) is refunded.
  m.settle(T0 + 61_000, g, est(10_000, 1), est(6_000, 1), true);
  assert_eq!((m.minute.start, m.minute.tokens), (T0 + MINUTE_MS, 0));
  assert_eq!(m.day.tokens, 6_000);
  let g = m.reserve(l, T0 + 119_000, est(10_000, 1)).unwrap();
  m.settle(T0 + 121_000, g, est(10_000, 1), est(15_000, 1), true);
  assert_eq!(m.minute.tokens, 5_000);
  assert_eq!(m.day.tokens, 21_000);
}

#[test]
fn the_day_window_is_utc_midnight() {
  let l = Limits {
    rpd: 2,
    ..Limits::default()
  };
  let mut m = ModelState::default();
  let midnight = day_start(T0) + DAY_MS;
  m.reserve(l, midnight - 10, est(0, 1)).unwrap();
  m.reserve(l, midnight - 9, est(0, 1)).unwrap();
  assert_eq!(
    m.reserve(l, midnight - 8, est(0, 1)),
    Err(Denied::Until { at: midnight })
  );
  assert!(m.reserve(l, midnight, est(0, 1)).is_ok());
}

#[test]
fn concurrency_and_estimates_that_never_fit() {
  let l = Limits {
    concurrency: 2,
    tpm: 1_000,
    ..Limits::default()
  };
  let mut m = ModelState::default();
  let a = m.reserve(l, T0, est(1, 1)).unwrap();
  m.reserve(l, T0, est(1, 1)).unwrap();
  assert_eq!(m.reserve(l, T0, est(1, 1)), Err(Denied::Concurrency));
  m.settle(T0, a, est(1, 1), est(1, 1), true);
  assert!(m.reserve(l, T0, est(1, 1)).is_ok());
  assert_eq!(m.reserve(l, T0, est(1_001, 1)), Err(Denied::Never));
  // An estimate of 0 is held back by a full window.
  let l = Limits {
    tpm: 10,
    ..Limits::default()
  };
  let mut m = ModelState::default();
  m.reserve(l, T0, est(10, 0)).unwrap();
  assert!(m.reserve(l, T0, est(0, 0)).is_err());
}

#[test]
fn default_max_wait_is_to_the_next_minute_plus_5s() {
  assert_eq!(default_max_wait_ms(T0), 65_000);
  assert_eq!(default_max_wait_ms(T0 + 59_999), 6_000);
  assert_eq!(default_max_wait_ms(T0 + 30_500), 35_000);
}

#[test]
fn pool_maths_table() {
  let tpm = Limits {
    tpm: 100_000,
    ..Limits::default()
  };
  let none = Usage::default();
  let e = est(10_000, 1);
  let p = |l, n, avg| pool(l, none, none, n, avg);
  assert_eq!((p(tpm, 1, e).total_slots, p(tpm, 1, e).tpm), (10, 100_000));
  assert_eq!((p(tpm, 2, e).total_slots, p(tpm, 2, e).tpm), (5, 50_000));
  assert_eq!((p(tpm, 3, e).total_slots, p(tpm, 3, e).tpm), (3, 33_333));
  assert_eq!(p(tpm, 2, est(7_500, 1)).total_slots, 6);
  let rpm = Limits {
    rpm: 500,
    ..Limits::default()
  };
  assert_eq!(
    (p(rpm, 2, est(1, 3)).total_slots, p(rpm, 2, est(1, 3)).rpm),
    (83, 250)
  );
  let conc = Limits {
    concurrency: 100,
    ..Limits::default()
  };
  assert_eq!(p(conc, 2, e).total_slots, 50);
  assert_eq!(p(conc, 3, e).total_slots, 33);
  let both = Limits {
    tpm: 100_000,
    rpm: 6,
    ..Limits::default()
  };
  assert_eq!(p(both, 2, e).total_slots, 3);
  let daily = Limits {
    tpd: 1_000_000,
    rpd: 10_000,
    ..Limits::default()
  };
  let d = p(daily, 2, e);
  assert_eq!((d.total_slots, d.tpd, d.rpd), (50, 500_000, 5_000));
  let small = Limits {
    tpm: 15_000,
    ..Limits::default()
  };
  assert_eq!(p(small, 4, e).total_slots, 0);
  assert_eq!(p(Limits::default(), 3, e).total_slots, 100);
  // Global usage shrinks every share.
  let used = pool(tpm, est(20_000, 2), none, 2, e);
  assert_eq!((used.tpm, used.total_slots), (40_000, 4));
  let used = pool(tpm, est(75_000, 5), none, 2, e);
  assert_eq!((used.tpm, used.total_slots), (12_500, 1));
  let l90 = Limits {
    tpm: 90_000,
    ..Limits::default()
  };
  assert_eq!(pool(l90, est(45_000, 1), none, 3, e).tpm, 15_000);
}

#[test]
fn model_job_type_slots_worked_example() {
  let p = Pool {
    total_slots: 59,
    tpm: 250_000,
    rpm: 250,
    tpd: 0,
    rpd: 0,
  };
  assert_eq!(model_job_type_slots(p, 0.3, est(10_000, 1), 1), 7);
  // RPM binds for request-heavy types: floor(250 × 0.3 / 5) = 15.
  assert_eq!(model_job_type_slots(p, 0.3, est(1_000, 5), 1), 15);
  assert_eq!(model_job_type_slots(Pool::default(), 0.5, est(1, 1), 1), 1);
  assert_eq!(model_job_type_slots(p, 0.01, est(100_000, 1), 1), 1);
}

const RC: RatioConfig = RatioConfig {
  high: 0.7,
  low: 0.3,
  max_adjustment: 0.2,
  min_ratio: 0.01,
};

fn tl(ratio: f64, flexible: bool, load: f64) -> TypeLoad {
  TypeLoad {
    ratio,
    flexible,
    load,
  }
}

#[test]
fn ratio_worked_example() {
  let out = adjust_ratios(
    &[
      tl(0.3, true, 5.0 / 30.0),
      tl(0.4, true, 0.95),
      tl(0.3, false, 0.5),
    ],
    RC,
  )
  .unwrap();
  assert!((out[0] - 0.1333).abs() < 0.001, "{out:?}");
  assert!((out[1] - 0.5667).abs() < 0.001, "{out:?}");
  assert!((out[2] - 0.3).abs() < 1e-9);
  assert!((out.iter().sum::<f64>() - 1.0).abs() < 0.001);
}

#[test]
fn ratio_no_change_cases_and_floor() {
  // All high, all low, only fixed types: nothing moves.
  assert_eq!(
    adjust_ratios(&[tl(0.5, true, 0.9), tl(0.5, true, 0.8)], RC),
    None
  );
  assert_eq!(
    adjust_ratios(&[tl(0.5, true, 0.1), tl(0.5, true, 0.2)], RC),
    None
  );
  assert_eq!(
    adjust_ratios(&[tl(0.5, false, 0.1), tl(0.5, false, 0.9)], RC),
    None
  );
  // A donor at the floor gives nothing; repeated rounds never push below min_ratio.
  let mut r = vec![0.5, 0.5];
  for _ in 0..50 {
    if let Some(next) = adjust_ratios(&[tl(r[0], true, 0.0), tl(r[1], true, 1.0)], RC) {
      r = next;
    }
    assert!((r[0] + r[1] - 1.0).abs() < 1e-9);
  }
  assert!(r[0] >= 0.01 - 1e-9 && r[0] < 0.011, "{r:?}");
}

#[test]
fn a_clock_stepped_back_keeps_the_newer_window() {
  // As jobs.lua: a reserve whose clock reads the previous minute counts in the minute already
  // in force, and is refused until that minute ends; forgetting it would admit the minute's
  // jobs again once the clock came back.
  let l = Limits {
    rpm: 1,
    ..Limits::default()
  };
  let mut m = ModelState::default();
  assert_eq!(m.reserve(l, T0, est(100, 1)), Ok(T0));
  assert_eq!(
    m.reserve(l, T0 - 1_000, est(100, 1)),
    Err(Denied::Until { at: T0 + MINUTE_MS })
  );
  assert_eq!((m.minute.start, m.minute.requests), (T0, 1));
  // A settle with the earlier clock lands in the newer minute too (a refund of the grant).
  m.settle(T0 - 1_000, T0, est(100, 1), est(40, 1), true);
  assert_eq!((m.minute.tokens, m.day.tokens, m.in_flight), (40, 40, 0));
  assert!(m.reserve(l, T0 + 5, est(100, 1)).is_err());
  assert_eq!(
    m.reserve(l, T0 + MINUTE_MS, est(100, 1)),
    Ok(T0 + MINUTE_MS)
  );
}

#[test]
fn looking_at_the_counts_moves_no_window() {
  // A view at a later time, then a call whose clock reads earlier: the call decides as if
  // nobody had looked (jobs.lua's reads of the counts change nothing either).
  let l = Limits {
    rpm: 1,
    ..Limits::default()
  };
  let mut m = ModelState::default();
  let seen = m.view(T0 + 5);
  assert_eq!((seen.minute.start, seen.minute.requests), (T0, 0));
  assert_eq!(m, ModelState::default());
  assert_eq!(m.reserve(l, T0 - 1, est(0, 1)), Ok(T0 - MINUTE_MS));
  assert_eq!(m.reserve(l, T0 + 5, est(0, 1)), Ok(T0));

  let mut s = sliding::SlidingState::default();
  assert!(s.reserve(l, T0, est(0, 1)).is_ok());
  let later = T0 + MINUTE_MS + sliding::MINUTE_BUCKET_MS;
  assert_eq!(s.minute.totals_at(later).requests, 0);
  assert_eq!(s.minute.drops_in(later), MINUTE_MS);
  assert_eq!(s.minute.totals_at(T0 + 1).requests, 1);
  assert_eq!(
    s.minute.drops_in(T0 + 1),
    MINUTE_MS + sliding::MINUTE_BUCKET_MS - 1
  );
  assert_eq!(s.minute.list.len(), 1);
}

#[test]
fn a_refusal_leaves_the_windows_where_they_were() {
  // As jobs.lua, which writes only what it grants: a refusal in a later minute (here by the
  // concurrency cap) does not move the windows there, so a clock that then reads the earlier
  // minute again still finds that minute's count full.
  let l = Limits {
    rpm: 1,
    concurrency: 1,
    ..Limits::default()
  };
  let mut m = ModelState::default();
  assert_eq!(m.reserve(l, T0, est(0, 1)), Ok(T0));
  let before = m;
  assert_eq!(
    m.reserve(l, T0 + MINUTE_MS, est(0, 1)),
    Err(Denied::Concurrency)
  );
  assert_eq!(m, before);
  assert_eq!(
    m.reserve(l, T0 + 1, est(0, 1)),
    Err(Denied::Until { at: T0 + MINUTE_MS })
  );
}

#[test]
fn what_a_redis_reply_showed_rolls_like_the_model_itself() {
  let (minute, day) = (est(300, 3), est(900, 9));
  let seen = |now| last_seen(minute, day, 1, T0, false, now);
  // In its minute: as replied, dropping at the minute's and the day's end.
  assert_eq!(
    seen(T0 + 10_000),
    vec![
      300,
      3,
      900,
      9,
      1,
      T0 + 10_000,
      50_000,
      DAY_MS - T0 % DAY_MS - 10_000
    ]
  );
  // A later minute of the same day: the day's counts only.
  assert_eq!(seen(T0 + MINUTE_MS)[..4], [0, 0, 900, 9]);
  // An earlier clock still sees the newer window (a window never goes back).
  assert_eq!(seen(T0 - 1)[..4], [300, 3, 900, 9]);
  assert_eq!(seen(T0 - 1)[6], MINUTE_MS + 1);
  // Nothing stored yet: nothing counts, and the windows are the clock's.
  assert_eq!(
    last_seen(Usage::default(), Usage::default(), 0, 0, false, T0 + 5)[..7],
    [0, 0, 0, 0, 0, T0 + 5, MINUTE_MS - 5]
  );
  // Sliding: as replied, dropping a full span later.
  assert_eq!(
    last_seen(minute, day, 2, T0, true, T0 + 7),
    vec![300, 3, 900, 9, 2, T0 + 7, MINUTE_MS, DAY_MS]
  );
}
