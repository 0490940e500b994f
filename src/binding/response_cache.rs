//! `ResponseCacheCore`: the entries of one `ResponseCache` (lib/response-cache.js), the
//! digest its default keys are made of, and `storeKey`, the key encoding lib/ uses where it
//! names keys itself.

use napi_derive::napi;

use super::clock::{local, remote};
use super::error::ms;
use super::id::{key_of, Id};
use super::store::{open_redis, Backend, NativeStore};
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

#[napi]
pub struct ResponseCacheCore {
  backend: Backend,
  prefix: String,
  ttl_ms: u64,
}

#[napi]
impl ResponseCacheCore {
  #[napi(constructor)]
  pub fn new(store: &NativeStore, prefix: String, ttl_ms: f64) -> Self {
    ResponseCacheCore {
      backend: store.backend.clone(),
      prefix,
      ttl_ms: ms(ttl_ms).max(1),
    }
  }

  fn key(&self, id: &Id) -> String {
    key_of(&self.prefix, &[id])
  }

  #[napi(catch_unwind)]
  pub fn get(&self, id: Id, now: f64) -> napi::Result<Option<String>> {
    Ok(self.backend.memory()?.get_text(&self.key(&id), local(now)))
  }

  #[napi(catch_unwind)]
  pub fn set(&self, id: Id, json: String, now: f64) -> napi::Result<()> {
    self
      .backend
      .memory()?
      .set_text(&self.key(&id), json, local(now), self.ttl_ms);
    Ok(())
  }

  #[napi(catch_unwind)]
  pub fn delete(&self, id: Id, now: f64) -> napi::Result<bool> {
    Ok(self.backend.memory()?.delete(&self.key(&id), local(now)))
  }

  #[napi]
  pub async fn get_async(&self, id: Id, now: f64) -> napi::Result<Option<String>> {
    let redis = open_redis(&self.backend)?;
    Ok(redis.get_text(&self.key(&id), remote(now)).await?)
  }

  #[napi]
  pub async fn set_async(&self, id: Id, json: String, now: f64) -> napi::Result<()> {
    let redis = open_redis(&self.backend)?;
    Ok(
      redis
        .set_text(&self.key(&id), &json, remote(now), self.ttl_ms)
        .await?,
    )
  }

  #[napi]
  pub async fn delete_async(&self, id: Id, now: f64) -> napi::Result<bool> {
    let redis = open_redis(&self.backend)?;
    Ok(redis.delete(&self.key(&id), remote(now)).await?)
  }
}
