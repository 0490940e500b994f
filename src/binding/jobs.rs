//! `JobLimitsCore` (local limits), `JobsRedisCore` (createRedisBackend) and `ProviderCore`
//! (ProviderLimiter) for lib/jobs/ and lib/provider-limiter.js, plus the pure helpers
//! `jobPool`, `jobModelTypeSlots` and `jobAdjustRatios`.

use std::sync::{Arc, Mutex};

use napi_derive::napi;

use super::clock::{local, remote};
use super::error::ms;
use super::id::{key_of, Id};
use super::store::{open_redis, Backend, NativeStore};
use crate::engine::jobs::sliding::SlidingState;
use crate::engine::jobs::{self, Counts, Denied, Limits, ModelState, Usage};
use crate::engine::provider_limit::{self, Counter};
use crate::store::redis::jobs::JobsCall;
use crate::store::redis::RedisStore;

/// `[tpm, rpm, tpd, rpd, maxConcurrent]` per model, flattened.
fn limits_of(flat: &[f64]) -> Vec<Limits> {
  flat
    .chunks_exact(5)
    .map(|c| Limits {
      tpm: ms(c[0]),
      rpm: ms(c[1]),
      tpd: ms(c[2]),
      rpd: ms(c[3]),
      concurrency: ms(c[4]),
    })
    .collect()
}

fn usage(tokens: f64, requests: f64) -> Usage {
  Usage {
    tokens: ms(tokens),
    requests: ms(requests),
  }
}

/// The limits of every model of one limiter, in this process.
#[napi]
pub struct JobLimitsCore {
  limits: Vec<Limits>,
  state: Mutex<Vec<Counts>>,
}

#[napi]
impl JobLimitsCore {
  #[napi(constructor)]
  pub fn new(limits: Vec<f64>, sliding: bool) -> Self {
    let limits = limits_of(&limits);
    let one = || {
      if sliding {
        Counts::Sliding(SlidingState::default())
      } else {
        Counts::Fixed(ModelState::default())
      }
    };
    let state = Mutex::new((0..limits.len()).map(|_| one()).collect());
    JobLimitsCore { limits, state }
  }

  fn with<T>(&self, model: u32, f: impl FnOnce(Limits, &mut Counts) -> T) -> napi::Result<T> {
    let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
    let i = model as usize;
    match (self.limits.get(i), s.get_mut(i)) {
      (Some(l), Some(m)) => Ok(f(*l, m)),
      _ => Err(super::error::coded(
        super::error::INVALID_ARG,
        "no such model index",
      )),
    }
  }

  /// Reserves an estimate. The answer, one number so nothing is allocated: ≥ 0 granted (the
  /// minute reserved in, to pass to `settle`); -1 only concurrency is full; -2 the estimate
  /// never fits; ≤ -3 a window is full, try again in `-(answer + 3)` ms.
  #[napi(catch_unwind)]
  pub fn reserve(&self, model: u32, tokens: f64, requests: f64, now: f64) -> napi::Result<f64> {
    let now = local(now);
    self.with(model, |l, m| {
      match m.reserve(l, now, usage(tokens, requests)) {
        Ok(grant) => grant as f64,
        Err(Denied::Concurrency) => -1.0,
        Err(Denied::Never) => -2.0,
        Err(Denied::Until { at }) => -3.0 - at.saturating_sub(now) as f64,
      }
    })
  }

  /// Settles a reservation with the actual usage (window-aware); `release` gives the
  /// concurrency slot back.
  #[napi(catch_unwind)]
  #[allow(clippy::too_many_arguments)]
  pub fn settle(
    &self,
    model: u32,
    grant: f64,
    est_tokens: f64,
    est_requests: f64,
    tokens: f64,
    requests: f64,
    release: bool,
    now: f64,
  ) -> napi::Result<()> {
    let now = local(now);
    self.with(model, |_, m| {
      m.settle(
        now,
        ms(grant),
        usage(est_tokens, est_requests),
        usage(tokens, requests),
        release,
      )
    })
  }

  /// `[minute tokens, minute requests, day tokens, day requests, in flight, now, ms until the
  /// minute count drops, ms until the day count drops]`.
  #[napi(catch_unwind)]
  pub fn counts(&self, model: u32, now: f64) -> napi::Result<Vec<f64>> {
    let now = local(now);
    self.with(model, |_, m| {
      m.counts(now).into_iter().map(|x| x as f64).collect()
    })
  }
}

/// The global limits of one limiter in Redis (jobs.lua).
#[napi]
pub struct JobsRedisCore {
  redis: Arc<RedisStore>,
  instances_key: String,
  /// This instance's grants (jobs.lua: what makes a release count once).
  grants_key: String,
  model_keys: Vec<String>,
  limits: Vec<Limits>,
  instance: String,
  timeout_ms: u64,
  sliding: bool,
}

#[napi]
impl JobsRedisCore {
  /// Keys: `<prefix>{limits}:instances`, `<prefix>{limits}:grants:<instance>` and
  /// `<prefix>{limits}:model:<id>`.
  #[napi(constructor)]
  pub fn new(
    store: &NativeStore,
    prefix: String,
    models: Vec<Id>,
    limits: Vec<f64>,
    instance: Id,
    timeout_ms: f64,
    sliding: bool,
  ) -> napi::Result<Self> {
    let redis = store.backend.redis()?;
    let base = format!("{prefix}{{limits}}:");
    Ok(JobsRedisCore {
      redis,
      instances_key: format!("{base}instances"),
      grants_key: key_of(&format!("{base}grants:"), &[&instance]),
      model_keys: models
        .iter()
        .map(|m| key_of(&format!("{base}model:"), &[m]))
        .collect(),
      limits: limits_of(&limits),
      instance: instance.as_str().to_owned(),
      timeout_ms: ms(timeout_ms).max(1),
      sliding,
    })
  }

  #[napi(getter)]
  pub fn instance_id(&self) -> String {
    self.instance.clone()
  }

  fn model(&self, model: u32) -> napi::Result<(&str, Limits)> {
    let i = model as usize;
    match (self.model_keys.get(i), self.limits.get(i)) {
      (Some(k), Some(l)) => Ok((k, *l)),
      _ => Err(super::error::coded(
        super::error::INVALID_ARG,
        "no such model index",
      )),
    }
  }

  /// One jobs.lua call: on `model` (with its limits), or on every model when `None`.
  async fn call(
    &self,
    op: &str,
    model: Option<u32>,
    now: f64,
    estimate: Usage,
    settle: Option<(Usage, u64, bool)>,
    id: f64,
  ) -> napi::Result<Vec<f64>> {
    open_redis(&Backend::Redis(self.redis.clone()))?;
    let mut keys: Vec<&str> = vec![&self.instances_key, &self.grants_key];
    let limits = match model {
      Some(m) => {
        let (key, limits) = self.model(m)?;
        keys.push(key);
        Some(limits)
      }
      None => {
        keys.extend(self.model_keys.iter().map(|k| k.as_str()));
        None
      }
    };
    let r = self
      .redis
      .jobs(JobsCall {
        op,
        keys: &keys,
        now: remote(now),
        instance: &self.instance,
        instance_timeout_ms: self.timeout_ms,
        sliding: self.sliding,
        limits,
        estimate,
        settle,
        id: ms(id),
      })
      .await?;
    Ok(r.into_iter().map(|x| x as f64).collect())
  }

  /// Acquire under the grant id `id` (unique per instance, > 0): see jobs.lua for the reply.
  #[napi]
  pub async fn acquire(
    &self,
    model: u32,
    tokens: f64,
    requests: f64,
    now: f64,
    id: f64,
  ) -> napi::Result<Vec<f64>> {
    let estimate = usage(tokens, requests);
    self.call("a", Some(model), now, estimate, None, id).await
  }

  /// Release (settle) the grant `id`, or with `give_back` false add usage counted while Redis
  /// was away, once per `id` (0: no id): see jobs.lua for the reply.
  #[napi]
  #[allow(clippy::too_many_arguments)]
  pub async fn release(
    &self,
    model: u32,
    grant: f64,
    est_tokens: f64,
    est_requests: f64,
    tokens: f64,
    requests: f64,
    give_back: bool,
    now: f64,
    id: f64,
  ) -> napi::Result<Vec<f64>> {
    let estimate = usage(est_tokens, est_requests);
    let settle = Some((usage(tokens, requests), ms(grant), give_back));
    self.call("r", Some(model), now, estimate, settle, id).await
  }

  /// Heartbeat (registers when unknown) or unregister (`op` "h" or "u").
  #[napi]
  pub async fn instance_op(&self, op: String, now: f64) -> napi::Result<Vec<f64>> {
    let op = if op == "u" { "u" } else { "h" };
    self.call(op, None, now, Usage::default(), None, 0.0).await
  }
}

/// A model's fair share per instance: `[totalSlots, tpm, rpm, tpd, rpd]`. `limits` is one
/// model's `[tpm, rpm, tpd, rpd, maxConcurrent]`, `used` `[minute tokens, minute requests,
/// day tokens, day requests]`, `avg` `[tokens, requests]`.
#[napi]
pub fn job_pool(limits: Vec<f64>, used: Vec<f64>, instances: f64, avg: Vec<f64>) -> Vec<f64> {
  let l = limits_of(&limits).first().copied().unwrap_or_default();
  let g = |v: &[f64], i: usize| v.get(i).copied().unwrap_or(0.0);
  let p = jobs::pool(
    l,
    usage(g(&used, 0), g(&used, 1)),
    usage(g(&used, 2), g(&used, 3)),
    ms(instances),
    usage(g(&avg, 0), g(&avg, 1)),
  );
  [p.total_slots, p.tpm, p.rpm, p.tpd, p.rpd]
    .iter()
    .map(|&x| x as f64)
    .collect()
}

/// Slots of a job type on a model from a pool `[totalSlots, tpm, rpm, tpd, rpd]`.
#[napi]
pub fn job_model_type_slots(
  pool: Vec<f64>,
  ratio: f64,
  tokens: f64,
  requests: f64,
  min_capacity: f64,
) -> f64 {
  let g = |i: usize| ms(pool.get(i).copied().unwrap_or(0.0));
  let p = jobs::Pool {
    total_slots: g(0),
    tpm: g(1),
    rpm: g(2),
    tpd: g(3),
    rpd: g(4),
  };
  jobs::model_job_type_slots(p, ratio, usage(tokens, requests), ms(min_capacity)) as f64
}

/// One ratio adjustment; `config` is `[high, low, maxAdjustment, minRatio]`. Null when nothing
/// changes.
#[napi]
pub fn job_adjust_ratios(
  ratios: Vec<f64>,
  flexible: Vec<bool>,
  loads: Vec<f64>,
  config: Vec<f64>,
) -> Option<Vec<f64>> {
  let types: Vec<jobs::TypeLoad> = ratios
    .iter()
    .zip(flexible.iter())
    .zip(loads.iter())
    .map(|((&ratio, &flexible), &load)| jobs::TypeLoad {
      ratio,
      flexible,
      load,
    })
    .collect();
  let c = |i: usize| config.get(i).copied().unwrap_or(0.0);
  jobs::adjust_ratios(
    &types,
    jobs::RatioConfig {
      high: c(0),
      low: c(1),
      max_adjustment: c(2),
      min_ratio: c(3),
    },
  )
}

/// `ProviderLimiter`: `points` per `duration_ms` per `<prefix><provider>:<scope>`.
#[napi]
pub struct ProviderCore {
  backend: Backend,
  /// `<keyPrefix>:`, the provider already encoded into it by lib/.
  prefix: String,
  points: u64,
  duration_ms: u64,
}

fn decision(d: provider_limit::Decision) -> Vec<f64> {
  vec![
    if d.allowed { 1.0 } else { 0.0 },
    d.remaining as f64,
    d.retry_in_ms as f64,
    d.expire as f64,
  ]
}

#[napi]
impl ProviderCore {
  #[napi(constructor)]
  pub fn new(store: &NativeStore, prefix: String, points: f64, duration_ms: f64) -> Self {
    ProviderCore {
      backend: store.backend.clone(),
      prefix,
      points: ms(points),
      duration_ms: ms(duration_ms).max(1),
    }
  }

  /// `[allowed 0|1, remaining, retryInMs, expire]` on the memory store. The counter is kept
  /// as the text `<points>:<expire>` under the scope's key, expiring with its period.
  #[napi(catch_unwind)]
  pub fn consume(&self, scope: Id, cost: f64, now: f64) -> napi::Result<Vec<f64>> {
    let key = key_of(&self.prefix, &[&scope]);
    let store = self.backend.memory()?;
    let now = local(now);
    let mut counter = store.get_text(&key, now).and_then(|t| {
      let (p, e) = t.split_once(':')?;
      Some(Counter {
        points: p.parse().ok()?,
        expire: e.parse().ok()?,
      })
    });
    let d = provider_limit::consume(&mut counter, self.points, self.duration_ms, now, ms(cost));
    if let Some(c) = counter {
      let ttl = c.expire.saturating_sub(now).max(1);
      store.set_text(&key, format!("{}:{}", c.points, c.expire), now, ttl);
    }
    Ok(decision(d))
  }

  #[napi]
  pub async fn consume_async(&self, scope: Id, cost: f64, now: f64) -> napi::Result<Vec<f64>> {
    let key = key_of(&self.prefix, &[&scope]);
    let redis = open_redis(&self.backend)?;
    let d = redis
      .provider_consume(&key, self.points, self.duration_ms, remote(now), ms(cost))
      .await?;
    Ok(decision(d))
  }

  /// The Redis server's `INFO` text.
  #[napi]
  pub async fn info(&self) -> napi::Result<String> {
    let redis = open_redis(&self.backend)?;
    Ok(redis.info().await?)
  }
}
