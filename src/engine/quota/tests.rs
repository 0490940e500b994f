//! rate-budget's own suite, its PHP port's and further edge cases checked against rate-budget's code,
//! with their numbers, on the engine directly. The JavaScript suite runs them again through
//! `Quota` on every store. Last, `properties`: the engine against the reference model.

use super::*;

const DAY: f64 = 86_400_000.0;

fn moment(now: f64) -> Moment {
  let d = (now / DAY).floor();
  Moment {
    now,
    day: format!("day{d}"),
    reset_at: (d + 1.0) * DAY,
  }
}

fn key(id: &str, rpm: f64, tpm: f64, rpd: f64, priority: f64) -> KeyInput {
  KeyInput {
    id: Some(id.into()),
    name: id.into(),
    rpm: Some(rpm),
    tpm: Some(tpm),
    rpd: Some(rpd),
    tpd: None,
    priority: Some(priority),
    enabled: true,
    rank: 0,
  }
}

fn ranked(mut keys: Vec<KeyInput>) -> Vec<KeyInput> {
  let mut names: Vec<String> = keys.iter().map(|k| k.name.clone()).collect();
  names.sort();
  for k in keys.iter_mut() {
    k.rank = names.iter().position(|n| *n == k.name).unwrap() as u32;
  }
  keys
}

fn opts() -> Options {
  Options::new(None, None, None)
}

fn fixture() -> Vec<KeyInput> {
  ranked(vec![
    key("primary", 15.0, 1_000.0, 10.0, 10.0),
    key("backup", 15.0, 1_000.0, 10.0, 1.0),
  ])
}

#[test]
fn helpers_match_rate_budget() {
  // rate-budget's tests #1–#3 and its helper examples.
  assert_eq!(cooldown_ms(Some(15.0), Some(BUFFER_MS), WINDOW_MS), 5_000.0);
  assert_eq!(cooldown_ms(Some(0.0), Some(BUFFER_MS), WINDOW_MS), 61_000.0);
  assert_eq!(cooldown_ms(Some(2.5), Some(BUFFER_MS), WINDOW_MS), 31_000.0);
  assert_eq!(cooldown_ms(Some(7.0), Some(BUFFER_MS), WINDOW_MS), 9_572.0);
  assert_eq!(cooldown_ms(Some(15.0), None, WINDOW_MS), 4_000.0);
  assert_eq!(cooldown_ms(Some(15.0), Some(500.5), WINDOW_MS), 4_500.0);
  assert_eq!(
    cooldown_ms(Some(f64::NAN), Some(BUFFER_MS), WINDOW_MS),
    61_000.0
  );
  assert_eq!(daily_cap(Some(500.0), Some(90.0)), 450.0);
  assert_eq!(daily_cap(Some(500.0), Some(0.0)), 0.0);
  assert_eq!(daily_cap(Some(0.0), None), 1.0);
  assert_eq!(daily_cap(Some(10.0), Some(33.3)), 4.0);
  assert_eq!(daily_cap(Some(500.0), Some(150.0)), 500.0);
  assert_eq!(daily_cap(Some(500.0), Some(f64::NAN)), 500.0);
  assert_eq!(daily_cap(Some(2.9), Some(100.0)), 2.0);
  // The floating-point trap rate-budget has, kept on purpose.
  assert_eq!(daily_cap(Some(100.0), Some(7.0)), 8.0);
  assert_eq!(daily_cap(Some(75.0), Some(68.0)), 52.0);
  let old = [Hit {
    id: "old".into(),
    at: 90_000.0,
    tokens: 900.0,
  }];
  assert_eq!(
    token_wait_ms(
      Some(900.0),
      Some(200.0),
      Some(1_000.0),
      &old,
      120_000.0,
      None,
      None
    ),
    Some(31_000.0)
  );
  assert_eq!(
    token_wait_ms(
      Some(0.0),
      Some(1_001.0),
      Some(1_000.0),
      &[],
      0.0,
      None,
      None
    ),
    None
  );
  assert_eq!(
    token_wait_ms(
      Some(800.0),
      Some(200.0),
      Some(1_000.0),
      &[],
      0.0,
      None,
      None
    ),
    Some(0.0)
  );
  assert_eq!(
    token_wait_ms(
      Some(900.0),
      Some(200.0),
      Some(1_000.0),
      &[],
      0.0,
      None,
      None
    ),
    Some(61_000.0)
  );
  let unsorted = [
    Hit {
      id: "a".into(),
      at: 100_000.0,
      tokens: 50.0,
    },
    Hit {
      id: "b".into(),
      at: 90_000.0,
      tokens: 60.0,
    },
  ];
  assert_eq!(
    token_wait_ms(
      Some(900.0),
      Some(200.0),
      Some(1_000.0),
      &unsorted,
      120_000.0,
      None,
      None
    ),
    Some(41_000.0)
  );
  // PHP port: 60_000 with the hit one second old.
  let now = 1_700_000_000_000.0;
  let h1 = [Hit {
    id: "h1".into(),
    at: now - 1_000.0,
    tokens: 90.0,
  }];
  assert_eq!(
    token_wait_ms(Some(90.0), Some(20.0), Some(100.0), &h1, now, None, None),
    Some(60_000.0)
  );
}

#[test]
fn reserve_picks_the_highest_priority_key() {
  let mut s = QuotaState::default();
  let keys = fixture();
  let d = reserve(
    &mut s,
    "tenant-a",
    &keys,
    100.0,
    "hold-1",
    &moment(0.0),
    &opts(),
  );
  assert!(d.ok);
  assert_eq!(d.key, Some(0));
  let hold = d.hold.unwrap();
  assert_eq!(
    (hold.id.as_str(), hold.key.as_str(), hold.tokens, hold.at),
    ("hold-1", "primary", 100.0, 0.0)
  );
  assert_eq!((hold.prev_at, hold.prev_id), (None, None));
  for c in &d.checks {
    assert!(c.ok);
    assert_eq!((c.daily_cap, c.daily_left, c.token_used), (10.0, 10.0, 0.0));
  }
}

#[test]
fn check_creates_the_key_entry_without_a_hold() {
  let mut s = QuotaState::default();
  let keys = ranked(vec![key("solo", 15.0, 1_000.0, 10.0, 0.0)]);
  let d = check(&mut s, &keys, 100.0, &moment(0.0), &opts());
  assert!(d.ok && d.hold.is_none());
  let solo = s.key("solo").unwrap();
  assert_eq!(
    (solo.used, solo.holds.len(), solo.hits().len()),
    (0.0, 0, 0)
  );
}

#[test]
fn reserve_falls_through_during_rpm_cooldown_then_blocks() {
  let mut s = QuotaState::default();
  let keys = fixture();
  let o = opts();
  assert_eq!(
    reserve(&mut s, "t", &keys, 100.0, "hold-0", &moment(0.0), &o).key,
    Some(0)
  );
  assert_eq!(
    reserve(&mut s, "t", &keys, 100.0, "hold-0b", &moment(0.0), &o).key,
    Some(1)
  );
  let d = reserve(&mut s, "t", &keys, 100.0, "hold-500", &moment(500.0), &o);
  assert!(!d.ok);
  assert_eq!(
    (d.reason, d.wait_ms, d.tokens),
    (Some(Reason::Rpm), Some(4_500.0), 100.0)
  );
  for (c, priority) in d.checks.iter().zip([10.0, 1.0]) {
    assert_eq!(c.reason, Some(Reason::Rpm));
    assert_eq!(
      (c.wait_ms, c.rpm_ms, c.tpm_ms),
      (Some(4_500.0), 4_500.0, Some(0.0))
    );
    assert_eq!(
      (
        c.token_used,
        c.token_pct,
        c.daily_used,
        c.daily_left,
        c.daily_pct
      ),
      (100.0, 0.1, 1.0, 9.0, 0.1)
    );
    assert_eq!(c.priority, priority);
  }
}

#[test]
fn commit_sets_actual_tokens_and_rollback_gives_everything_back() {
  let o = opts();
  let mut s = QuotaState::default();
  let hold = reserve(&mut s, "t", &fixture(), 100.0, "hold-1", &moment(0.0), &o)
    .hold
    .unwrap();
  assert!(commit(&mut s, &hold.key, &hold.id, Some(250.0), 0.0, &o));
  let p = s.key("primary").unwrap();
  assert_eq!((p.hits()[0].tokens, p.holds.len()), (250.0, 0));
  assert!(
    !commit(&mut s, &hold.key, &hold.id, None, 0.0, &o),
    "a second commit finds no hold"
  );

  let mut s = QuotaState::default();
  let hold = reserve(&mut s, "t", &fixture(), 100.0, "hold-1", &moment(0.0), &o)
    .hold
    .unwrap();
  assert!(rollback(&mut s, &hold.key, &hold.id, 0.0, &o));
  let p = s.key("primary").unwrap();
  assert_eq!((p.used, p.hits().len(), p.last_at), (0.0, 0, None));
  assert!(!rollback(&mut s, &hold.key, &hold.id, 0.0, &o));
}

#[test]
fn php_suite_cases() {
  let now = 1_700_000_000_000.0;
  let o = opts();
  // #5: priority 10 beats 5.
  let mut s = QuotaState::default();
  let keys = ranked(vec![
    key("key-a", 15.0, 250_000.0, 500.0, 5.0),
    key("key-b", 15.0, 250_000.0, 500.0, 10.0),
  ]);
  assert_eq!(check(&mut s, &keys, 1_500.0, &moment(now), &o).key, Some(1));
  // #6: rpm spacing, then rollback.
  let mut s = QuotaState::default();
  let keys = ranked(vec![key("k", 15.0, 1_000.0, 500.0, 0.0)]);
  let hold = reserve(&mut s, "s", &keys, 800.0, "h", &moment(now), &o)
    .hold
    .unwrap();
  let d = check(&mut s, &keys, 100.0, &moment(now), &o);
  assert_eq!((d.reason, d.wait_ms), (Some(Reason::Rpm), Some(5_000.0)));
  assert_eq!(
    (
      d.checks[0].token_used,
      d.checks[0].token_pct,
      d.checks[0].daily_pct
    ),
    (800.0, 0.8, 0.002)
  );
  assert!(rollback(&mut s, "k", &hold.id, now, &o));
  assert_eq!(s.key("k").unwrap().used, 0.0);
  // #7: rpd 1 → blocked until the next UTC midnight (2023-11-15T00:00Z).
  let mut s = QuotaState::default();
  let keys = ranked(vec![key("daily", 999.0, 999_999.0, 1.0, 0.0)]);
  assert!(reserve(&mut s, "s", &keys, 1.0, "h", &moment(now), &o).ok);
  let d = check(&mut s, &keys, 1.0, &moment(now), &o);
  assert_eq!(
    (d.reason, d.wait_ms, d.checks[0].rpm_ms),
    (Some(Reason::Rpd), Some(6_400_000.0), 1_061.0)
  );
  // #8: more tokens than tpm can never fit.
  let mut s = QuotaState::default();
  let keys = ranked(vec![key("tiny", 999.0, 10.0, 999.0, 0.0)]);
  let d = check(&mut s, &keys, 11.0, &moment(now), &o);
  assert_eq!((d.reason, d.wait_ms), (Some(Reason::Tpm), None));
}

#[test]
fn tpm_window_slides_and_is_inclusive() {
  let o = opts();
  let mut s = QuotaState::default();
  let keys = ranked(vec![key("a", 6_000.0, 1_000.0, 100.0, 0.0)]);
  reserve(&mut s, "s", &keys, 600.0, "h0", &moment(0.0), &o);
  reserve(&mut s, "s", &keys, 300.0, "h1", &moment(10_000.0), &o);
  let d = check(&mut s, &keys, 200.0, &moment(20_000.0), &o);
  assert_eq!(
    (d.reason, d.wait_ms, d.checks[0].token_used),
    (Some(Reason::Tpm), Some(41_000.0), 900.0)
  );
  assert!(check(&mut s, &keys, 100.0, &moment(20_000.0), &o).ok);
  assert_eq!(
    check(&mut s, &keys, 200.0, &moment(60_000.0), &o).wait_ms,
    Some(1_000.0)
  );
  let d = check(&mut s, &keys, 200.0, &moment(60_001.0), &o);
  assert!(d.ok);
  assert_eq!(d.checks[0].token_used, 300.0);
}

#[test]
fn rpd_resets_with_the_day() {
  let o = opts();
  let mut s = QuotaState::default();
  let keys = ranked(vec![key("d", 60_000.0, 1e9, 1.0, 0.0)]);
  reserve(&mut s, "s", &keys, 1.0, "h", &moment(0.0), &o);
  assert_eq!(
    check(&mut s, &keys, 1.0, &moment(5_000.0), &o).wait_ms,
    Some(86_395_000.0)
  );
  let d = check(&mut s, &keys, 1.0, &moment(DAY), &o);
  assert!(d.ok);
  assert_eq!(d.checks[0].daily_used, 0.0);
}

#[test]
fn a_key_waits_for_its_longest_reason_and_the_result_for_its_shortest_key() {
  let o = opts();
  // rpm 1 → 61_000 spacing; resetAt +3000 → rpd wait 3000: rpm wins.
  let mut s = QuotaState::default();
  let keys = ranked(vec![key("k", 1.0, 1e9, 1.0, 0.0)]);
  let m = |now: f64, reset: f64| Moment {
    now,
    day: "d".into(),
    reset_at: now + reset,
  };
  reserve(&mut s, "s", &keys, 1.0, "h", &m(1_000.0, 3_000.0), &o);
  let d = check(&mut s, &keys, 1.0, &m(1_000.0, 3_000.0), &o);
  assert_eq!((d.reason, d.wait_ms), (Some(Reason::Rpm), Some(61_000.0)));
  // A tie goes to rpd.
  let d = check(&mut s, &keys, 1.0, &m(1_000.0, 61_000.0), &o);
  assert_eq!((d.reason, d.wait_ms), (Some(Reason::Rpd), Some(61_000.0)));
  // resetAt = now: blocked with a zero wait.
  let d = check(&mut s, &keys, 1.0, &m(1_000.0, 0.0), &o);
  assert_eq!((d.ok, d.reason), (false, Some(Reason::Rpm)));
  let mut s = QuotaState::default();
  let keys = ranked(vec![key("z", 60_000.0, 1e9, 1.0, 0.0)]);
  reserve(&mut s, "s", &keys, 1.0, "h", &m(0.0, 0.0), &o);
  let d = check(&mut s, &keys, 1.0, &m(2_000.0, 0.0), &o); // after the rpm spacing (1001 ms)
  assert_eq!(
    (d.ok, d.reason, d.wait_ms),
    (false, Some(Reason::Rpd), Some(0.0))
  );

  // [off, rpm 1900, rpm 2900] → rpm/1900.
  let mut off = key("o", 1.0, 100.0, 10.0, 0.0);
  off.enabled = false;
  let keys = ranked(vec![
    off,
    key("r", 60.0, 100.0, 10.0, 0.0),
    key("r2", 30.0, 100.0, 10.0, 0.0),
  ]);
  let mut s = QuotaState::default();
  let plain = |now: f64| moment(now);
  assert_eq!(
    reserve(&mut s, "s", &keys, 1.0, "h1", &plain(0.0), &o).key,
    Some(1)
  );
  assert_eq!(
    reserve(&mut s, "s", &keys, 1.0, "h2", &plain(0.0), &o).key,
    Some(2)
  );
  let d = check(&mut s, &keys, 1.0, &plain(100.0), &o);
  assert_eq!((d.reason, d.wait_ms), (Some(Reason::Rpm), Some(1_900.0)));
}

#[test]
fn off_keys_and_empty_lists() {
  let o = opts();
  let mut off = key("x", 1.0, 1.0, 1.0, 0.0);
  off.enabled = false;
  let d = check(
    &mut QuotaState::default(),
    &ranked(vec![off.clone()]),
    5.0,
    &moment(0.0),
    &o,
  );
  assert_eq!((d.reason, d.wait_ms), (Some(Reason::Off), None));
  let c = &d.checks[0];
  assert_eq!(
    (c.rpm_ms, c.tpm_ms, c.daily_cap, c.daily_left, c.daily_pct),
    (0.0, None, 1.0, 1.0, 0.0)
  );
  // [tpm-hard, off] → tpm/null, the first in input order.
  let hard = key("h", 1.0, 1.0, 1.0, 0.0);
  let d = check(
    &mut QuotaState::default(),
    &ranked(vec![hard, off]),
    5.0,
    &moment(0.0),
    &o,
  );
  assert_eq!((d.reason, d.wait_ms), (Some(Reason::Tpm), None));
  let d = check(&mut QuotaState::default(), &[], 5.0, &moment(0.0), &o);
  assert_eq!(
    (d.reason, d.wait_ms, d.checks.len()),
    (Some(Reason::NoKey), None, 0)
  );
}

#[test]
fn ties_break_on_token_pct_then_daily_pct_then_rank() {
  let o = opts();
  let mut s = QuotaState::default();
  let keys = ranked(vec![
    key("b", 60_000.0, 1_000.0, 10.0, 0.0),
    key("a", 60_000.0, 1_000.0, 10.0, 0.0),
  ]);
  assert_eq!(
    check(&mut s, &keys, 1.0, &moment(0.0), &o).key,
    Some(1),
    "rank: a before b"
  );
  reserve(&mut s, "s", &keys, 10.0, "h", &moment(0.0), &o);
  assert_eq!(
    check(&mut s, &keys, 1.0, &moment(1.0), &o).key,
    Some(0),
    "lower tokenPct wins"
  );
  // priority 1.9 floors to 1; then dailyPct 0.01 < 0.1.
  let mut s = QuotaState::default();
  let keys = ranked(vec![
    key("p", 60_000.0, 1e9, 10.0, 1.9),
    key("q", 60_000.0, 1e9, 100.0, 1.0),
  ]);
  s.keys = vec![
    (
      "p".into(),
      KeyState {
        day: moment(0.0).day,
        used: 1.0,
        ..Default::default()
      },
    ),
    (
      "q".into(),
      KeyState {
        day: moment(0.0).day,
        used: 1.0,
        ..Default::default()
      },
    ),
  ];
  assert_eq!(check(&mut s, &keys, 1.0, &moment(0.0), &o).key, Some(1));
}

#[test]
fn id_quirks() {
  let o = opts();
  // A non-string id passes its check, but is never found: no_key.
  let mut numeric = key("5", 1.0, 10.0, 1.0, 0.0);
  numeric.id = None;
  let d = check(
    &mut QuotaState::default(),
    &[numeric.clone()],
    1.0,
    &moment(0.0),
    &o,
  );
  assert!(d.checks[0].ok);
  assert_eq!(
    (d.ok, d.reason, d.wait_ms),
    (false, Some(Reason::NoKey), None)
  );
  // Duplicate ids: the first object.
  let keys = ranked(vec![
    key("dup", 1.0, 10.0, 1.0, 0.0),
    key("dup", 1.0, 10.0, 1.0, 0.0),
  ]);
  assert_eq!(
    check(&mut QuotaState::default(), &keys, 1.0, &moment(0.0), &o).key,
    Some(0)
  );
  // Missing limits become 1.
  let mut bare = key("m", 0.0, 0.0, 0.0, 0.0);
  (bare.rpm, bare.tpm, bare.rpd) = (None, None, None);
  let d = check(&mut QuotaState::default(), &[bare], 1.0, &moment(0.0), &o);
  assert!(d.ok);
  assert_eq!(d.checks[0].daily_cap, 1.0);
}

#[test]
fn rollback_order_and_days() {
  let o = opts();
  let keys = ranked(vec![key("a", 60.0, 1_000.0, 5.0, 0.0)]);
  let mut s = QuotaState::default();
  let h1 = reserve(&mut s, "s", &keys, 10.0, "h0", &moment(0.0), &o)
    .hold
    .unwrap();
  let h2 = reserve(&mut s, "s", &keys, 20.0, "h2000", &moment(2_000.0), &o)
    .hold
    .unwrap();
  assert_eq!((h2.prev_at, h2.prev_id.as_deref()), (Some(0.0), Some("h0")));
  assert!(rollback(&mut s, "a", &h1.id, 2_000.0, &o));
  let a = s.key("a").unwrap();
  assert_eq!((a.used, a.hits().len(), a.last_at), (1.0, 1, Some(2_000.0)));
  assert!(rollback(&mut s, "a", &h2.id, 2_000.0, &o));
  let a = s.key("a").unwrap();
  assert_eq!(
    (a.used, a.last_at, a.last_id.as_deref()),
    (0.0, Some(0.0), Some("h0"))
  );

  // Across a day: after a check rolled the day, the rollback leaves the new day alone.
  let mut s = QuotaState::default();
  let h = reserve(&mut s, "s", &keys, 1.0, "h", &moment(DAY - 10.0), &o)
    .hold
    .unwrap();
  check(&mut s, &keys, 1.0, &moment(DAY + 5.0), &o);
  assert!(rollback(&mut s, "a", &h.id, DAY + 5.0, &o));
  assert_eq!(s.key("a").unwrap().used, 0.0);
}

#[test]
fn clocks_going_backwards_and_fractions() {
  let o = opts();
  let keys = ranked(vec![key("k", 15.0, 1_000.0, 10.0, 0.0)]);
  let mut s = QuotaState::default();
  reserve(&mut s, "s", &keys, 5.0, "h", &moment(10_000.0), &o);
  let d = check(&mut s, &keys, 1.0, &moment(5_000.0), &o);
  assert_eq!(
    (d.checks[0].token_used, d.checks[0].rpm_ms),
    (0.0, 10_000.0)
  );
  let mut s = QuotaState::default();
  reserve(&mut s, "s", &keys, 5.0, "h", &moment(1_000.5), &o);
  assert_eq!(
    check(&mut s, &keys, 1.0, &moment(1_200.25), &o).wait_ms,
    Some(4_800.25)
  );
}

#[test]
fn monotonic_time_keeps_reservations_made_by_a_later_clock() {
  let keys = ranked(vec![key("k", 60_000.0, 1_000.0, 100.0, 0.0)]);
  for monotonic in [false, true] {
    let mut o = Options::new(None, Some(0.0), None);
    o.monotonic = monotonic;
    let mut s = QuotaState::default();
    reserve(&mut s, "s", &keys, 900.0, "h", &moment(10_000.0), &o);
    // Another process read its clock a little earlier and arrives later.
    let d = check(&mut s, &keys, 200.0, &moment(9_990.0), &o);
    assert_eq!(d.checks[0].token_used, if monotonic { 900.0 } else { 0.0 });
    // rate-budget dropped the "future" hit for good: 900 + 200 > 1000 is then admitted.
    let later = reserve(&mut s, "s", &keys, 200.0, "h2", &moment(10_002.0), &o);
    assert_eq!(later.ok, !monotonic);
  }
}

#[test]
fn options_sanitise_like_rate_budget() {
  let keys = ranked(vec![key("k", 7.0, 1_000.0, 10.0, 0.0)]);
  let rpm_ms = |o: Options| {
    let mut s = QuotaState::default();
    reserve(&mut s, "s", &keys, 1.0, "h", &moment(0.0), &o);
    check(&mut s, &keys, 1.0, &moment(0.0), &o).checks[0].rpm_ms
  };
  assert_eq!(rpm_ms(Options::new(Some(0.0), None, None)), 1_001.0);
  assert_eq!(rpm_ms(Options::new(Some(-5.0), None, None)), 1_001.0);
  assert_eq!(rpm_ms(Options::new(Some(f64::NAN), None, None)), 9_572.0);
  assert_eq!(rpm_ms(Options::new(Some(1_500.7), None, None)), 1_215.0);
  assert_eq!(rpm_ms(Options::new(None, Some(-1.0), None)), 8_572.0);
  assert_eq!(rpm_ms(Options::new(None, Some(f64::NAN), None)), 9_572.0);
  let cap = |pct: f64| Options::new(None, None, Some(pct)).threshold_pct;
  assert_eq!((cap(-1.0), cap(150.0), cap(33.3)), (0.0, 100.0, 33.3));
}

#[test]
fn buffer_zero_admits_over_tpm_unless_strict() {
  let keys = ranked(vec![key("k", 60_000.0, 1_000.0, 100.0, 0.0)]);
  let run = |strict: bool| {
    let mut o = Options::new(None, Some(0.0), None);
    o.strict_tpm = strict;
    let mut s = QuotaState::default();
    reserve(&mut s, "s", &keys, 900.0, "h", &moment(0.0), &o);
    check(&mut s, &keys, 200.0, &moment(60_000.0), &o)
  };
  let loose = run(false);
  assert!(
    loose.ok,
    "rate-budget admits 900 + 200 > 1000 at the window edge"
  );
  let strict = run(true);
  assert_eq!(
    (strict.ok, strict.reason, strict.wait_ms),
    (false, Some(Reason::Tpm), Some(1.0))
  );
}

#[test]
fn holds_expire_and_roll_back_when_a_ttl_is_set() {
  let keys = ranked(vec![key("k", 60_000.0, 1_000.0, 1.0, 0.0)]);
  let mut o = opts();
  o.hold_ttl_ms = Some(30_000.0);
  let mut s = QuotaState::default();
  let h = reserve(&mut s, "s", &keys, 100.0, "h", &moment(0.0), &o)
    .hold
    .unwrap();
  assert_eq!(
    check(&mut s, &keys, 1.0, &moment(29_999.0), &o).reason,
    Some(Reason::Rpd)
  );
  assert!(
    check(&mut s, &keys, 1.0, &moment(30_000.0), &o).ok,
    "the expired hold gave its request back"
  );
  assert!(!commit(&mut s, "k", &h.id, Some(5.0), 30_000.0, &o));
}

#[test]
fn tokens_per_day() {
  let mut k = key("k", 60_000.0, 1e9, 1_000.0, 0.0);
  k.tpd = Some(1_000.0);
  let keys = ranked(vec![k]);
  let o = opts();
  let mut s = QuotaState::default();
  let h = reserve(&mut s, "s", &keys, 900.0, "h", &moment(0.0), &o)
    .hold
    .unwrap();
  let d = check(&mut s, &keys, 200.0, &moment(1.0), &o);
  assert_eq!((d.reason, d.wait_ms), (Some(Reason::Tpd), Some(DAY - 1.0)));
  assert!(commit(&mut s, "k", &h.id, Some(700.0), 1.0, &o));
  assert!(
    check(&mut s, &keys, 200.0, &moment(2_000.0), &o).ok,
    "commit settled the day's tokens to 700"
  );
  assert!(
    check(&mut s, &keys, 1_000.0, &moment(DAY), &o).ok,
    "a new day"
  );
}

#[test]
fn a_monotonic_reservation_is_recorded_at_the_scope_time_like_the_lua_script() {
  let mut o = opts();
  o.monotonic = true;
  o.buffer_ms = 0.0;
  let keys = ranked(vec![
    key("a", 60.0, 1e9, 100.0, 2.0),
    key("b", 60.0, 1e9, 100.0, 1.0),
  ]);
  let mut s = QuotaState::default();
  reserve(&mut s, "s", &keys, 1.0, "first", &moment(10_000.0), &o);
  // A process whose clock reads earlier reserves next (on the other key, "a" is spaced out):
  // its hit is taken at the scope's time.
  let d = reserve(&mut s, "s", &keys, 1.0, "second", &moment(9_000.0), &o);
  let hold = d.hold.unwrap();
  assert_eq!((hold.key.as_str(), hold.at), ("b", 10_000.0));
  assert_eq!(s.key("b").unwrap().last_at, Some(10_000.0));
}

#[test]
fn force_records_a_reservation_made_elsewhere_without_checks() {
  let o = opts();
  let keys = ranked(vec![key("a", 15.0, 100.0, 1.0, 1.0)]);
  let mut s = QuotaState::default();
  assert!(reserve(&mut s, "s", &keys, 50.0, "h1", &moment(0.0), &o).ok);
  // Over RPD, RPM and TPM now, but a reservation a twin already granted is still counted.
  let d = force(&mut s, "s", &keys[0], 80.0, "h2", &moment(1.0), &o);
  assert!(d.ok);
  assert_eq!(d.hold.as_ref().unwrap().id, "h2");
  let ks = s.key("a").unwrap();
  assert_eq!((ks.used, ks.day_tokens, ks.hits().len()), (2.0, 130.0, 2));
  assert!(commit(&mut s, "a", "h2", Some(20.0), 2.0, &o));
  assert_eq!(s.key("a").unwrap().day_tokens, 70.0);
}

/// The engine against `reference` (the list-scanning model rate-budget's code is): random
/// sequences of check / reserve / force / commit / rollback and clock jumps (forwards, and
/// backwards without `monotonic`), hold ids that repeat, zero-token reservations and commits,
/// expiring holds; every decision, wait, counter and state must be identical.
mod properties {
  use super::super::reference as model;
  use super::*;
  use proptest::prelude::*;

  #[derive(Clone, Debug)]
  enum Op {
    Check(Vec<usize>, f64),
    Reserve(Vec<usize>, f64),
    Force(usize, f64),
    Commit(usize, Option<f64>),
    Rollback(usize),
    Jump(f64),
  }

  fn tokens() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), 1.0..40.0f64, Just(100.0), Just(300.0)].prop_map(f64::floor)
  }

  fn op() -> impl Strategy<Value = Op> {
    let keys = prop::collection::vec(0usize..3, 0..4);
    prop_oneof![
      2 => (keys.clone(), tokens()).prop_map(|(k, t)| Op::Check(k, t)),
      5 => (keys, tokens()).prop_map(|(k, t)| Op::Reserve(k, t)),
      1 => (0usize..3, tokens()).prop_map(|(k, t)| Op::Force(k, t)),
      3 => (0usize..64, prop::option::of(tokens())).prop_map(|(h, t)| Op::Commit(h, t)),
      2 => (0usize..64, ).prop_map(|(h,)| Op::Rollback(h)),
      4 => prop_oneof![
        Just(0.0), Just(1.0), 1.0..3_000.0f64, Just(59_999.0), Just(60_000.0), Just(60_001.0),
        Just(DAY), -5_000.0..-1.0f64,
      ]
      .prop_map(|d| Op::Jump(d.floor())),
    ]
  }

  fn limits() -> impl Strategy<Value = KeyInput> {
    (
      prop_oneof![
        Just(1.0),
        Just(3.0),
        Just(15.0),
        Just(600.0),
        Just(60_000.0)
      ],
      prop_oneof![Just(50.0), Just(300.0), Just(1_000.0)],
      prop_oneof![Just(3.0), Just(20.0), Just(1e6)],
      prop::option::of(prop_oneof![Just(200.0), Just(5_000.0)]),
      0.0..3.0f64,
      prop::bool::weighted(0.9),
    )
      .prop_map(|(rpm, tpm, rpd, tpd, priority, enabled)| KeyInput {
        id: Some(String::new()),
        name: String::new(),
        rpm: Some(rpm),
        tpm: Some(tpm),
        rpd: Some(rpd),
        tpd,
        priority: Some(priority),
        enabled,
        rank: 0,
      })
  }

  fn options() -> impl Strategy<Value = Options> {
    (
      prop_oneof![Just(1_000.0), Just(60_000.0)],
      prop_oneof![Just(0.0), Just(1_000.0)],
      prop_oneof![Just(100.0), Just(50.0)],
      any::<bool>(),
      any::<bool>(),
      prop::option::of(prop_oneof![Just(2_000.0), Just(30_000.0)]),
      any::<bool>(),
    )
      .prop_map(|(w, b, t, strict, monotonic, ttl, rpm_window)| {
        let mut o = Options::new(Some(w), Some(b), Some(t));
        o.strict_tpm = strict;
        o.rpm_window = rpm_window;
        o.monotonic = monotonic;
        o.hold_ttl_ms = ttl;
        o
      })
  }

  fn same_state(s: &QuotaState, r: &model::QuotaState) -> Result<(), TestCaseError> {
    prop_assert_eq!(s.keys.len(), r.keys.len());
    for ((name, k), (rname, rk)) in s.keys.iter().zip(&r.keys) {
      prop_assert_eq!(name, rname);
      prop_assert_eq!(&k.day, &rk.day);
      prop_assert_eq!(k.used, rk.used);
      prop_assert_eq!(k.day_tokens, rk.day_tokens);
      let hits: Vec<Hit> = rk.hits.iter().map(|(_, h)| h.clone()).collect();
      let holds: Vec<Hold> = rk.holds.iter().map(|(h, _)| h.clone()).collect();
      prop_assert_eq!(&k.hits(), &hits, "hits of {}", name);
      prop_assert_eq!(&k.holds.list("s", name), &holds, "holds of {}", name);
      prop_assert_eq!(k.last_at, rk.last_at);
      prop_assert_eq!(&k.last_id, &rk.last_id);
    }
    Ok(())
  }

  proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn the_engine_decides_as_the_reference_model(
      o in options(),
      limits in prop::collection::vec(limits(), 3),
      ops in prop::collection::vec(op(), 1..160),
      repeat_ids in prop::bool::weighted(0.3),
    ) {
      let names = ["b", "a", "C"];
      let keys: Vec<KeyInput> = limits
        .into_iter()
        .zip(names)
        .enumerate()
        .map(|(i, (mut k, n))| {
          k.id = Some(n.into());
          k.name = n.into();
          k.rank = [1, 0, 2][i];
          k
        })
        .collect();
      let (mut s, mut r) = (QuotaState::default(), model::QuotaState::default());
      let mut holds: Vec<Hold> = Vec::new();
      let mut now = 1_000.0;
      for (i, op) in ops.into_iter().enumerate() {
        let id = if repeat_ids { format!("h{}", i % 4) } else { format!("h{i}") };
        let m = moment(now);
        match op {
          Op::Check(ks, t) | Op::Reserve(ks, t) if ks.is_empty() => {
            let _ = t;
            prop_assert_eq!(check(&mut s, &[], t, &m, &o), model::check(&mut r, &[], t, &m, &o));
          }
          Op::Check(ks, t) => {
            let list: Vec<KeyInput> = ks.iter().map(|&k| keys[k].clone()).collect();
            prop_assert_eq!(check(&mut s, &list, t, &m, &o), model::check(&mut r, &list, t, &m, &o));
          }
          Op::Reserve(ks, t) => {
            let list: Vec<KeyInput> = ks.iter().map(|&k| keys[k].clone()).collect();
            let d = reserve(&mut s, "s", &list, t, &id, &m, &o);
            prop_assert_eq!(&d, &model::reserve(&mut r, "s", &list, t, &id, &m, &o));
            holds.extend(d.hold);
          }
          Op::Force(k, t) => {
            let d = force(&mut s, "s", &keys[k], t, &id, &m, &o);
            prop_assert_eq!(&d, &model::force(&mut r, "s", &keys[k], t, &id, &m, &o));
            holds.extend(d.hold);
          }
          Op::Commit(h, t) if !holds.is_empty() => {
            let h = &holds[h % holds.len()];
            prop_assert_eq!(
              commit(&mut s, &h.key, &h.id, t, now, &o),
              model::commit(&mut r, &h.key, &h.id, t, now, &o)
            );
          }
          Op::Rollback(h) if !holds.is_empty() => {
            let h = &holds[h % holds.len()];
            prop_assert_eq!(
              rollback(&mut s, &h.key, &h.id, now, &o),
              model::rollback(&mut r, &h.key, &h.id, now, &o)
            );
          }
          // Time goes back only where rate-budget lets it (without `monotonic`).
          Op::Jump(dt) if dt >= 0.0 || !o.monotonic => now = (now + dt).max(0.0),
          _ => {}
        }
        same_state(&s, &r)?;
      }
    }
  }
}

#[test]
fn rpm_as_a_window_admits_rpm_a_minute_back_to_back() {
  // 500 RPM as a window: 500 reservations at once, the 501st waits for the first to leave.
  // rate-budget's spacing with its default buffer admits one every 1,120 ms (~54 a minute).
  let mut o = opts();
  o.rpm_window = true;
  let keys = ranked(vec![key("k", 500.0, 1e9, 1e6, 0.0)]);
  let mut s = QuotaState::default();
  for i in 0..500 {
    let d = reserve(
      &mut s,
      "s",
      &keys,
      1.0,
      &format!("h{i}"),
      &moment(10.0 * i as f64),
      &o,
    );
    assert!(d.ok, "request {i}");
  }
  let d = reserve(&mut s, "s", &keys, 1.0, "over", &moment(5_000.0), &o);
  assert_eq!(
    (d.ok, d.reason, d.wait_ms),
    (false, Some(Reason::Rpm), Some(56_000.0))
  );
  // A rollback gives its request back.
  let first = s.key("k").unwrap().holds.get("h0").unwrap().0.clone();
  assert!(rollback(&mut s, "k", &first.id, 5_000.0, &o));
  assert!(reserve(&mut s, "s", &keys, 1.0, "fits", &moment(5_000.0), &o).ok);
  assert!(!reserve(&mut s, "s", &keys, 1.0, "again", &moment(5_000.0), &o).ok);
  // With spacing, the second request at once already waits.
  o.rpm_window = false;
  let mut s = QuotaState::default();
  assert!(reserve(&mut s, "s", &keys, 1.0, "a", &moment(0.0), &o).ok);
  let d = reserve(&mut s, "s", &keys, 1.0, "b", &moment(0.0), &o);
  assert_eq!((d.ok, d.wait_ms), (false, Some(1_120.0)));
}

#[test]
fn a_paused_key_is_routed_around_until_its_end() {
  let o = opts();
  let mut s = QuotaState::default();
  let keys = ranked(vec![
    key("a", 60_000.0, 1e9, 1000.0, 1.0),
    key("b", 60_000.0, 1e9, 1000.0, 0.0),
  ]);
  // "a" has the higher priority: chosen while it is not paused.
  assert_eq!(check(&mut s, &keys, 1.0, &moment(0.0), &o).key, Some(0));
  assert!(pause(&mut s, "a", 30_000.0, &moment(0.0), &o));
  // An earlier end never shortens the pause; a non-finite one is refused.
  assert!(pause(&mut s, "a", 10_000.0, &moment(0.0), &o));
  assert!(!pause(&mut s, "a", f64::NAN, &moment(0.0), &o));
  let d = check(&mut s, &keys, 1.0, &moment(1_000.0), &o);
  assert_eq!(d.key, Some(1));
  assert_eq!(d.checks[0].reason, Some(Reason::Paused));
  assert_eq!(d.checks[0].wait_ms, Some(29_000.0));
  // Alone, the paused key is refused with the wait until its end.
  let only = ranked(vec![key("a", 60_000.0, 1e9, 1000.0, 1.0)]);
  let d = reserve(&mut s, "s", &only, 1.0, "h1", &moment(2_000.0), &o);
  assert!(!d.ok);
  assert_eq!(
    (d.reason, d.wait_ms),
    (Some(Reason::Paused), Some(28_000.0))
  );
  // At its end the key is back.
  let d = reserve(&mut s, "s", &only, 1.0, "h2", &moment(30_000.0), &o);
  assert!(d.ok);
  // A key never seen is created paused.
  assert!(pause(&mut s, "c", 5_000.0, &moment(0.0), &o));
  assert_eq!(s.key("c").and_then(|k| k.paused_until), Some(5_000.0));
}
