//! `SessionStoreCore`: the sessions of one `SessionStore` (lib/session-store.js).

use napi_derive::napi;

use super::clock::{local, remote};
use super::error::{coded, ms};
use super::id::Id;
use super::store::{open_redis, Backend, NativeStore};
use crate::engine::session::{AppendOutcome, Session};
use crate::store::memory::Keep;

/// Refusal codes lib/session-store.js turns into errors.
const TOO_LARGE: &str = "ERR_TOLLGATE_TOO_LARGE";
const NOT_A_MESSAGE_LIST: &str = "ERR_TOLLGATE_NOT_A_MESSAGE_LIST";

fn appended(outcome: AppendOutcome, cap: Option<usize>) -> napi::Result<u32> {
  match outcome {
    AppendOutcome::Appended(size) => Ok(size as u32),
    AppendOutcome::TooLarge(size) => Err(coded(
      TOO_LARGE,
      format!(
        "the session would grow to {size} bytes, over maxBytes ({})",
        cap.unwrap_or(0)
      ),
    )),
    AppendOutcome::NotAMessageList => Err(coded(
      NOT_A_MESSAGE_LIST,
      "the stored session is not an object with a messages array",
    )),
  }
}

#[napi]
pub struct SessionStoreCore {
  backend: Backend,
  prefix: String,
  ttl_ms: u64,
  max_bytes: Option<usize>,
}

#[napi]
impl SessionStoreCore {
  /// `max_bytes` 0 means no cap.
  #[napi(constructor)]
  pub fn new(store: &NativeStore, prefix: String, ttl_ms: f64, max_bytes: f64) -> Self {
    let cap = ms(max_bytes) as usize;
    SessionStoreCore {
      backend: store.backend.clone(),
      prefix,
      ttl_ms: ms(ttl_ms).max(1),
      max_bytes: (cap > 0).then_some(cap),
    }
  }

  fn key(&self, id: &Id) -> String {
    format!("{}{}", self.prefix, id.as_str())
  }

  #[napi(catch_unwind)]
  pub fn save(&self, id: Id, head: String, messages: Option<String>, now: f64) -> napi::Result<()> {
    let s = Session { head, messages };
    let now = local(now);
    self
      .backend
      .memory()?
      .write(&self.key(&id), s, now, now + self.ttl_ms);
    Ok(())
  }

  #[napi(catch_unwind)]
  pub fn load(&self, id: Id, now: f64) -> napi::Result<Option<String>> {
    Ok(
      self
        .backend
        .memory()?
        .view(&self.key(&id), local(now), Session::assemble)?,
    )
  }

  #[napi(catch_unwind)]
  pub fn append(&self, id: Id, items: String, now: f64) -> napi::Result<u32> {
    let store = self.backend.memory()?;
    let now = local(now);
    let until = now + self.ttl_ms;
    let outcome = store.update(&self.key(&id), now, |s: &mut Session| {
      let outcome = s.append_capped(&items, self.max_bytes);
      let keep = match outcome {
        AppendOutcome::Appended(_) => Keep::Until(until),
        _ => Keep::Unchanged,
      };
      (outcome, keep)
    })?;
    appended(outcome, self.max_bytes)
  }

  #[napi(catch_unwind)]
  pub fn touch(&self, id: Id, now: f64) -> napi::Result<bool> {
    Ok(
      self
        .backend
        .memory()?
        .touch(&self.key(&id), local(now), self.ttl_ms),
    )
  }

  #[napi(catch_unwind)]
  pub fn destroy(&self, id: Id, now: f64) -> napi::Result<bool> {
    Ok(self.backend.memory()?.delete(&self.key(&id), local(now)))
  }

  #[napi]
  pub async fn save_async(
    &self,
    id: Id,
    head: String,
    messages: Option<String>,
    now: f64,
  ) -> napi::Result<()> {
    let redis = open_redis(&self.backend)?;
    let s = Session { head, messages };
    Ok(
      redis
        .session_save(&self.key(&id), &s, remote(now), self.ttl_ms)
        .await?,
    )
  }

  #[napi]
  pub async fn load_async(&self, id: Id, now: f64) -> napi::Result<Option<String>> {
    let redis = open_redis(&self.backend)?;
    Ok(redis.session_load(&self.key(&id), remote(now)).await?)
  }

  #[napi]
  pub async fn append_async(&self, id: Id, items: String, now: f64) -> napi::Result<u32> {
    let redis = open_redis(&self.backend)?;
    let key = self.key(&id);
    let outcome = redis
      .session_append(&key, &items, remote(now), self.ttl_ms, self.max_bytes)
      .await?;
    appended(outcome, self.max_bytes)
  }

  #[napi]
  pub async fn touch_async(&self, id: Id, now: f64) -> napi::Result<bool> {
    let redis = open_redis(&self.backend)?;
    Ok(
      redis
        .touch(&self.key(&id), remote(now), self.ttl_ms)
        .await?,
    )
  }

  #[napi]
  pub async fn destroy_async(&self, id: Id, now: f64) -> napi::Result<bool> {
    let redis = open_redis(&self.backend)?;
    Ok(redis.delete(&self.key(&id), remote(now)).await?)
  }
}
