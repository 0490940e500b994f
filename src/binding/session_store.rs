//! `SessionStoreCore`: the sessions of one `SessionStore` (lib/session-store.js).

use std::sync::Arc;

use napi::bindgen_prelude::{External, PromiseRaw};
use napi::Env;
use napi_derive::napi;

use super::clock::{local, remote};
use super::error::{coded, ms};
use super::id::Id;
use super::store::{on_redis, Backend, NativeStore};
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

pub struct SessionStoreCore {
  backend: Backend,
  prefix: String,
  ttl_ms: u64,
  max_bytes: Option<usize>,
}

impl SessionStoreCore {
  fn key(&self, id: &Id) -> String {
    format!("{}{}", self.prefix, id.as_str())
  }
}

type Core = External<Arc<SessionStoreCore>>;

/// `max_bytes` 0 means no cap.
#[napi(ts_return_type = "ExternalObject<'SessionStoreCore'>")]
pub fn session_store_new(store: &NativeStore, prefix: String, ttl_ms: f64, max_bytes: f64) -> Core {
  let cap = ms(max_bytes) as usize;
  External::new(Arc::new(SessionStoreCore {
    backend: store.backend.clone(),
    prefix,
    ttl_ms: ms(ttl_ms).max(1),
    max_bytes: (cap > 0).then_some(cap),
  }))
}

/// Replaces the session: `head` is the JSON of its data without `messages`, `messages` the
/// JSON array (undefined when the data has no message list).
#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'SessionStoreCore'>, id: string, head: string, messages: string | undefined, now: number"
)]
pub fn session_store_save(
  core: &Core,
  id: Id,
  head: String,
  messages: Option<String>,
  now: f64,
) -> napi::Result<()> {
  let (s, now) = (Session { head, messages }, local(now));
  core
    .backend
    .memory()?
    .write(&core.key(&id), s, now, now + core.ttl_ms);
  Ok(())
}

/// The session's data as JSON text, or null.
#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'SessionStoreCore'>, id: string, now: number"
)]
pub fn session_store_load(core: &Core, id: Id, now: f64) -> napi::Result<Option<String>> {
  let store = core.backend.memory()?;
  Ok(store.view(&core.key(&id), local(now), Session::assemble)?)
}

/// Appends `items` (comma-separated JSON values); the session's new size in bytes.
#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'SessionStoreCore'>, id: string, items: string, now: number"
)]
pub fn session_store_append(core: &Core, id: Id, items: String, now: f64) -> napi::Result<u32> {
  let store = core.backend.memory()?;
  let now = local(now);
  let until = now + core.ttl_ms;
  let outcome = store.update(&core.key(&id), now, |s: &mut Session| {
    let outcome = s.append_capped(&items, core.max_bytes);
    let keep = match outcome {
      AppendOutcome::Appended(_) => Keep::Until(until),
      _ => Keep::Unchanged,
    };
    (outcome, keep)
  })?;
  appended(outcome, core.max_bytes)
}

/// Renews the session's expiry; false when there is none.
#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'SessionStoreCore'>, id: string, now: number"
)]
pub fn session_store_touch(core: &Core, id: Id, now: f64) -> napi::Result<bool> {
  let store = core.backend.memory()?;
  Ok(store.touch(&core.key(&id), local(now), core.ttl_ms))
}

/// Deletes the session; true when a live one was there.
#[napi(
  catch_unwind,
  ts_args_type = "core: ExternalObject<'SessionStoreCore'>, id: string, now: number"
)]
pub fn session_store_destroy(core: &Core, id: Id, now: f64) -> napi::Result<bool> {
  Ok(core.backend.memory()?.delete(&core.key(&id), local(now)))
}

#[napi(
  ts_args_type = "core: ExternalObject<'SessionStoreCore'>, id: string, head: string, messages: string | undefined, now: number"
)]
pub fn session_store_save_async<'env>(
  env: &'env Env,
  core: &Core,
  id: Id,
  head: String,
  messages: Option<String>,
  now: f64,
) -> napi::Result<PromiseRaw<'env, ()>> {
  let (key, ttl) = (core.key(&id), core.ttl_ms);
  let s = Session { head, messages };
  on_redis(env, &core.backend, move |redis| async move {
    Ok(redis.session_save(&key, &s, remote(now), ttl).await?)
  })
}

#[napi(ts_args_type = "core: ExternalObject<'SessionStoreCore'>, id: string, now: number")]
pub fn session_store_load_async<'env>(
  env: &'env Env,
  core: &Core,
  id: Id,
  now: f64,
) -> napi::Result<PromiseRaw<'env, Option<String>>> {
  let key = core.key(&id);
  on_redis(env, &core.backend, move |redis| async move {
    Ok(redis.session_load(&key, remote(now)).await?)
  })
}

#[napi(
  ts_args_type = "core: ExternalObject<'SessionStoreCore'>, id: string, items: string, now: number"
)]
pub fn session_store_append_async<'env>(
  env: &'env Env,
  core: &Core,
  id: Id,
  items: String,
  now: f64,
) -> napi::Result<PromiseRaw<'env, u32>> {
  let key = core.key(&id);
  let (ttl, cap) = (core.ttl_ms, core.max_bytes);
  on_redis(env, &core.backend, move |redis| async move {
    let outcome = redis
      .session_append(&key, &items, remote(now), ttl, cap)
      .await?;
    appended(outcome, cap)
  })
}

#[napi(ts_args_type = "core: ExternalObject<'SessionStoreCore'>, id: string, now: number")]
pub fn session_store_touch_async<'env>(
  env: &'env Env,
  core: &Core,
  id: Id,
  now: f64,
) -> napi::Result<PromiseRaw<'env, bool>> {
  let (key, ttl) = (core.key(&id), core.ttl_ms);
  on_redis(env, &core.backend, move |redis| async move {
    Ok(redis.touch(&key, remote(now), ttl).await?)
  })
}

#[napi(ts_args_type = "core: ExternalObject<'SessionStoreCore'>, id: string, now: number")]
pub fn session_store_destroy_async<'env>(
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
