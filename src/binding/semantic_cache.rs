//! `semantic*` over a `SemanticCore` handle: the entries and vector index of one `SemanticCache` (lib/semantic-cache.js).
//!
//! Caches on the same store and prefix share one state per process: on a memory store the
//! entries themselves ([`SemanticEntries`]), on Redis a [`Mirror`] of the index of entries
//! that live in Redis (src/store/redis/semantic.rs).

use std::sync::{Arc, Mutex, MutexGuard};

use napi::bindgen_prelude::{External, Float32Array, PromiseRaw};
use napi::Env;
use napi_derive::napi;

use super::clock::{local, now_ms, remote};
use super::error::{coded, ms};
use super::store::{open_redis, Backend, NativeStore};
use crate::engine::semantic::cache::{SemanticEntries, CANDIDATES};
use crate::engine::semantic::guard::compatible;
use crate::engine::semantic::index::{IndexConfig, ScopedIndex, VectorError};
use crate::engine::semantic::mirror::{to_bytes, Change, Mirror};
use crate::store::redis::semantic::{LogRead, SemanticKeys};
use crate::store::redis::{RedisStore, StoreError};

const OUT_OF_RANGE: &str = "ERR_TOLLGATE_OUT_OF_RANGE";

enum Shared {
  Memory(Mutex<SemanticEntries>),
  Redis {
    mirror: Mutex<Mirror>,
    loading: tokio::sync::Mutex<()>,
  },
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
  m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The state of the caches on `backend` under `prefix`, kept by the store (one per process).
fn state_for(backend: &Backend, prefix: &str, config: IndexConfig) -> Arc<Shared> {
  let name = format!("semantic\0{prefix}");
  match backend {
    Backend::Memory(m) => m.shared().get_or_init(&name, || {
      Shared::Memory(Mutex::new(SemanticEntries::new(config)))
    }),
    Backend::Redis(r) => r.shared().get_or_init(&name, || Shared::Redis {
      mirror: Mutex::new(Mirror::new(config)),
      loading: tokio::sync::Mutex::new(()),
    }),
  }
}

fn vector_error(e: VectorError) -> napi::Error {
  coded(OUT_OF_RANGE, e)
}

/// A hit as lib/ reads it.
#[napi(object)]
pub struct SemanticHit {
  /// The entry's key (the digest of the request that stored it).
  pub key: String,
  /// JSON of the response.
  pub response: String,
  pub similarity: f64,
  /// The stored question.
  pub query: String,
}

fn similarity(s: f32) -> f64 {
  (f64::from(s) * 1e6).round() / 1e6
}

pub struct SemanticCore {
  state: Arc<Shared>,
  backend: Backend,
  keys: SemanticKeys,
  config: IndexConfig,
  ttl_ms: u64,
  max_entries: u64,
  threshold: f32,
}

impl SemanticCore {
  fn entries(&self) -> napi::Result<MutexGuard<'_, SemanticEntries>> {
    match &*self.state {
      Shared::Memory(m) => {
        // A closed MemoryStore refuses, as every class on it does.
        self.backend.memory()?;
        Ok(lock(m))
      }
      Shared::Redis { .. } => Err(coded(
        super::error::INVALID_ARG,
        "a Redis store has no synchronous path",
      )),
    }
  }
}

impl SemanticCore {
  // ---- memory store: answered on the calling thread ------------------------------------

  /// The exact request's entry.
  pub fn get(&self, key: String, now: f64) -> napi::Result<Option<SemanticHit>> {
    let mut entries = self.entries()?;
    Ok(entries.get(&key, local(now)).map(|e| SemanticHit {
      key: key.clone(),
      response: e.response.clone(),
      similarity: 1.0,
      query: e.query.clone(),
    }))
  }

  pub fn search(
    &self,
    scope: String,
    vector: Float32Array,
    query: String,
    now: f64,
  ) -> napi::Result<Option<SemanticHit>> {
    let mut entries = self.entries()?;
    let unit = entries.prepare(&vector).map_err(vector_error)?;
    Ok(
      entries
        .search(&scope, &unit, &query, self.threshold, local(now))
        .map(|h| SemanticHit {
          key: h.key.to_string(),
          response: h.entry.response.clone(),
          similarity: similarity(h.similarity),
          query: h.entry.query.clone(),
        }),
    )
  }

  /// Stores an entry; returns how many entries were evicted.
  pub fn set(
    &self,
    key: String,
    scope: String,
    query: String,
    response: String,
    vector: Option<Float32Array>,
    now: f64,
  ) -> napi::Result<u32> {
    let mut entries = self.entries()?;
    let unit = match &vector {
      Some(v) => Some(entries.prepare(v).map_err(vector_error)?),
      None => None,
    };
    let evicted = entries
      .set(
        &key,
        &scope,
        query,
        response,
        unit.as_deref(),
        local(now),
        self.ttl_ms,
        self.max_entries as usize,
      )
      .map_err(vector_error)?;
    Ok(evicted as u32)
  }

  pub fn delete(&self, key: String, now: f64) -> napi::Result<bool> {
    Ok(self.entries()?.delete(&key, local(now)))
  }

  pub fn clear(&self, now: f64) -> napi::Result<u32> {
    Ok(self.entries()?.clear(local(now)) as u32)
  }

  pub fn len(&self, now: f64) -> napi::Result<u32> {
    Ok(self.entries()?.len(local(now)) as u32)
  }

  // ---- Redis store ------------------------------------------------------------------------

  /// The exact request's entry; brings this process's index up to date on the way.
  pub async fn get_async(&self, key: String, now: f64) -> napi::Result<Option<SemanticHit>> {
    let redis = open_redis(&self.backend)?;
    let (mirror, loading) = self.mirror()?;
    let now = remote(now);
    let mut exact = None;
    for _ in 0..64 {
      if lock(mirror).cursor().is_none() {
        self.load(&redis, mirror, loading, now).await?;
      }
      let cursor = lock(mirror).cursor().map(str::to_owned);
      let read = redis
        .semantic_lookup(&self.keys, &key, cursor.as_deref(), now)
        .await?;
      exact = read.exact;
      match read.log {
        LogRead::Changes {
          changes,
          next,
          full,
        } => {
          let applied = lock(mirror).apply(cursor.as_deref().unwrap_or(""), changes, next);
          if !full || !applied {
            break;
          }
        }
        LogRead::Reset => lock(mirror).reset(),
        LogRead::Skipped => break,
      }
    }
    Ok(exact.map(|(response, query)| SemanticHit {
      key,
      response,
      similarity: 1.0,
      query,
    }))
  }

  pub async fn search_async(
    &self,
    scope: String,
    vector: Vec<f32>,
    query: String,
    now: f64,
  ) -> napi::Result<Option<SemanticHit>> {
    let redis = open_redis(&self.backend)?;
    let (mirror, _) = self.mirror()?;
    let found = {
      let m = lock(mirror);
      let unit = m.index.prepare(&vector).map_err(vector_error)?;
      m.index.search(&scope, &unit, CANDIDATES, self.threshold)
    };
    if found.is_empty() {
      return Ok(None);
    }
    let names: Vec<&str> = found.iter().map(|c| c.key.as_ref()).collect();
    let read = redis
      .semantic_fetch(&self.keys, &names, remote(now))
      .await?;
    for (c, entry) in found.iter().zip(read) {
      match entry {
        Some((q, response)) if compatible(&query, &q) => {
          return Ok(Some(SemanticHit {
            key: c.key.to_string(),
            response,
            similarity: similarity(c.similarity),
            query: q,
          }));
        }
        Some(_) => {}
        None => {
          lock(mirror).index.remove(&c.key);
        }
      }
    }
    Ok(None)
  }

  pub async fn set_async(
    &self,
    key: String,
    scope: String,
    query: String,
    response: String,
    vector: Option<Vec<f32>>,
    now: f64,
  ) -> napi::Result<u32> {
    let redis = open_redis(&self.backend)?;
    let (mirror, _) = self.mirror()?;
    let unit = match &vector {
      Some(v) => Some(lock(mirror).index.prepare(v).map_err(vector_error)?),
      None => None,
    };
    let bytes = unit.as_deref().map(to_bytes).unwrap_or_default();
    let evicted = redis
      .semantic_set(
        &self.keys,
        &key,
        &scope,
        &query,
        &response,
        &bytes,
        remote(now),
        self.ttl_ms,
        self.max_entries,
      )
      .await?;
    lock(mirror).local(match unit {
      Some(unit) => Change::Put { key, scope, unit },
      None => Change::Gone { key },
    });
    Ok(evicted as u32)
  }

  pub async fn delete_async(&self, key: String, now: f64) -> napi::Result<bool> {
    let redis = open_redis(&self.backend)?;
    let (mirror, _) = self.mirror()?;
    let gone = redis
      .semantic_delete(&self.keys, &key, remote(now), self.max_entries)
      .await?;
    lock(mirror).local(Change::Gone { key });
    Ok(gone)
  }

  pub async fn clear_async(&self, now: f64) -> napi::Result<u32> {
    let redis = open_redis(&self.backend)?;
    let (mirror, _) = self.mirror()?;
    let n = redis.semantic_clear(&self.keys, remote(now)).await?;
    lock(mirror).reset();
    Ok(n as u32)
  }

  pub async fn len_async(&self, now: f64) -> napi::Result<u32> {
    let redis = open_redis(&self.backend)?;
    let now = remote(now).unwrap_or_else(now_ms);
    Ok(redis.semantic_len(&self.keys, now).await? as u32)
  }
}

impl SemanticCore {
  fn mirror(&self) -> napi::Result<(&Mutex<Mirror>, &tokio::sync::Mutex<()>)> {
    match &*self.state {
      Shared::Redis { mirror, loading } => Ok((mirror, loading)),
      Shared::Memory(_) => Err(coded(
        super::error::INVALID_ARG,
        "a memory store has no asynchronous path",
      )),
    }
  }

  /// Loads the index whole from the cache's entry set (one lookup at a time does it).
  async fn load(
    &self,
    redis: &RedisStore,
    mirror: &Mutex<Mirror>,
    loading: &tokio::sync::Mutex<()>,
    now: Option<u64>,
  ) -> Result<(), StoreError> {
    let _one = loading.lock().await;
    if lock(mirror).cursor().is_some() {
      return Ok(());
    }
    let mut index = ScopedIndex::new(self.config);
    let mut cursor = None;
    let mut after = None;
    loop {
      let page = redis.semantic_page(&self.keys, after.as_ref(), now).await?;
      cursor.get_or_insert(page.cursor);
      for c in page.entries {
        if let Change::Put { key, scope, unit } = c {
          let _ = index.insert(&key, &scope, &unit);
        }
      }
      if page.read < crate::store::redis::semantic::PAGE || page.last.is_none() {
        break;
      }
      after = page.last;
    }
    lock(mirror).load(index, cursor.unwrap_or_else(|| "0".into()));
    Ok(())
  }
}

type Handle = External<Arc<SemanticCore>>;

/// `ann_min` ≤ 0 keeps the default size from which lookups in a scope are approximate.
#[napi(ts_return_type = "ExternalObject<'SemanticCore'>")]
pub fn semantic_new(
  store: &NativeStore,
  prefix: String,
  ttl_ms: f64,
  max_entries: f64,
  threshold: f64,
  ann_min: f64,
) -> Handle {
  let mut config = IndexConfig::default();
  if ann_min > 0.0 {
    config.ann_min = ann_min as usize;
  }
  External::new(Arc::new(SemanticCore {
    state: state_for(&store.backend, &prefix, config),
    backend: store.backend.clone(),
    keys: SemanticKeys::new(&prefix),
    config,
    ttl_ms: ms(ttl_ms).max(1),
    max_entries: ms(max_entries).max(1),
    threshold: threshold as f32,
  }))
}

// ---- memory store: answered on the calling thread ----------------------------------------

/// The exact request's entry.
#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'SemanticCore'>, key: string, now: number"
)]
pub fn semantic_get(core: &Handle, key: String, now: f64) -> napi::Result<Option<SemanticHit>> {
  core.get(key, now)
}

/// The closest entry of `scope` at or above the threshold whose question is compatible.
#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'SemanticCore'>, scope: string, vector: Float32Array, query: string, now: number"
)]
pub fn semantic_search(
  core: &Handle,
  scope: String,
  vector: Float32Array,
  query: String,
  now: f64,
) -> napi::Result<Option<SemanticHit>> {
  core.search(scope, vector, query, now)
}

/// Stores an entry; returns how many entries were evicted.
#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'SemanticCore'>, key: string, scope: string, query: string, response: string, vector: Float32Array | undefined | null, now: number"
)]
pub fn semantic_set(
  core: &Handle,
  key: String,
  scope: String,
  query: String,
  response: String,
  vector: Option<Float32Array>,
  now: f64,
) -> napi::Result<u32> {
  core.set(key, scope, query, response, vector, now)
}

#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'SemanticCore'>, key: string, now: number"
)]
pub fn semantic_delete(core: &Handle, key: String, now: f64) -> napi::Result<bool> {
  core.delete(key, now)
}

#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'SemanticCore'>, now: number"
)]
pub fn semantic_clear(core: &Handle, now: f64) -> napi::Result<u32> {
  core.clear(now)
}

#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'SemanticCore'>, now: number"
)]
pub fn semantic_len(core: &Handle, now: f64) -> napi::Result<u32> {
  core.len(now)
}

// ---- Redis store: futures on the tokio worker ---------------------------------------------

#[napi(ts_args_type = "core: ExternalObject<'SemanticCore'>, key: string, now: number")]
pub fn semantic_get_async<'env>(
  env: &'env Env,
  core: &Handle,
  key: String,
  now: f64,
) -> napi::Result<PromiseRaw<'env, Option<SemanticHit>>> {
  let core = Arc::clone(core);
  env.spawn_future(async move { core.get_async(key, now).await })
}

#[napi(
  ts_args_type = "core: ExternalObject<'SemanticCore'>, scope: string, vector: Float32Array, query: string, now: number"
)]
pub fn semantic_search_async<'env>(
  env: &'env Env,
  core: &Handle,
  scope: String,
  vector: Float32Array,
  query: String,
  now: f64,
) -> napi::Result<PromiseRaw<'env, Option<SemanticHit>>> {
  let (core, vector) = (Arc::clone(core), vector.to_vec());
  env.spawn_future(async move { core.search_async(scope, vector, query, now).await })
}

#[napi(
  ts_args_type = "core: ExternalObject<'SemanticCore'>, key: string, scope: string, query: string, response: string, vector: Float32Array | undefined | null, now: number"
)]
#[allow(clippy::too_many_arguments)]
pub fn semantic_set_async<'env>(
  env: &'env Env,
  core: &Handle,
  key: String,
  scope: String,
  query: String,
  response: String,
  vector: Option<Float32Array>,
  now: f64,
) -> napi::Result<PromiseRaw<'env, u32>> {
  let (core, vector) = (Arc::clone(core), vector.map(|v| v.to_vec()));
  env.spawn_future(async move {
    core
      .set_async(key, scope, query, response, vector, now)
      .await
  })
}

#[napi(ts_args_type = "core: ExternalObject<'SemanticCore'>, key: string, now: number")]
pub fn semantic_delete_async<'env>(
  env: &'env Env,
  core: &Handle,
  key: String,
  now: f64,
) -> napi::Result<PromiseRaw<'env, bool>> {
  let core = Arc::clone(core);
  env.spawn_future(async move { core.delete_async(key, now).await })
}

#[napi(ts_args_type = "core: ExternalObject<'SemanticCore'>, now: number")]
pub fn semantic_clear_async<'env>(
  env: &'env Env,
  core: &Handle,
  now: f64,
) -> napi::Result<PromiseRaw<'env, u32>> {
  let core = Arc::clone(core);
  env.spawn_future(async move { core.clear_async(now).await })
}

#[napi(ts_args_type = "core: ExternalObject<'SemanticCore'>, now: number")]
pub fn semantic_len_async<'env>(
  env: &'env Env,
  core: &Handle,
  now: f64,
) -> napi::Result<PromiseRaw<'env, u32>> {
  let core = Arc::clone(core);
  env.spawn_future(async move { core.len_async(now).await })
}
