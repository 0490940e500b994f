//! `ResponseCacheCore`: the entries of one `ResponseCache` (lib/response-cache.js), the
//! digest its default keys are made of, and `storeKey`, the key encoding lib/ uses where it
//! names keys itself.

use std::sync::Arc;

use napi::bindgen_prelude::{External, PromiseRaw};
use napi::Env;
use napi_derive::napi;

use super::clock::{local, remote};
use super::error::ms;
use super::id::{key_of, Id};
use super::store::{on_redis, Backend, NativeStore};
use crate::engine::cache_key;

/// SHA-256 hex of canonical request text (lib/canonical.js writes it).
#[napi]
pub fn request_digest(canonical: String) -> String {
  cache_key::digest(&canonical)
}

/// The store key of `parts` under `prefix` (`store::key`): what every class's keys are.
#[napi(catch_unwind)]
pub fn store_key(prefix: String, parts: Vec<Id>) -> String {
  key_of(&prefix, &parts.iter().collect::<Vec<_>>())
}

pub struct ResponseCacheCore {
  backend: Backend,
  prefix: String,
  ttl_ms: u64,
}

impl ResponseCacheCore {
  fn key(&self, id: &Id) -> String {
    key_of(&self.prefix, &[id])
  }
}

type Core = External<Arc<ResponseCacheCore>>;

#[napi(ts_return_type = "ExternalObject<'ResponseCacheCore'>")]
pub fn response_cache_new(store: &NativeStore, prefix: String, ttl_ms: f64) -> Core {
  External::new(Arc::new(ResponseCacheCore {
    backend: store.backend.clone(),
    prefix,
    ttl_ms: ms(ttl_ms).max(1),
  }))
}

/// The entry's JSON text, or null.
#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'ResponseCacheCore'>, id: string, now: number"
)]
pub fn response_cache_get(core: &Core, id: Id, now: f64) -> napi::Result<Option<String>> {
  Ok(core.backend.memory()?.get_text(&core.key(&id), local(now)))
}

#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'ResponseCacheCore'>, id: string, json: string, now: number"
)]
pub fn response_cache_set(core: &Core, id: Id, json: String, now: f64) -> napi::Result<()> {
  core
    .backend
    .memory()?
    .set_text(&core.key(&id), json, local(now), core.ttl_ms);
  Ok(())
}

/// True when a live entry was deleted.
#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'ResponseCacheCore'>, id: string, now: number"
)]
pub fn response_cache_delete(core: &Core, id: Id, now: f64) -> napi::Result<bool> {
  Ok(core.backend.memory()?.delete(&core.key(&id), local(now)))
}

#[napi(ts_args_type = "core: ExternalObject<'ResponseCacheCore'>, id: string, now: number")]
pub fn response_cache_get_async<'env>(
  env: &'env Env,
  core: &Core,
  id: Id,
  now: f64,
) -> napi::Result<PromiseRaw<'env, Option<String>>> {
  let key = core.key(&id);
  on_redis(env, &core.backend, move |redis| async move {
    Ok(redis.get_text(&key, remote(now)).await?)
  })
}

#[napi(
  ts_args_type = "core: ExternalObject<'ResponseCacheCore'>, id: string, json: string, now: number"
)]
pub fn response_cache_set_async<'env>(
  env: &'env Env,
  core: &Core,
  id: Id,
  json: String,
  now: f64,
) -> napi::Result<PromiseRaw<'env, ()>> {
  let (key, ttl) = (core.key(&id), core.ttl_ms);
  on_redis(env, &core.backend, move |redis| async move {
    Ok(redis.set_text(&key, &json, remote(now), ttl).await?)
  })
}

#[napi(ts_args_type = "core: ExternalObject<'ResponseCacheCore'>, id: string, now: number")]
pub fn response_cache_delete_async<'env>(
  env: &'env Env,
  core: &Core,
  id: Id,
  now: f64,
) -> napi::Result<PromiseRaw<'env, bool>> {
  let key = core.key(&id);
  on_redis(env, &core.backend, move |redis| async move {
    Ok(redis.delete(&key, remote(now)).await?)
  })
}
