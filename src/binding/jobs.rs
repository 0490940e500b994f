//! `jobLimits*` (local limits), `jobsRedis*` (createRedisBackend) and `provider*`
//! (ProviderLimiter), each over its `External` handle, for lib/jobs/ and
//! lib/provider-limiter.js, plus the pure helpers `jobPool`, `jobModelTypeSlots` and
//! `jobAdjustRatios`.

use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::{External, PromiseRaw};
use napi::Env;
use napi_derive::napi;

use super::clock::{local, remote};
use super::error::ms;
use super::id::{key_of, Id};
use super::store::{on_redis, open_redis, Backend, NativeStore};
use crate::engine::jobs::sliding::SlidingState;
use crate::engine::jobs::{self, Counts, Denied, Limits, ModelState, Usage};
use crate::engine::provider_limit::{self, Counter};
use crate::store::memory::Keep;
use crate::store::redis::jobs::{JobStatus, JobsCall, JobsReply, ModelCounts};
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
pub struct JobLimitsCore {
  limits: Vec<Limits>,
  state: Mutex<Vec<Counts>>,
}

type LimitsHandle = External<Arc<JobLimitsCore>>;

#[napi(ts_return_type = "ExternalObject<'JobLimitsCore'>")]
pub fn job_limits_new(limits: Vec<f64>, sliding: bool) -> LimitsHandle {
  External::new(Arc::new(JobLimitsCore::new(limits, sliding)))
}

impl JobLimitsCore {
  fn new(limits: Vec<f64>, sliding: bool) -> Self {
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
}

/// Reserves an estimate. The answer, one number so nothing is allocated: ≥ 0 granted (the
/// minute reserved in, to pass to `settle`); -1 only concurrency is full; -2 the estimate
/// never fits; ≤ -3 a window is full, try again in `-(answer + 3)` ms.
#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'JobLimitsCore'>, model: number, tokens: number, requests: number, now: number"
)]
pub fn job_limits_reserve(
  core: &LimitsHandle,
  model: u32,
  tokens: f64,
  requests: f64,
  now: f64,
) -> napi::Result<f64> {
  let now = local(now);
  core.with(model, |l, m| {
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
#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'JobLimitsCore'>, model: number, grant: number, estTokens: number, estRequests: number, tokens: number, requests: number, release: boolean, now: number"
)]
#[allow(clippy::too_many_arguments)]
pub fn job_limits_settle(
  core: &LimitsHandle,
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
  core.with(model, |_, m| {
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
#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'JobLimitsCore'>, model: number, now: number"
)]
pub fn job_limits_counts(core: &LimitsHandle, model: u32, now: f64) -> napi::Result<Vec<f64>> {
  let now = local(now);
  core.with(model, |_, m| {
    m.counts(now).into_iter().map(|x| x as f64).collect()
  })
}

/// The global limits of one limiter in Redis (jobs.lua).
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
  /// Per model, what the last reply that carried it said (`jobsRedisCounts` shows it).
  seen: Mutex<Vec<ModelCounts>>,
}

type RedisHandle = External<Arc<JobsRedisCore>>;

/// Keys: `<prefix>{limits}:instances`, `<prefix>{limits}:grants:<instance>` and
/// `<prefix>{limits}:model:<id>`.
#[napi(
  ts_args_type = "store: NativeStore, prefix: string, models: Array<string>, limits: Array<number>, instance: string, timeoutMs: number, sliding: boolean",
  ts_return_type = "ExternalObject<'JobsRedisCore'>"
)]
pub fn jobs_redis_new(
  store: &NativeStore,
  prefix: String,
  models: Vec<Id>,
  limits: Vec<f64>,
  instance: Id,
  timeout_ms: f64,
  sliding: bool,
) -> napi::Result<RedisHandle> {
  let redis = store.backend.redis()?;
  let base = format!("{prefix}{{limits}}:");
  Ok(External::new(Arc::new(JobsRedisCore {
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
    seen: Mutex::new(vec![ModelCounts::default(); models.len()]),
  })))
}

impl JobsRedisCore {
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
    self.remember(model, &r);
    Ok(reply_numbers(&r))
  }

  /// Keeps what a reply says of each model it carries.
  fn remember(&self, model: Option<u32>, r: &JobsReply) {
    let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
    match (r, model) {
      (JobsReply::Decision { counts, .. }, Some(m)) => {
        if let Some(s) = seen.get_mut(m as usize) {
          *s = *counts;
        }
      }
      (JobsReply::Heartbeat { models, .. }, None) => {
        for (s, c) in seen.iter_mut().zip(models) {
          *s = *c;
        }
      }
      _ => {}
    }
  }
}

/// What this instance last saw of a model's global counts (its last acquire, release or
/// heartbeat reply), as they stand at `now`: `jobLimitsCounts`' layout, the windows rolled as
/// the engine rolls them (`engine::jobs::last_seen`).
#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'JobsRedisCore'>, model: number, now: number"
)]
pub fn jobs_redis_counts(core: &RedisHandle, model: u32, now: f64) -> napi::Result<Vec<f64>> {
  let c = {
    let seen = core.seen.lock().unwrap_or_else(|p| p.into_inner());
    *seen
      .get(model as usize)
      .ok_or_else(|| super::error::coded(super::error::INVALID_ARG, "no such model index"))?
  };
  let counts = jobs::last_seen(
    c.minute,
    c.day,
    c.in_flight,
    c.minute_start,
    core.sliding,
    local(now),
  );
  Ok(counts.into_iter().map(|x| x as f64).collect())
}

fn counts_numbers(c: &ModelCounts) -> [f64; 6] {
  [
    c.minute.tokens as f64,
    c.minute.requests as f64,
    c.day.tokens as f64,
    c.day.requests as f64,
    c.in_flight as f64,
    c.minute_start as f64,
  ]
}

/// A reply as numbers. Acquire and release: `[status (1 granted, 0 refused, 2 never fits,
/// 3 moot: nothing changed), the grant's minute, ms until the blocking window resets (-1: only
/// concurrency blocks), 1 if the instance was (re)registered, then the model's minute tokens,
/// minute requests, day tokens, day requests, jobs in flight and the minute those counts are
/// of (fixed windows; their day is that minute's)]`. Heartbeat: `[1 if (re)registered, live
/// instances, dropped instances, then those six numbers per model]`.
/// Unregister: `[1 if the instance was dropped]`.
fn reply_numbers(r: &JobsReply) -> Vec<f64> {
  match r {
    JobsReply::Decision {
      status,
      minute,
      retry_ms,
      registered,
      counts,
    } => {
      let status = match status {
        JobStatus::Granted => 1.0,
        JobStatus::Refused => 0.0,
        JobStatus::Never => 2.0,
        JobStatus::Moot => 3.0,
      };
      let retry = retry_ms.map_or(-1.0, |ms| ms as f64);
      let mut out = vec![
        status,
        *minute as f64,
        retry,
        f64::from(u8::from(*registered)),
      ];
      out.extend(counts_numbers(counts));
      out
    }
    JobsReply::Heartbeat {
      registered,
      live,
      dropped,
      models,
    } => {
      let mut out = vec![
        f64::from(u8::from(*registered)),
        *live as f64,
        *dropped as f64,
      ];
      for m in models {
        out.extend(counts_numbers(m));
      }
      out
    }
    JobsReply::Unregistered { dropped } => vec![f64::from(u8::from(*dropped))],
  }
}

/// Acquire under the grant id `id` (unique per instance, > 0); the reply as `reply_numbers`
/// lays it out.
#[napi(
  ts_args_type = "core: ExternalObject<'JobsRedisCore'>, model: number, tokens: number, requests: number, now: number, id: number"
)]
pub fn jobs_redis_acquire<'env>(
  env: &'env Env,
  core: &RedisHandle,
  model: u32,
  tokens: f64,
  requests: f64,
  now: f64,
  id: f64,
) -> napi::Result<PromiseRaw<'env, Vec<f64>>> {
  let core = Arc::clone(core);
  let estimate = usage(tokens, requests);
  env.spawn_future(async move { core.call("a", Some(model), now, estimate, None, id).await })
}

/// Release (settle) the grant `id`, or with `give_back` false add usage counted while Redis
/// was away, once per `id` (0: no id); the reply as `reply_numbers` lays it out.
#[napi(
  ts_args_type = "core: ExternalObject<'JobsRedisCore'>, model: number, grant: number, estTokens: number, estRequests: number, tokens: number, requests: number, giveBack: boolean, now: number, id: number"
)]
#[allow(clippy::too_many_arguments)]
pub fn jobs_redis_release<'env>(
  env: &'env Env,
  core: &RedisHandle,
  model: u32,
  grant: f64,
  est_tokens: f64,
  est_requests: f64,
  tokens: f64,
  requests: f64,
  give_back: bool,
  now: f64,
  id: f64,
) -> napi::Result<PromiseRaw<'env, Vec<f64>>> {
  let core = Arc::clone(core);
  let estimate = usage(est_tokens, est_requests);
  let settle = Some((usage(tokens, requests), ms(grant), give_back));
  env.spawn_future(async move { core.call("r", Some(model), now, estimate, settle, id).await })
}

/// Heartbeat (registers when unknown) or unregister (`op` "h" or "u").
#[napi(ts_args_type = "core: ExternalObject<'JobsRedisCore'>, op: string, now: number")]
pub fn jobs_redis_instance_op<'env>(
  env: &'env Env,
  core: &RedisHandle,
  op: String,
  now: f64,
) -> napi::Result<PromiseRaw<'env, Vec<f64>>> {
  let core = Arc::clone(core);
  let op = if op == "u" { "u" } else { "h" };
  env.spawn_future(async move { core.call(op, None, now, Usage::default(), None, 0.0).await })
}

/// The default patience on a model at `now` (ms since 1970): until the next minute plus 5 s.
#[napi]
pub fn job_default_max_wait_ms(now: f64) -> f64 {
  jobs::default_max_wait_ms(ms(now)) as f64
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
pub struct ProviderCore {
  backend: Backend,
  /// `<keyPrefix>:`, the provider already encoded into it by lib/.
  prefix: String,
  points: u64,
  duration_ms: u64,
}

type ProviderHandle = External<Arc<ProviderCore>>;

/// `[allowed 0|1, remaining, retryInMs, expire]`.
fn decision(d: provider_limit::Decision) -> Vec<f64> {
  vec![
    if d.allowed { 1.0 } else { 0.0 },
    d.remaining as f64,
    d.retry_in_ms as f64,
    d.expire as f64,
  ]
}

#[napi(ts_return_type = "ExternalObject<'ProviderCore'>")]
pub fn provider_new(
  store: &NativeStore,
  prefix: String,
  points: f64,
  duration_ms: f64,
) -> ProviderHandle {
  External::new(Arc::new(ProviderCore {
    backend: store.backend.clone(),
    prefix,
    points: ms(points),
    duration_ms: ms(duration_ms).max(1),
  }))
}

/// `[allowed 0|1, remaining, retryInMs, expire]` on the memory store; the counter lives under
/// the scope's key until its period ends.
#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'ProviderCore'>, scope: string, cost: number, now: number"
)]
pub fn provider_consume(
  core: &ProviderHandle,
  scope: Id,
  cost: f64,
  now: f64,
) -> napi::Result<Vec<f64>> {
  let key = key_of(&core.prefix, &[&scope]);
  let store = core.backend.memory()?;
  let now = local(now);
  let (points, duration) = (core.points, core.duration_ms);
  let d = store.update(&key, now, |c: &mut Option<Counter>| {
    let d = provider_limit::consume(c, points, duration, now, ms(cost));
    (
      d,
      c.map_or(Keep::Drop, |c| Keep::Until(c.expire.max(now + 1))),
    )
  })?;
  Ok(decision(d))
}

#[napi(
  ts_args_type = "core: ExternalObject<'ProviderCore'>, scope: string, cost: number, now: number"
)]
pub fn provider_consume_async<'env>(
  env: &'env Env,
  core: &ProviderHandle,
  scope: Id,
  cost: f64,
  now: f64,
) -> napi::Result<PromiseRaw<'env, Vec<f64>>> {
  let key = key_of(&core.prefix, &[&scope]);
  let (points, duration) = (core.points, core.duration_ms);
  on_redis(env, &core.backend, move |redis| async move {
    let d = redis
      .provider_consume(&key, points, duration, remote(now), ms(cost))
      .await?;
    Ok(decision(d))
  })
}

/// The Redis server's `INFO` text.
#[napi(ts_args_type = "core: ExternalObject<'ProviderCore'>")]
pub fn provider_info<'env>(
  env: &'env Env,
  core: &ProviderHandle,
) -> napi::Result<PromiseRaw<'env, String>> {
  on_redis(env, &core.backend, |redis| async move {
    Ok(redis.info().await?)
  })
}
