//! `NativeStore`: the handle every class is built on — an in-process keyspace or a Redis
//! connection. The public `MemoryStore` and `RedisStore` classes (lib/stores.js) wrap it.

use std::sync::Arc;
use std::time::Duration;

use napi_derive::napi;

use super::error::{coded, ms, INVALID_ARG, STORE_CLOSED};
use crate::store::memory::MemoryStore;
use crate::store::redis::{Eviction, RedisConfig, RedisStore, StoreError};

#[derive(Clone)]
pub(crate) enum Backend {
  Memory(MemoryStore),
  Redis(Arc<RedisStore>),
}

impl Backend {
  /// The in-process keyspace; calling a sync method on a Redis store is a bug in lib/.
  pub(crate) fn memory(&self) -> napi::Result<&MemoryStore> {
    match self {
      Backend::Memory(m) if m.is_closed() => Err(coded(STORE_CLOSED, "the MemoryStore was closed")),
      Backend::Memory(m) => Ok(m),
      Backend::Redis(_) => Err(coded(INVALID_ARG, "a Redis store has no synchronous path")),
    }
  }

  pub(crate) fn redis(&self) -> napi::Result<Arc<RedisStore>> {
    match self {
      Backend::Redis(r) => Ok(r.clone()),
      Backend::Memory(_) => Err(coded(
        INVALID_ARG,
        "a memory store has no asynchronous path",
      )),
    }
  }
}

/// Options of a Redis connection, as lib/stores.js resolves them.
#[napi(object, object_to_js = false)]
pub struct RedisConnectOptions {
  pub urls: Vec<String>,
  pub cluster: bool,
  pub connect_timeout_ms: f64,
  pub command_timeout_ms: f64,
  /// `'warn'` (default), `'error'` or `'ignore'`: see lib/stores.js.
  pub eviction_policy: Option<String>,
}

/// `maxmemory` and `maxmemory-policy` as last read from the server (null until read);
/// `generation` grows with each read.
#[napi(object)]
pub struct ServerMemoryInfo {
  pub generation: f64,
  pub maxmemory: Option<f64>,
  pub policy: Option<String>,
  /// The policy can evict tollgate's keys.
  pub evicts: bool,
}

#[napi]
pub struct NativeStore {
  pub(crate) backend: Backend,
}

#[napi]
impl NativeStore {
  /// An in-process keyspace; with `max_keys`, the least recently used key is evicted when a
  /// new key would exceed it (lib/ validates the bound).
  #[napi(factory)]
  pub fn memory(max_keys: Option<f64>) -> Self {
    let store = match max_keys {
      Some(n) if n >= 1.0 => MemoryStore::with_max_keys(n as usize),
      _ => MemoryStore::new(),
    };
    NativeStore {
      backend: Backend::Memory(store),
    }
  }

  /// Keys a memory store evicted to stay within `max_keys`.
  #[napi(catch_unwind)]
  pub fn evictions(&self) -> napi::Result<f64> {
    Ok(self.backend.memory()?.evictions() as f64)
  }

  #[napi(factory, catch_unwind)]
  pub fn redis(options: RedisConnectOptions) -> napi::Result<Self> {
    let eviction = match options.eviction_policy.as_deref() {
      None | Some("warn") => Eviction::Warn,
      Some("error") => Eviction::Error,
      Some("ignore") => Eviction::Ignore,
      Some(other) => {
        return Err(coded(
          INVALID_ARG,
          format!("evictionPolicy must be 'warn', 'error' or 'ignore', got {other:?}"),
        ))
      }
    };
    let config = RedisConfig {
      urls: options.urls,
      cluster: options.cluster,
      connect_timeout: Duration::from_millis(ms(options.connect_timeout_ms).max(1)),
      command_timeout: Duration::from_millis(ms(options.command_timeout_ms).max(1)),
      eviction,
    };
    // The only failure here is a URL redis-rs cannot parse; its message names the URL with the
    // password masked.
    let store = RedisStore::new(config).map_err(|e| match e {
      StoreError::Unavailable(m) | StoreError::Command(m) => coded(INVALID_ARG, m),
      other => coded(INVALID_ARG, format!("{other:?}")),
    })?;
    Ok(NativeStore {
      backend: Backend::Redis(Arc::new(store)),
    })
  }

  #[napi(getter)]
  pub fn is_memory(&self) -> bool {
    matches!(self.backend, Backend::Memory(_))
  }

  /// Live keys in a memory store at `now`.
  #[napi(catch_unwind)]
  pub fn size(&self, now: f64) -> napi::Result<u32> {
    Ok(self.backend.memory()?.len(super::clock::local(now)) as u32)
  }

  /// Drops every key of a memory store.
  #[napi(catch_unwind)]
  pub fn clear(&self) -> napi::Result<()> {
    self.backend.memory()?.clear();
    Ok(())
  }

  /// Ends a Redis connection; later calls reject with `ERR_TOLLGATE_STORE_CLOSED`.
  #[napi]
  pub fn close(&self) {
    match &self.backend {
      Backend::Redis(r) => r.close(),
      Backend::Memory(m) => m.close(),
    }
  }

  #[napi(getter)]
  pub fn closed(&self) -> bool {
    match &self.backend {
      Backend::Redis(r) => r.is_closed(),
      Backend::Memory(m) => m.is_closed(),
    }
  }

  /// `PING` (every master of a Cluster): the probe a store sends after an outage, never a
  /// user's call. Reads the server's memory settings first when they are due.
  #[napi]
  pub async fn ping(&self) -> napi::Result<()> {
    let redis = open_redis(&self.backend)?;
    redis.ping().await.map_err(Into::into)
  }

  /// The server's memory settings as last read (read on the first connection and after every
  /// outage); null on a memory store.
  #[napi]
  pub fn server_memory(&self) -> Option<ServerMemoryInfo> {
    match &self.backend {
      Backend::Redis(r) => {
        let m = r.server_memory();
        Some(ServerMemoryInfo {
          generation: m.generation as f64,
          evicts: m.evicts(),
          maxmemory: m.maxmemory.map(|v| v as f64),
          policy: m.policy,
        })
      }
      Backend::Memory(_) => None,
    }
  }

  /// `[name, sha1]` of each Lua script, for `SCRIPT EXISTS` checks.
  #[napi]
  pub fn script_hashes(&self) -> napi::Result<Vec<Vec<String>>> {
    let redis = self.backend.redis()?;
    Ok(
      redis
        .script_hashes()
        .into_iter()
        .map(|(n, h)| vec![n.to_owned(), h])
        .collect(),
    )
  }
}

/// Fails fast when a closed Redis store is used, before any future is spawned.
pub(crate) fn open_redis(backend: &Backend) -> napi::Result<Arc<RedisStore>> {
  let r = backend.redis()?;
  if r.is_closed() {
    return Err(coded(STORE_CLOSED, "the store was closed"));
  }
  Ok(r)
}

/// Runs `call` with the store's Redis handle as a future on the tokio worker. Every failure,
/// a closed store included, rejects the promise (never a synchronous throw), so lib/ handles
/// the Redis path's errors in one place.
pub(crate) fn on_redis<'env, T, Fut>(
  env: &'env napi::Env,
  backend: &Backend,
  call: impl FnOnce(Arc<RedisStore>) -> Fut + Send + 'static,
) -> napi::Result<napi::bindgen_prelude::PromiseRaw<'env, T>>
where
  T: napi::bindgen_prelude::ToNapiValue + Send + 'static,
  Fut: std::future::Future<Output = napi::Result<T>> + Send + 'static,
{
  let backend = backend.clone();
  env.spawn_future(async move { call(open_redis(&backend)?).await })
}
