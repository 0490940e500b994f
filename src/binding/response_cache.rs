//! `ResponseCacheCore`: the entries of one `ResponseCache` (lib/response-cache.js), and the
//! request digest its default keys are made of.

use napi_derive::napi;

use super::clock::{local, remote};
use super::error::{coded, ms, INVALID_ARG};
use super::store::{open_redis, Backend, NativeStore};
use crate::engine::cache_key;

/// SHA-256 hex of the canonical JSON (RFC 8785) of `json`.
#[napi(catch_unwind)]
pub fn request_digest(json: String) -> napi::Result<String> {
  cache_key::request_digest(&json).map_err(|e| coded(INVALID_ARG, e.0))
}

#[napi]
pub struct ResponseCacheCore {
  backend: Backend,
  ttl_ms: u64,
}

#[napi]
impl ResponseCacheCore {
  #[napi(constructor)]
  pub fn new(store: &NativeStore, ttl_ms: f64) -> Self {
    ResponseCacheCore {
      backend: store.backend.clone(),
      ttl_ms: ms(ttl_ms).max(1),
    }
  }

  #[napi(catch_unwind)]
  pub fn get(&self, key: String, now: f64) -> napi::Result<Option<String>> {
    Ok(self.backend.memory()?.get_text(&key, local(now)))
  }

  #[napi(catch_unwind)]
  pub fn set(&self, key: String, json: String, now: f64) -> napi::Result<()> {
    self
      .backend
      .memory()?
      .set_text(&key, json, local(now), self.ttl_ms);
    Ok(())
  }

  #[napi(catch_unwind)]
  pub fn delete(&self, key: String, now: f64) -> napi::Result<bool> {
    Ok(self.backend.memory()?.delete(&key, local(now)))
  }

  #[napi]
  pub async fn get_async(&self, key: String, now: f64) -> napi::Result<Option<String>> {
    let redis = open_redis(&self.backend)?;
    Ok(redis.get_text(&key, remote(now)).await?)
  }

  #[napi]
  pub async fn set_async(&self, key: String, json: String, now: f64) -> napi::Result<()> {
    let redis = open_redis(&self.backend)?;
    Ok(
      redis
        .set_text(&key, &json, remote(now), self.ttl_ms)
        .await?,
    )
  }

  #[napi]
  pub async fn delete_async(&self, key: String) -> napi::Result<bool> {
    let redis = open_redis(&self.backend)?;
    Ok(redis.delete(&key).await?)
  }
}
